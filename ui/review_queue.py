"""The Review page's queue (one image at a time: keep / exclude / needs relabel, note, undo)
and its export section (flags CSV, cleaned copy)."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from seglib import paths, review, viz
from seglib.review import export
from seglib.review.store import split_reasons

from . import dataset_grid, nav, roots
from .review import STATE_LABELS, Ctx, say

QUEUE_STATES = "review_queue_states"
QUEUE_POS = "review_queue_pos"          # int: index in the queue
QUEUE_CURRENT = "review_queue_current"  # str | None: the image shown
QUEUE_OPACITY = "review_queue_opacity"
EXPORT_PATH, EXPORT_OVERWRITE, EXPORT_DONE = "review_export_path", "review_export_overwrite", "review_export_done"

DECISIONS = [("keep", "Keep", ":material/check_circle:"), ("exclude", "Exclude", ":material/block:"),
             ("relabel", "Needs relabel", ":material/edit:")]


def _init() -> None:
    for k, v in {QUEUE_STATES: ["flagged"], QUEUE_POS: 0, QUEUE_CURRENT: None}.items():
        st.session_state.setdefault(k, v)


def _go(queue: pd.DataFrame, index: int) -> None:
    index = min(max(index, 0), max(len(queue) - 1, 0))
    st.session_state[QUEUE_POS] = index
    st.session_state[QUEUE_CURRENT] = queue["image_id"].iloc[index] if len(queue) else None


def _decide(ctx: Ctx, queue: pd.DataFrame, index: int, state: str, note: str) -> None:
    image_id = queue["image_id"].iloc[index]
    ctx.store.set_state(ctx.key, [image_id], state, note=note.strip())
    # Move on: the next image of the queue as it was before this decision.
    nxt = queue["image_id"].iloc[index + 1] if index + 1 < len(queue) else None
    st.session_state[QUEUE_POS] = index + (0 if state not in st.session_state[QUEUE_STATES] or nxt is None else 1)
    st.session_state[QUEUE_CURRENT] = nxt
    say(f"{image_id}: {STATE_LABELS.get(state, state).lower()}")


def _undo(ctx: Ctx) -> None:
    last = ctx.store.last_event(ctx.key)
    if last is None or not ctx.store.undo(ctx.key):
        say("Nothing to undo")
        return
    st.session_state[QUEUE_CURRENT] = last["image_id"]
    say(f"Undid {last['state']} of {last['image_id']}")


def queue_section(ctx: Ctx) -> None:
    _init()
    options = [s for s in review.STATES if s != "cleared"]
    states = st.multiselect("Show images that are", options, key=QUEUE_STATES,
                            format_func=lambda s: STATE_LABELS.get(s, s))
    queue = review.review_queue(ctx.store, ctx.key, states, order=ctx.stats.ids)
    top = st.columns([1.3, 4, 1.2, 1.2])
    if top[3].button("Undo", icon=":material/undo:", key="review_undo", help="Revert the latest decision or flag"):
        _undo(ctx)
        st.rerun()
    if queue.empty:
        st.info("The queue is empty: flag images on the Map or Detectors tabs, or widen the filter.")
        return
    index = review.queue_index(queue["image_id"].tolist(), st.session_state[QUEUE_CURRENT], st.session_state[QUEUE_POS])
    if top[0].button("Previous", icon=":material/chevron_left:", disabled=index == 0, key="review_prev"):
        _go(queue, index - 1)
        st.rerun()
    if top[2].button("Next", icon=":material/chevron_right:", disabled=index >= len(queue) - 1, key="review_next"):
        _go(queue, index + 1)
        st.rerun()
    row = queue.iloc[index]
    top[1].markdown(f"**{index + 1} / {len(queue)}** · image `{row.image_id}` · "
                    f"state **{STATE_LABELS.get(row.state, row.state)}**")
    _show_image(ctx, row)
    note = st.text_input("Note (saved with the decision)", key=f"review_note_{row.image_id}")
    cols = st.columns(len(DECISIONS) + 1)
    for col, (state, label, icon) in zip(cols, DECISIONS, strict=False):
        if col.button(label, icon=icon, key=f"review_decide_{state}", width="stretch",
                      type="primary" if state == "exclude" else "secondary"):
            _decide(ctx, queue, index, state, note)
            st.rerun()
    with st.expander("History of this image"):
        hist = ctx.store.history(ctx.key, row.image_id)
        st.dataframe(hist[["state", "reason", "note", "detector", "score", "who", "at", "reverts"]],
                     hide_index=True, width="stretch")


def _show_image(ctx: Ctx, row) -> None:
    left, right = st.columns([3, 1])
    with right:
        st.markdown("**Why it is here**")
        reasons = split_reasons(row.reason)
        st.markdown("\n".join(f"- {r}" for r in reasons) or "_no reason recorded_")
        if isinstance(row.detector, str) and row.detector:
            st.caption(f"detector: {row.detector}" + (f" · score {row.score:.2f}" if pd.notna(row.score) else ""))
        if row.note:
            st.caption(f"note: {row.note}")
        st.caption(f"by {row.who} · {pd.Timestamp(row['at']):%Y-%m-%d %H:%M} UTC")
        opacity = st.slider("Mask opacity", 0.0, 1.0, 0.45, 0.05, key=QUEUE_OPACITY)
        nav.fix_mask_button(row.image_id, key="review_fix", width="stretch")
    with left:
        problems = [p for p in ctx.ds.report.problems if p.image_id == row.image_id and p.excluded]
        if problems:
            st.error("; ".join(f"{p.file}: {p.problem}" for p in problems))
            return
        # The Dataset page's cached pictures: a big photo is decoded reduced, once, not on every rerun.
        (image, _), (overlay, _) = dataset_grid.thumbnails(
            ctx.loaded, [row.image_id], viz.View(mode="image"), dataset_grid.DETAIL_PX) + dataset_grid.thumbnails(
            ctx.loaded, [row.image_id], viz.View(alpha=round(float(opacity), 2)), dataset_grid.DETAIL_PX)
        a, b = st.columns(2)
        a.image(image, caption="image", width="stretch")
        b.image(overlay, width="stretch", caption="mask overlay" if ctx.ds.is_labeled(row.image_id)
                else "no mask (unlabeled)")


# --- export -------------------------------------------------------------------------------
def export_section(ctx: Ctx) -> None:
    flags = export.flags_frame(ctx.store, ctx.key)
    st.subheader("Flags and decisions")
    st.download_button(f"Download flags CSV ({len(flags)} images)", flags.to_csv(index=False),
                       f"{ctx.ds.name}-review.csv", "text/csv", icon=":material/download:", disabled=flags.empty)
    if not flags.empty:
        st.dataframe(flags, hide_index=True, width="stretch", height=240)
    st.subheader("Cleaned copy")
    excluded = export.excluded_ids(ctx.store, ctx.key)
    st.caption(f"A copy of `{ctx.ds.source}` in the same format without the {len(excluded)} images marked "
               "Exclude. It is written under a temporary name and renamed when complete.")
    default = str(export.default_clean_path(ctx.ds, paths.data_dir() / "exports"))
    out = st.text_input("Write to", value=default, key=EXPORT_PATH)
    overwrite = st.checkbox("Replace it if it exists", key=EXPORT_OVERWRITE)
    if st.button(f"Write cleaned copy ({len(excluded)} excluded)", type="primary", key="review_export_clean",
                 icon=":material/save:"):
        target = roots.allowed(out)  # the app writes only under the dataset roots, as it reads
        try:
            if target is not None:
                with st.spinner("Writing the cleaned copy…"):
                    st.session_state[EXPORT_DONE] = export.export_clean(ctx.ds, target, excluded,
                                                                        overwrite=overwrite)
        except (FileExistsError, ValueError, OSError) as e:
            st.error(str(e))
    done = st.session_state.get(EXPORT_DONE)
    if done:
        st.success(f"Wrote `{done['path']}`: {done['n_images']:,} images kept, {done['n_excluded']} excluded.")
        if done["unknown"]:
            unknown = done["unknown"]
            st.warning(f"{len(unknown)} excluded ids are not in this dataset: {', '.join(unknown[:10])}")
