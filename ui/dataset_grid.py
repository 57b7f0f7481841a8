"""Dataset page glue: the thumbnail grid, its view controls, the detail view and review actions."""
from __future__ import annotations

import base64
import io
from concurrent.futures import ThreadPoolExecutor

import pandas as pd
import streamlit as st
from PIL import Image
from streamlit.runtime.scriptrunner import add_script_run_ctx, get_script_run_ctx

from seglib import browse, viz
from seglib.review import current_user, dataset_key
from seglib.viz import View

from . import browse as ui_browse
from . import label_errors, nav
from .data import Loaded, review_store

PAGE = "dataset_page"            # int: 0-based page of the grid
PAGE_FOR = "dataset_page_for"    # the filter the page number belongs to (a new filter starts at page 0)
DETAIL = "dataset_detail"        # str: image id shown in the detail view
DETAIL_SCALE = "dataset_detail_scale"  # "Fit" | "1:1": how the detail view shows a big image
VIEW = "dataset_view"            # View: the grid's drawing settings, reused by the detail view
V = "dataset_v_"                 # prefix of the view widget keys
MODE_LABELS = {"overlay": "Overlay", "image": "Image", "mask": "Mask", "side_by_side": "Side by side"}
THUMB_PX = 256
DETAIL_PX = 1024


@st.cache_data(max_entries=5000, show_spinner=False)
def _thumb(key: str, image_id: str, view: View, size: int, _ds) -> tuple[bytes, str]:
    return viz.thumbnail(_ds, image_id, view, size)


def thumbnails(loaded: Loaded, ids: list[str], view: View, size: int = THUMB_PX) -> list[tuple[bytes, str]]:
    """Cached thumbnails keyed by (the image's key: files and mask version, image id, view, size);
    misses are drawn in threads (decoding releases the GIL), each thread attached to this script
    run so the cache is shared. A saved correction draws its image again, no other."""
    ctx = get_script_run_ctx()

    def one(image_id: str):
        add_script_run_ctx(ctx=ctx)
        return _thumb(loaded.image_key(image_id), image_id, view, size, loaded.ds)

    if len(ids) <= 4:
        return [one(i) for i in ids]
    with ThreadPoolExecutor(4) as pool:
        return list(pool.map(one, ids))


def view_controls(loaded: Loaded) -> tuple[View, int, int]:
    """Mode, opacity, outlines, visible classes, grid size. Returns (view, per page, columns)."""
    cmap = loaded.ds.class_map
    st.session_state.setdefault(V + "visible", cmap.ids)
    st.session_state[V + "visible"] = [c for c in st.session_state[V + "visible"] if c in cmap.ids]
    c1, c2, c3, c4, c5 = st.columns([5, 3, 2, 2, 2])
    mode = c1.segmented_control("Show", list(MODE_LABELS), format_func=MODE_LABELS.get, key=V + "mode",
                                default="overlay", required=True)
    alpha = c2.slider("Mask opacity", 0.0, 1.0, 0.45, 0.05, key=V + "alpha", disabled=mode in ("image", "mask"))
    outline = c3.toggle("Class outlines", key=V + "outline", disabled=mode in ("image", "mask"))
    per_page = c4.selectbox("Per page", [24, 36, 48], key=V + "per_page")
    cols = c5.selectbox("Columns", [3, 4, 6, 8], index=2, key=V + "cols")
    p1, p2, p3 = st.columns([8, 1, 1])
    visible = p1.pills("Classes drawn", cmap.ids, selection_mode="multi", format_func=cmap.name_of, key=V + "visible")
    p2.button("Show all", key=V + "all", on_click=lambda: st.session_state.update({V + "visible": cmap.ids}))
    p3.button("Hide all", key=V + "none", on_click=lambda: st.session_state.update({V + "visible": []}))
    st.html(viz.legend_html(cmap, visible))
    drawn = None if set(visible) >= set(cmap.ids) else tuple(sorted(visible))
    st.session_state[VIEW] = View(mode or "overlay", float(alpha), drawn, bool(outline))
    return st.session_state[VIEW], int(per_page), int(cols)


def _pager(n_pages: int, f) -> int:
    if st.session_state.get(PAGE_FOR) != f:
        st.session_state[PAGE_FOR] = f
        st.session_state[PAGE] = 0
    page = min(st.session_state.get(PAGE, 0), n_pages - 1)
    st.session_state[PAGE] = page

    def go(delta: int) -> None:
        st.session_state[PAGE] = min(max(st.session_state[PAGE] + delta, 0), n_pages - 1)

    a, b, c = st.columns([1, 2, 1])
    a.button("◀ Previous", key="dataset_prev", disabled=page == 0, on_click=go, args=(-1,), width="stretch")
    b.markdown(f"<div style='text-align:center;padding-top:6px'>Page {page + 1} of {n_pages}</div>",
               unsafe_allow_html=True)
    c.button("Next ▶", key="dataset_next", disabled=page >= n_pages - 1, on_click=go, args=(1,), width="stretch")
    return page


def grid(loaded: Loaded, ids: list[str], states: dict[str, str], view: View, per_page: int, n_cols: int, f) -> None:
    """One page of thumbnails; an image's name opens its detail view."""
    if not ids:
        st.info("No image matches the filter. Remove a condition above.")
        return
    page_ids, n_pages = browse.page_of(ids, st.session_state.get(PAGE, 0), per_page)
    page = _pager(n_pages, f)
    page_ids, _ = browse.page_of(ids, page, per_page)
    pictures = thumbnails(loaded, page_ids, view)
    cols = st.columns(n_cols)
    for k, (image_id, (data, _mime)) in enumerate(zip(page_ids, pictures, strict=True)):
        with cols[k % n_cols]:
            st.image(data, width="stretch")
            state = states.get(image_id)
            label = f"{image_id} · {state}" if state else image_id
            if st.button(label, key=f"dataset_open_{image_id}", type="tertiary", icon=":material/zoom_in:",
                         help="Open at full size"):
                st.session_state[DETAIL] = image_id
                detail(loaded, ids)


def pannable(picture, height: int = 640) -> None:
    """``picture`` at its own size in a box that scrolls both ways (st.image would shrink it to
    the column). PNG: class borders stay exact; fast compression, it is sent once."""
    buf = io.BytesIO()
    Image.fromarray(picture).save(buf, format="PNG", compress_level=1)
    h, w = picture.shape[:2]
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    st.html(f'<div class="seglib-pan" style="overflow:auto;max-height:{height}px;max-width:100%">'
            f'<img src="data:image/png;base64,{data}" width="{w}" height="{h}" '
            f'style="max-width:none;image-rendering:pixelated" alt="1:1"></div>')
    st.caption(f"1:1, {h}×{w} px: scroll (or Shift + wheel) to pan.")


@st.dialog("Image detail", width="large")
def detail(loaded: Loaded, ids: list[str]) -> None:
    """Full-size view of ``st.session_state[DETAIL]`` with per-class pixels, flag/clear and
    stepping through the filtered ids."""
    image_id = st.session_state[DETAIL]
    ds, cmap = loaded.ds, loaded.ds.class_map
    key, store = dataset_key(ds), review_store()
    view = st.session_state.get(VIEW, View())
    img, mask, problems = ds.load_pair(image_id)
    st.subheader(image_id)
    for p in problems:
        st.warning(f"`{p.file}`: {p.problem}")
    if img is None:
        return
    own_size = (img, mask)
    big = max(img.shape[:2]) > DETAIL_PX
    scale = st.segmented_control("Size", ["Fit", "1:1"], default="Fit", key=DETAIL_SCALE,
                                 disabled=not big, help="1:1: one screen pixel per image pixel; scroll to pan") \
        if big else "Fit"
    if scale == "1:1":
        pannable(view.draw(img, mask, cmap))
    else:
        if not big:  # small crops: grow by whole pixels, or the browser blurs them
            img, mask = viz.thumbnail_pair(img, mask, DETAIL_PX)
        st.image(view.draw(img, mask, cmap), width="stretch")
    label_errors.findings_view(loaded, image_id, lambda: view.draw(*own_size, cmap))
    table = ui_browse.per_image(loaded)
    row = table.loc[image_id]
    overlay = ds.corrections
    version = overlay.versions.get(image_id) if overlay is not None else None
    st.caption(f"{int(row['height'])}×{int(row['width'])}×{int(row['channels'])} · mean {row['mean']:.1f} · "
               f"std {row['std']:.1f} · range {row['min']:.0f}–{row['max']:.0f}"
               + (f" · mask: **corrected, version {version}** (Label page; the file is unchanged)" if version else ""))
    left, right = st.columns([3, 2])
    with left:
        if mask is None:
            st.info("This image has no mask (unlabeled).")
        else:
            st.dataframe(browse.class_pixels(row, cmap), hide_index=True, width="stretch", column_config={
                "share": st.column_config.ProgressColumn("share", format="percent", min_value=0.0, max_value=1.0),
                "pixels": st.column_config.NumberColumn(format="localized")})
    with right:
        _detail_review(store, key, image_id)
        nav.fix_mask_button(image_id, key="dataset_detail_fix", width="stretch")
        _detail_steps(image_id, ids)


def _detail_review(store, key: str, image_id: str) -> None:
    state = store.states(key).get(image_id)
    st.markdown(f"Review state: **{state or 'not reviewed'}**")
    reason = st.text_input("Reason", key="dataset_detail_reason", placeholder="why flag it (optional)")
    a, b = st.columns(2)
    if a.button("Flag", key="dataset_detail_flag", icon=":material/flag:", type="primary", width="stretch"):
        store.flag(key, [image_id], reason=reason or "flagged on the Dataset page", who=current_user())
        st.rerun(scope="fragment")
    if b.button("Clear", key="dataset_detail_clear", icon=":material/flag_circle:", disabled=state is None,
                width="stretch"):
        store.set_state(key, [image_id], "cleared", who=current_user())
        st.rerun(scope="fragment")


def _detail_steps(image_id: str, ids: list[str]) -> None:
    if image_id not in ids:
        return
    k = ids.index(image_id)
    st.caption(f"Image {k + 1:,} of {len(ids):,} in the filter")
    a, b = st.columns(2)
    if a.button("◀ Previous", key="dataset_detail_prev", disabled=k == 0, width="stretch"):
        st.session_state[DETAIL] = ids[k - 1]
        st.rerun(scope="fragment")
    if b.button("Next ▶", key="dataset_detail_next", disabled=k >= len(ids) - 1, width="stretch"):
        st.session_state[DETAIL] = ids[k + 1]
        st.rerun(scope="fragment")


def review_actions(loaded: Loaded, ids: list[str], states: dict[str, str], filtered: bool) -> None:
    """Flag, or clear, every image the filter keeps, in one click."""
    key, store = dataset_key(loaded.ds), review_store()
    n_reviewed = sum(1 for i in ids if i in states)
    what = "matching" if filtered else "in the dataset"
    with st.popover("Flag or clear", icon=":material/flag:", disabled=not ids, width="stretch"):
        st.caption(f"Every one of the {len(ids):,} images {what}:")
        reason = st.text_input("Reason", key="dataset_bulk_reason", placeholder="why flag them (optional)")
        if st.button(f"Flag all {len(ids):,} {what}", key="dataset_bulk_flag", type="primary", icon=":material/flag:"):
            store.flag(key, ids, reason=reason or "flagged from a Dataset filter", who=current_user())
            st.toast(f"Flagged {len(ids):,} images")
            st.rerun()
        if st.button(f"Clear the {n_reviewed:,} reviewed among them", key="dataset_bulk_clear",
                     disabled=not n_reviewed, icon=":material/flag_circle:"):
            store.set_state(key, [i for i in ids if i in states], "cleared", who=current_user())
            st.toast(f"Cleared {n_reviewed:,} images")
            st.rerun()


def counts_caption(states: dict[str, str], ids: list[str]) -> str:
    """'12 flagged · 3 exclude' among ``ids`` (empty when none is reviewed)."""
    vc = pd.Series([states[i] for i in ids if i in states], dtype=object).value_counts()
    return " · ".join(f"{n:,} {s}" for s, n in vc.items())
