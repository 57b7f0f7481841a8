"""The Compare page's label quality (cleanlab on a run's own validation images; suspicious
pixels; send images to the review queue with the reason) and its export (masks as a zip or
into a folder, metric tables as CSV)."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from seglib import paths, viz
from seglib.cache import LRU
from seglib.predict import label_quality, masks_zip, write_masks
from seglib.review import dataset_key, flag_detections
from seglib.viz import maps

from . import nav, progress, roots
from .compare import Ctx, P, ask_export_pass, export_column, kept, open_image
from .data import review_store

LQ_RUN, LQ_GEN, LQ_REASON, LQ_DONE = P + "lq_run", P + "lq_gen", P + "lq_reason", P + "lq_done"
LQ_PASS, LQ_STOPPED = P + "lq_pass", P + "lq_stopped"   # its progress bar; the ranking whose pass was cancelled
EXPORT_COLUMN, EXPORT_COLOUR, EXPORT_PATH, EXPORT_DONE = P + "ex_col", P + "ex_colour", P + "ex_path", P + "ex_done"
THUMBS = 4


# --- label quality ----------------------------------------------------------------------------------
@st.cache_resource(show_spinner=False)
def _qualities() -> LRU:
    """Label-quality rankings in memory, shared by the sessions (beneath: the disk cache)."""
    return LRU(4)


def _label_quality(ctx: Ctx, member):
    """cleanlab's ranking of ``member``'s validation labels: from memory, the disk cache, or a
    pass over those images with a progress bar and Cancel (None once cancelled, until asked again)."""
    key = (member.identity, ctx.loaded.fingerprint, ctx.spec.tta, ctx.spec.tile)
    if progress.cancelled(LQ_PASS):
        st.session_state[LQ_STOPPED] = key
    if key not in _qualities() and st.session_state.get(LQ_STOPPED) == key:
        st.info("Label quality cancelled.")
        st.button("Rank the labels", icon=":material/play_arrow:", key=P + "lq_again",
                  on_click=lambda: st.session_state.pop(LQ_STOPPED, None))
        return None

    def compute():
        with progress.PassProgress(LQ_PASS) as bar:
            return label_quality(ctx.ds, member, tta=ctx.spec.tta, layout=ctx.layout,
                                 fingerprint=ctx.loaded.fingerprint, tile=ctx.spec.tile,
                                 progress=bar.stage(f"Predicting {member.name}'s validation images"))

    return _qualities().get_or_compute(key, compute)


def quality_section(ctx: Ctx) -> None:
    ds = ctx.ds
    candidates = [m for m in ctx.members if m.val_ids]
    names = [m.name for m in candidates]
    c1, c2 = st.columns([1, 3], vertical_alignment="bottom")
    name = c1.selectbox("Predictions of", names, **kept(LQ_RUN, names[0], names))
    member = candidates[names.index(name)]
    c2.caption(f"cleanlab ranks the labels of **{name}**'s own validation images (it never trained on them): "
               "an image whose label the model contradicts, confidently, over a region, is worth a second look. "
               "Magenta: the pixels cleanlab finds mislabeled.")
    try:
        lq = _label_quality(ctx, member)
    except ValueError as e:
        st.warning(str(e))
        return
    if lq is None:
        return
    key = dataset_key(ds)
    store = review_store()
    states = store.states(key)
    table = lq.table.assign(review=[states.get(i, "") for i in lq.table["image_id"]])
    view = table[["image_id", "quality", "issue_share", "suggested", "review", "reason"]]
    gen = st.session_state.get(LQ_GEN, 0)
    event = st.dataframe(view, hide_index=True, width="stretch", height=320, on_select="rerun",
                         selection_mode="multi-row", key=f"{P}lq_table_{gen}", column_config={
                             "quality": st.column_config.ProgressColumn("quality", min_value=0.0, max_value=1.0,
                                                                        format="%.2f"),
                             "issue_share": st.column_config.NumberColumn("suspicious pixels", format="percent"),
                             "suggested": st.column_config.CheckboxColumn(
                                 "suggested", help="quality far below the other images' (4 robust SDs, log scale)")})
    picked = table.iloc[event.selection.rows] if event and event.selection.rows else table.iloc[0:0]
    suggested = table[table["suggested"]]
    shown = picked if not picked.empty else table
    cols = st.columns(THUMBS)
    for k, row in enumerate(shown.head(THUMBS).itertuples()):
        image, truth, _ = ds.load_pair(row.image_id)
        if image is None:
            continue
        col = cols[k % THUMBS]
        col.image(viz.thumbnail_pair(viz.overlay(image, truth, ds.class_map, 0.45), None, 384)[0], width="stretch")
        col.image(viz.thumbnail_pair(maps.highlight(image, lq.issues(row.image_id)), None, 384)[0], width="stretch")
        col.button(f"{row.image_id} · quality {row.quality:.2f}", key=f"{P}lq_open_{k}", type="tertiary",
                   on_click=open_image, args=(row.image_id,), icon=":material/open_in_new:")
        nav.fix_mask_button(row.image_id, key=f"{P}lq_fix_{k}", where=col, type="tertiary")
    reason = st.text_input("Reason recorded with the flags", key=LQ_REASON,
                           value=f"label quality ({name}'s validation predictions, cleanlab)")
    b1, b2, _ = st.columns([3, 2, 2])
    send = None
    if b1.button(f"Send {len(suggested)} suggested to the review queue", type="primary", disabled=suggested.empty,
                 icon=":material/flag:", key=P + "lq_send_suggested"):
        send = suggested
    if b2.button(f"Send {len(picked)} selected", disabled=picked.empty, icon=":material/flag:", key=P + "lq_send"):
        send = picked
    if send is not None:
        rows = send.assign(reason=reason.strip() + ": " + send["reason"])
        st.session_state[LQ_DONE] = flag_detections(store, key, rows)
        st.session_state[LQ_GEN] = gen + 1
        st.rerun()
    if st.session_state.get(LQ_DONE):
        st.success(f"Flagged {st.session_state.pop(LQ_DONE)} images: they wait in the Review page's queue.")


# --- export -----------------------------------------------------------------------------------------
@st.cache_data(max_entries=4, show_spinner="Packing the masks…")
def _zip(key: str, name: str, colour: bool, npz: bool, _column, _class_map) -> bytes:
    try:
        return masks_zip(_column, class_map=_class_map, colour=colour, npz=npz)
    except ValueError:   # masks of several sizes: the PNGs alone
        return masks_zip(_column, class_map=_class_map, colour=colour)


def export_section(ctx: Ctx) -> None:
    cmp, ds = ctx.cmp, ctx.ds
    st.subheader("Predicted masks")
    st.caption("One index PNG per image, named by its id (ids with '/' become folders); with colour previews in "
               "`colour/`; for an .npz dataset also `masks.npz` (masks and ids in the dataset's order) — the "
               "files `python -m seglib predict` writes.")
    c1, c2 = st.columns([2, 1], vertical_alignment="bottom")
    name = c1.selectbox("Masks of", cmp.names, **kept(EXPORT_COLUMN, cmp.names[-1], cmp.names))
    colour = c2.toggle("Colour previews too", **kept(EXPORT_COLOUR, False))
    column = export_column(ctx, name)
    if cmp.columns[name].info.get("crossfit"):
        weights = ", ".join(f"{m} {w:.2f}" for m, w in zip(*_fitted_weights(ctx, name), strict=True))
        st.caption(f"**{name}** is scored on this page cross-fitted; its masks are exported with the weights fitted "
                   f"on all the validation images ({weights}), as `seglib predict` applies them: one more "
                   "prediction pass.")
        if column is None:
            st.button(f"Predict {len(cmp.ids):,} images with these weights", icon=":material/play_arrow:",
                      key=P + "export_pass", on_click=ask_export_pass, args=(ctx, name))
            _metric_tables(ctx)
            return
    packed = _zip(ctx.key, name, colour, ds.kind == "npz", column, ds.class_map)
    st.download_button(f"Download {len(column):,} masks (.zip)", packed,
                       f"{ds.name}-{name.replace(' ', '-')}-masks.zip", "application/zip", icon=":material/download:",
                       key=P + "dl_zip")
    default = str(paths.data_dir() / "exports" / f"{ds.name}-{name.replace(' ', '-')}")
    out = st.text_input("Or write them into a folder", value=default, key=EXPORT_PATH)
    if st.button("Write masks", icon=":material/save:", key=P + "write"):
        target = roots.allowed(out)  # the app writes only under the dataset roots, as it reads
        try:
            if target is not None:
                with st.spinner("Writing the masks…"):
                    st.session_state[EXPORT_DONE] = write_masks(column, target, cmp.ids, ds.class_map, colour=colour,
                                                                npz=ds.kind == "npz")
        except (OSError, ValueError) as e:
            st.error(f"{out}: {e}")
    done = st.session_state.get(EXPORT_DONE)
    if done:
        st.success(f"Wrote {done['written']:,} masks to `{done['out']}`" + (f" and `{done['npz']}`" if done["npz"]
                                                                            else ""))
    _metric_tables(ctx)


def _fitted_weights(ctx: Ctx, name: str) -> tuple[tuple[str, ...], tuple[float, ...]]:
    ens = next(e for e in ctx.cmp.pred.ensembles if e.name == name)
    return ens.members, ens.member_weights()


def _metric_tables(ctx: Ctx) -> None:
    cmp = ctx.cmp
    st.subheader("Metric tables")
    c1, c2, c3 = st.columns(3)
    c1.download_button("Per-image metrics (CSV)", cmp.per_image().to_csv(), "per-image-metrics.csv", "text/csv",
                       icon=":material/download:", key=P + "dl_ex_per_image")
    if cmp.has_labels:
        c2.download_button("Dataset metrics (CSV)", cmp.scores_table().to_csv(), "dataset-metrics.csv", "text/csv",
                           icon=":material/download:", key=P + "dl_ex_scores")
        c3.download_button("Confusion matrices (CSV)", _confusions(ctx).to_csv(index=False), "confusion.csv",
                           "text/csv", icon=":material/download:", key=P + "dl_ex_cm")


def _confusions(ctx: Ctx) -> pd.DataFrame:
    """Long table: column, true class, predicted class, pixels."""
    names = ctx.layout.class_names
    rows = []
    for name in ctx.cmp.names:
        cm = ctx.cmp.confusion(name)
        rows += [{"column": name, "true": names[t], "predicted": names[p], "pixels": int(cm[t, p])}
                 for t in ctx.layout.scored for p in ctx.layout.scored]
    return pd.DataFrame(rows)
