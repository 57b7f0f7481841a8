"""The Images section of the Compare page: one image at a time, every column side by side, then
where two columns disagree, each one's errors against the ground truth, and its confidence or
entropy; previous / next in the order of the per-image table, or jump to an id."""
from __future__ import annotations

import math
from html import escape

import streamlit as st

from seglib import viz
from seglib.predict import ORDERS, best_cells
from seglib.viz import maps

from . import nav
from .compare import COL_A, COL_B, IMAGE, ORDER, Ctx, P, kept, pair

ALPHA, OUTLINE, CLASSES, MAP_KIND = P + "alpha", P + "outline", P + "classes", P + "map_kind"
ZOOM_ON, ZOOM, ZOOM_X, ZOOM_Y = P + "zoom_on", P + "zoom", P + "zoom_x", P + "zoom_y"
DISPLAY = 512     # longer side of the pictures, px: a 64x128 crop grows 4x by whole pixels (crisp borders)
ZOOM_DISPLAY = 1024   # longer side of the zoomed pair's pictures
ZOOMS = [1, 2, 4, 8]


def order_key(ctx: Ctx) -> str:
    """The current order (set in the Per image section); label orders fall back without labels."""
    key = st.session_state.get(ORDER) or ctx.cmp.default_order()
    if ORDERS.get(key, ("", True))[1] and not ctx.cmp.has_labels:
        key = ctx.cmp.default_order()
    return key


def ordered_ids(ctx: Ctx) -> list[str]:
    """Every image in the current order: those the order ranks first, then the rest by id."""
    a, b = pair(ctx)
    ranked = list(ctx.cmp.ranking(order_key(ctx), a, b).index)
    seen = set(ranked)
    return ranked + [i for i in ctx.cmp.ids if i not in seen]


def _go(image_id: str) -> None:
    st.session_state[IMAGE] = image_id


def _grow(rgb):
    return viz.thumbnail_pair(rgb, None, DISPLAY)[0]


def _tile(col, title: str, rgb, caption: str = "") -> None:
    col.markdown(f"**{escape(title)}**")
    col.image(_grow(rgb), width="stretch")
    if caption:
        col.caption(caption)


def _swatches(items: list[tuple[tuple[int, int, int], str]]) -> str:
    spans = [f'<span style="white-space:nowrap;margin-right:10px"><span style="display:inline-block;width:11px;'
             f'height:11px;background:rgb{c};vertical-align:middle;margin-right:3px"></span>{escape(t)}</span>'
             for c, t in items]
    return '<div style="font-size:0.8rem;line-height:1.6">' + "".join(spans) + "</div>"


def _controls(ctx: Ctx) -> tuple[float, bool, list[int] | None, str]:
    cmap = ctx.ds.class_map
    ids = [c for c in ctx.layout.scored if c in cmap.ids] or cmap.ids
    k1, k2, k3, k4, k5 = st.columns([3, 2, 3, 3, 3], vertical_alignment="bottom")
    alpha = k1.slider("Mask opacity", 0.0, 1.0, step=0.05, **kept(ALPHA, 0.5))
    outline = k2.toggle("Class outlines", **kept(OUTLINE, False))
    a, b = pair(ctx)
    k3.selectbox("A", ctx.names, **kept(COL_A, a, ctx.names), help="First column of the disagreement and error maps")
    k4.selectbox("B", ctx.names, **kept(COL_B, b, ctx.names), help="Second column")
    kind = k5.segmented_control("Heat map", ["confidence", "entropy"], required=True,
                                **kept(MAP_KIND, "confidence", ["confidence", "entropy"]))
    if CLASSES in st.session_state:  # another dataset's classes may linger
        st.session_state[CLASSES] = [c for c in st.session_state[CLASSES] if c in ids]
    p1, p2, p3 = st.columns([10, 1, 1], vertical_alignment="bottom")
    visible = p1.pills("Classes drawn", ids, selection_mode="multi", format_func=cmap.name_of,
                       **kept(CLASSES, list(ids)))
    p2.button("All", key=P + "classes_all", on_click=lambda: st.session_state.update({CLASSES: list(ids)}))
    p3.button("None", key=P + "classes_none", on_click=lambda: st.session_state.update({CLASSES: []}))
    drawn = None if set(visible) >= set(ids) else sorted(visible)
    return float(alpha), bool(outline), drawn, kind or "confidence"


def image_section(ctx: Ctx) -> None:
    cmp, ds = ctx.cmp, ctx.ds
    order = ordered_ids(ctx)
    if not order:
        st.info("No image to show.")
        return
    current = st.session_state.get(IMAGE)
    if current not in order:
        current = order[0]
    pos = order.index(current)
    n1, n2, n3, n4 = st.columns([2, 5, 2, 3], vertical_alignment="center")
    n1.button("◀ Previous", key=P + "prev", disabled=pos == 0, on_click=_go, args=(order[pos - 1],), width="stretch")
    n2.markdown(f"<div style='text-align:center'><b>{escape(current)}</b> · {pos + 1} / {len(order)} · "
                f"{escape(ORDERS[order_key(ctx)][0])}</div>", unsafe_allow_html=True)
    n3.button("Next ▶", key=P + "next", disabled=pos >= len(order) - 1, on_click=_go,
              args=(order[min(pos + 1, len(order) - 1)],), width="stretch")
    n4.selectbox("Jump to image", order, label_visibility="collapsed", placeholder="Jump to an image id…",
                 **kept(IMAGE, current, order))
    alpha, outline, visible, kind = _controls(ctx)
    a, b = pair(ctx)
    image, truth, problems = ds.load_pair(current)
    if image is None:
        st.error("; ".join(p.problem for p in problems) or f"{current} cannot be read")
        return
    scores = {n: cmp.image_scores(n) for n in cmp.names}
    row = cmp.ids.index(current)
    cmap = ds.class_map
    tiles = [("Image", viz.to_rgb(image), f"{image.shape[0]}×{image.shape[1]} (H×W)")]   # as Home writes sizes
    if truth is not None:
        tiles.append(("Ground truth", viz.render(image, truth, cmap, "overlay", alpha, visible, outline), ""))
    for name in cmp.names:
        miou = scores[name]["miou"][row]
        tiles.append((name, viz.render(image, cmp.mask(name, current), cmap, "overlay", alpha, visible, outline),
                      f"mIoU {miou:.3f}" if truth is not None and not math.isnan(miou) else "no ground truth"))
    per_row = min(max(len(tiles), 4), 6)   # the analysis row below shares the tile size
    _rows(tiles, per_row)
    st.html(viz.legend_html(cmap, visible))
    nav.fix_mask_button(current, key=P + "fix")
    if st.toggle(f"Zoom in on {a} and {b}", help="The pair A and B (and the ground truth) large, side by side; "
                 "zoom into a region to judge boundaries pixel by pixel", **kept(ZOOM_ON, False)):
        _zoomed_pair(ctx, image, truth, current, (a, b), alpha, visible, outline)

    ma, mb = cmp.mask(a, current), cmp.mask(b, current)
    gt = truth if truth is not None else None
    analysis = [(f"{a} vs {b}", maps.disagreement_map(image, ma, mb, gt, visible=visible),
                 f"differ on {cmp.image_disagreement(a, b, current):.1%} of the pixels")]
    if gt is not None:
        for name, m in ((a, ma), (b, mb)):
            wrong = 1.0 - scores[name]["pixel_accuracy"][row]   # of the scored pixels, as in the tables
            analysis.append((f"Errors · {name}", maps.error_map(image, gt, m, visible=visible),
                             f"{wrong:.1%} of the pixels wrong" if not math.isnan(wrong) else "no scored pixels"))
    for name in (a,) if gt is not None else (a, b):   # without labels, both columns' maps
        col = cmp.columns[name]
        values = col.confidence_map(current) if kind == "confidence" else col.entropy_map(current)
        scale = "Viridis" if kind == "confidence" else "Inferno"
        analysis.append((f"{kind.capitalize()} · {name}", maps.heat_map(values, ma.shape, scale),
                         f"mean {values.mean():.2f} · " + ("dark = unsure, yellow = sure" if kind == "confidence"
                                                           else "dark = sure, bright = unsure")))
    _rows(analysis, per_row)
    legend = [(maps.A_WINS, f"only {a} right"), (maps.B_WINS, f"only {b} right"),
              (maps.WRONG, "wrong (both wrong, in the first map)")] if gt is not None else [
              (maps.DIFFER, f"{a} and {b} differ")]
    st.html(_swatches(legend))
    if gt is not None:
        _class_table(ctx, current)


def zoom_window(shape: tuple[int, int], factor: int, cx: float, cy: float) -> tuple[slice, slice]:
    """Rows and columns of the 1/factor-size window of an (H, W) image centred near (cx, cy), in
    0..1 of the width and height, kept inside the image."""
    h, w = shape
    wh, ww = max(1, round(h / factor)), max(1, round(w / factor))
    top = min(max(0, round(cy * h - wh / 2)), h - wh)
    left = min(max(0, round(cx * w - ww / 2)), w - ww)
    return slice(top, top + wh), slice(left, left + ww)


def _zoomed_pair(ctx: Ctx, image, truth, image_id: str, pair_names: tuple[str, str], alpha: float,
                 visible, outline: bool) -> None:
    z1, z2, z3 = st.columns([2, 3, 3], vertical_alignment="bottom")
    factor = z1.segmented_control("Zoom", ZOOMS, format_func=lambda f: f"{f}×", required=True,
                                  **kept(ZOOM, 2, ZOOMS)) or 1
    cx = z2.slider("Centre, across", 0.0, 1.0, step=0.05, disabled=factor == 1, **kept(ZOOM_X, 0.5))
    cy = z3.slider("Centre, down", 0.0, 1.0, step=0.05, disabled=factor == 1, **kept(ZOOM_Y, 0.5))
    rows, cols = zoom_window(image.shape[:2], factor, cx, cy)
    crop = image[rows, cols]
    cmap = ctx.ds.class_map
    tiles = [] if truth is None else [("Ground truth", truth[rows, cols])]
    tiles += [(name, ctx.cmp.mask(name, image_id)[rows, cols]) for name in dict.fromkeys(pair_names)]
    scores = {n: ctx.cmp.image_scores(n)["miou"][ctx.cmp.ids.index(image_id)] for n in pair_names}
    for col, (title, mask) in zip(st.columns(len(tiles)), tiles, strict=True):
        col.markdown(f"**{escape(title)}**" + (f" · mIoU {scores[title]:.3f}" if title in scores and truth is not None
                                               and not math.isnan(scores[title]) else ""))
        rgb = viz.render(crop, mask, cmap, "overlay", alpha, visible, outline)
        col.image(viz.thumbnail_pair(rgb, None, ZOOM_DISPLAY)[0], width="stretch")
    st.caption(f"Rows {rows.start}–{rows.stop - 1}, columns {cols.start}–{cols.stop - 1} of {image.shape[0]}×"
               f"{image.shape[1]}, each pixel drawn as a square.")


def _rows(tiles: list[tuple[str, object, str]], per_row: int) -> None:
    for start in range(0, len(tiles), per_row):
        cols = st.columns(per_row)
        for col, (title, rgb, caption) in zip(cols, tiles[start : start + per_row], strict=False):
            _tile(col, title, rgb, caption)


def _class_table(ctx: Ctx, image_id: str) -> None:
    """IoU of each class on this image, one row per column, the best of each class shaded
    (– : the class is in neither the label nor the prediction)."""
    table = ctx.cmp.image_class_table(image_id)
    shade = best_cells(table).replace({True: "background-color: #d7ecd9", False: ""})
    shown = table.map(lambda v: "–" if math.isnan(v) else f"{v:.3f}")
    st.dataframe(shown.style.apply(lambda _: shade, axis=None), width="stretch")
