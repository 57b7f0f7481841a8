"""The Label page's mask editor: a canvas over the image and its working mask, a class palette,
tools (brush, eraser, polygon, flood fill, ignore), undo/redo, save as a new version (with the
"someone saved since" check), Next/Previous through a queue, and the image's history (diff,
revert).

Every edit is exact: a stroke arrives from the canvas as Fabric geometry, is rasterised in
Python (seglib.edit.raster) with the tool's class id into the working mask, and the canvas is
cleared over a background that shows the new working mask. So the mask never holds a colour
guessed from the screen, and undo/redo are steps of the mask itself.

A stroke must register fast on a 2000x1800 photo: only the box it touches is rasterised and kept
as its undo step, the background (seglib.edit.canvas_picture) is redrawn only in that box and
encoded as a JPEG once per change, the canvas keeps its key (no new component, no reload of its
scripts) and the page runs the editor as a fragment (pages/6_label.py), so a stroke reruns only it.

The state machine (:class:`Work`), the tools' class ids, the queues and the pictures are plain
Python in :mod:`seglib.edit.session`; this module keeps a Work in the session and draws widgets.
"""
from __future__ import annotations

import datetime as _dt
import html
import math

import pandas as pd
import streamlit as st

from seglib.data.classmap import hex_to_rgb
from seglib.edit import raster
from seglib.edit.canvas_picture import CanvasPicture
from seglib.edit.session import (  # noqa: F401  (the page and its tests name them through this module)
    MAX_UNDO,
    Step,
    Work,
    apply_drawing,
    diff_picture,
    fresh_objects,
    queue_ids,
    save,
    start_work,
    step_in_queue,
    tool_class,
)
from seglib.review import corrections as corr
from seglib.review import current_user, dataset_key

from .data import Loaded, review_store

P = "label_"
IMAGE = P + "image"        # str: the image being edited
WORKS = P + "works"        # dict[(dataset key, image id)] -> Work: unsaved edits survive a page switch
TOOL = P + "tool"          # one of TOOLS
CLASS = P + "class"        # int: the class the brush and polygon paint
RADIUS = P + "radius"      # float: brush radius in image pixels
KEPT = "_kept"             # suffix: a plain key mirroring a widget, so its value outlives the widget
PARAMS = "_params"         # suffix: what a widget was last drawn with (its range, its labels), see _put
ALPHA = P + "alpha"        # float: mask opacity on the canvas
OUTLINE = P + "outline"    # bool: class borders on the canvas
IGNORE_SHAPE = P + "ignore_shape"   # "brush" | "polygon": how the ignore tool draws
QUEUE = P + "queue"        # which images Next / Previous go through: a QUEUES key
NOTE = P + "note"          # str: the note saved with the next version
STALE = P + "stale"        # (image id, Version): a save refused because another came since
FLASH = P + "flash"        # str: a message for the next run (saved, reverted, ...)
SECTION = P + "section"    # "Edit" | "History"
RUNS = P + "runs"          # int: full runs of the page so far (count_run)
PALETTE_RUN = P + "palette_run"   # int: the full run in which the palette was last drawn
HIST_NUMBER, HIST_AGAINST = P + "hist_number", P + "hist_against"

TOOLS = {  # key: (label, icon, shortcut, canvas drawing mode)
    "brush": ("Brush", ":material/brush:", "B", "freedraw"),
    "eraser": ("Eraser", ":material/ink_eraser:", "E", "freedraw"),
    "polygon": ("Polygon", ":material/pentagon:", "P", "polygon"),
    "fill": ("Fill", ":material/format_color_fill:", "F", "point"),
    "ignore": ("Ignore", ":material/block:", "I", "freedraw"),
    # one-click tools (ui/click_tools.py): their canvas mode follows the prompt kind
    "sam2": ("SAM 2", ":material/ads_click:", "S", "point"),
    "superpixel": ("Superpixel", ":material/grid_view:", "X", "freedraw"),
    "snap": ("Snap to model", ":material/model_training:", "M", "point"),
}
CLICK_TOOLS = ("sam2", "superpixel", "snap")
PROMPT = P + "prompt"      # "add" | "remove" | "box": what a SAM 2 / Snap click on the canvas is
PROMPTS = {"add": ("Add", ":material/add_circle:", "A"), "remove": ("Remove", ":material/do_not_disturb_on:", "D"),
           "box": ("Box", ":material/crop_free:", "O")}
QUEUES = {"review": "Review queue (needs relabel, flagged)", "all": "All images",
          "corrected": "Corrected images", "unlabeled": "Unlabeled images",
          "label_next": "Label next (unlabeled, least sure first)"}
RANKED = "label_next_order"   # list[str]: the Label next section's ranking (ui/label_next.py sets it)
CANVAS_MAX_W, CANVAS_MAX_H, MAX_ZOOM = 740, 720, 8
MAX_CANVAS_SIDE = 4000     # px: a bigger canvas is slow to draw on and to send
ZOOM = P + "zoom"          # int: canvas zoom (0 = fit the column)
ZOOMS = [0, 1, 2, 4, 8]
SCREEN_RADIUS = 4          # screen px: the brush's default radius, whatever the zoom
MAX_SCREEN_RADIUS = 40     # screen px: the radius slider reaches at least this far
PICTURE = P + "picture"    # (key, CanvasPicture): the current canvas background, kept between reruns
SEEN = P + "seen"          # (canvas key, objects): the drawing the canvas sent last
CANVAS_BOX = P + "canvas_box"   # the container the canvas scrolls in


def stale_message(v) -> str:
    """"version 3 was saved by ana at 2026-12-02 14:05 UTC since you opened this image"."""
    return (f"Version {v.number} was saved by {v.who or 'someone'} at {v.at:%Y-%m-%d %H:%M} UTC "
            "since you opened this image.")


def canvas_size(h: int, w: int, zoom: int = 0) -> tuple[int, int]:
    """(width, height) of the canvas for an h x w image: small images grow by whole pixels (at most
    8x), big ones shrink to fit about 740 x 720 (the column beside the palette); ``zoom`` > 0
    asks for that many screen pixels per image pixel (the canvas scrolls when wider), as far as a
    canvas of at most 4000 px on a side allows."""
    s = min(float(zoom), MAX_CANVAS_SIDE / max(h, w)) if zoom else min(CANVAS_MAX_W / w, CANVAS_MAX_H / h, MAX_ZOOM)
    if s >= 1:
        s = math.floor(s)
    return max(1, round(w * s)), max(1, round(h * s))


def _times(s: float) -> str:
    return f"{s:.0f}×" if s >= 1 and float(s).is_integer() else f"{s:.2g}×"


def zoom_label(zoom: int, h: int, w: int) -> str:
    """The zoom chooser's entry: "fit", "1:1", "2x", or "2x (1× here)" when the image is too big for it."""
    if zoom == 0:
        return "fit"
    real = canvas_size(h, w, zoom)[0] / w
    name = "1:1" if zoom == 1 else f"{zoom}x"
    return name if real == zoom else f"{name} ({_times(real)} here)"


def zoom_report(h: int, w: int, zoom: int, size: tuple[int, int]) -> str:
    """What the canvas really shows: "2061×1817 px image shown at 0.36× (fit)", or at 1× when 2x
    was asked of an image a 4000 px canvas cannot hold twice."""
    real = size[0] / w
    text = f"{w}×{h} px image shown at {_times(real)}"
    if zoom == 0:
        return text + " (fit)"
    if real != zoom:
        return text + (f": {zoom}x would make a canvas of {w * zoom:,}×{h * zoom:,} px, over the "
                       f"{MAX_CANVAS_SIDE:,} px a canvas may have")
    return text


def default_radius(scale: float) -> float:
    """The brush radius (image px) of a few screen pixels at canvas ``scale`` (screen px per image
    px), in the slider's steps of 0.5: 11 image px at 0.36x, 0.5 at 8x."""
    return max(0.5, round(SCREEN_RADIUS / scale * 2) / 2)


def radius_limit(scale: float) -> float:
    """The radius slider's end (image px): 30, or more when 30 image px are under 40 screen px."""
    return float(max(30, math.ceil(MAX_SCREEN_RADIUS / scale)))


def rgba(color: str, alpha: float) -> str:
    r, g, b = hex_to_rgb(color)
    return f"rgba({r}, {g}, {b}, {alpha})"


# --- widgets ----------------------------------------------------------------------------------
def _works() -> dict:
    return st.session_state.setdefault(WORKS, {})


def work_for(loaded: Loaded, image_id: str) -> Work:
    works = _works()
    key = (dataset_key(loaded.ds), image_id)
    if key not in works:
        if len(works) >= 16:   # keep the unsaved ones first, drop the oldest clean one
            clean = [k for k, w in works.items() if not w.dirty]
            works.pop(clean[0] if clean else next(iter(works)))
        works[key] = start_work(loaded.ds, image_id, review_store())
    elif not works[key].dirty and corr.latest_number(loaded.ds, image_id, review_store()) != works[key].base:
        works[key] = start_work(loaded.ds, image_id, review_store())   # saved elsewhere: nothing here to lose
    return works[key]


def forget(loaded: Loaded, image_id: str) -> None:
    _works().pop((dataset_key(loaded.ds), image_id), None)


def flash(text: str) -> None:
    st.session_state[FLASH] = text


def choose_image(loaded: Loaded) -> str:
    """The image to edit: ``?image=ID`` in the URL, else the last one, else the queue's first."""
    ds = loaded.ds
    asked = st.query_params.get("image")
    if asked and asked in ds and asked != st.session_state.get(IMAGE):
        st.session_state[IMAGE] = asked
    current = st.session_state.get(IMAGE)
    if current not in ds:
        current = ds.ids[0]
        st.session_state[IMAGE] = current
    if st.query_params.get("image") != current:
        st.query_params["image"] = current
    return current


def go_to(image_id: str | None) -> None:
    if image_id is not None:
        st.session_state[IMAGE] = image_id
        st.session_state.pop(STALE, None)
        st.query_params["image"] = image_id


def navigation(loaded: Loaded, image_id: str, work: Work) -> tuple[str | None, str | None]:
    """The queue chooser, Previous / Next (N, Shift+N) and the id box. Returns (previous, next)."""
    ds = loaded.ds
    states = review_store().states(dataset_key(ds))
    corrected = set(getattr(ds, "corrected_ids", []) or [])
    st.session_state.setdefault(QUEUE, "review" if any(s in ("relabel", "flagged") for s in states.values()) else "all")
    c1, c2, c3, c4 = st.columns([2.6, 1.5, 3, 1.5], vertical_alignment="bottom")
    queue = c1.selectbox("Next goes through", list(QUEUES), format_func=QUEUES.get, key=QUEUE)
    ranked = st.session_state.get(RANKED) or []
    ids = queue_ids(ds, queue, states, corrected, ranked)
    order = ranked if queue == "label_next" and image_id in ranked else ds.ids
    prev_id = step_in_queue(order, ids, image_id, -1)
    next_id = step_in_queue(order, ids, image_id, 1)
    c2.button("Previous", icon=":material/chevron_left:", key=P + "prev", shortcut="Shift+N", width="stretch",
              disabled=prev_id is None, on_click=go_to, args=(prev_id,), help="Shift+N")
    pick = c3.selectbox("Image", ds.ids, index=ds.ids.index(image_id), key=f"{P}pick_{image_id}",
                        help="Any image of the dataset; other pages link here with ?image=ID")
    if pick != image_id:
        go_to(pick)
        st.rerun()
    c4.button("Next", icon=":material/chevron_right:", key=P + "next", shortcut="N", width="stretch",
              disabled=next_id is None, on_click=go_to, args=(next_id,), help="N")
    where = f"{ids.index(image_id) + 1} of {len(ids)} in the queue" if image_id in ids else \
        f"not in the queue ({len(ids)} images)"
    state = states.get(image_id)
    st.caption(f"`{image_id}` · {where}" + (f" · review state **{state}**" if state else "")
               + f" · editing from **{'the original mask' if work.base == 0 else f'version {work.base}'}**")
    return prev_id, next_id


def _set(key: str, value) -> None:
    st.session_state[key] = value


def toolbar(loaded: Loaded) -> str:
    """The tools in one row (above the canvas). Returns the tool."""
    cmap = loaded.ds.class_map
    st.session_state.setdefault(TOOL, "brush")
    ignore_id = raster.ignore_class(cmap)
    if st.session_state[TOOL] == "ignore" and ignore_id is None:
        st.session_state[TOOL] = "brush"
    draw = [k for k in TOOLS if k not in CLICK_TOOLS]
    cols = st.columns(len(draw)) + st.columns([1, 1, 1.3])
    for col, (key, (label, icon, short, _mode)) in zip(cols, TOOLS.items(), strict=True):
        none = key == "ignore" and ignore_id is None
        col.button(label, icon=icon, key=f"{P}tool_{key}", shortcut=short, width="stretch",
                   type="primary" if st.session_state[TOOL] == key else "secondary", disabled=none,
                   on_click=_set, args=(TOOL, key),
                   help=f"{label} ({short})" + (": this class map marks no class as ignore (add \"ignore\": true "
                                                "to a class in classes.json)" if none else ""))
    tool = st.session_state[TOOL]
    if tool in ("sam2", "snap"):
        st.session_state.setdefault(PROMPT, "add")
        kinds = ["add", "remove", "box"] if tool == "sam2" else ["add", "box"]
        if prompt() not in kinds:
            st.session_state[PROMPT] = "add"
        row = st.columns(len(kinds) + 2)
        for col, kind in zip(row, kinds, strict=False):
            label, icon, short = PROMPTS[kind]
            label = "Click" if tool == "snap" and kind == "add" else label
            col.button(label, icon=icon, key=f"{P}prompt_{kind}", shortcut=short, width="stretch",
                       type="primary" if prompt() == kind else "secondary", on_click=_set, args=(PROMPT, kind),
                       help=f"{label} ({short})")
    return tool


def prompt() -> str:
    """What a click of SAM 2 or Snap is: add, remove (SAM 2's negative click) or box."""
    return st.session_state.get(PROMPT, "add")


def _remembered(key: str, default):
    """The value for the widget ``key`` about to be drawn: the user's last choice, kept under the
    plain ``key + KEPT`` by :func:`_keep` (Streamlit forgets a widget's value when the widget is
    not drawn in a run, as in the History section, or when its range or labels change with the
    zoom or the image), else ``default``. Written to the widget's key before it is drawn."""
    value = st.session_state.get(key + KEPT, default)
    _put(key, value)
    return value


def count_run() -> None:
    """Called at the top of every full run of the page: how :func:`_put` knows whether the palette
    was drawn in the run before (a fragment rerun does not count)."""
    st.session_state[RUNS] = st.session_state.get(RUNS, 0) + 1


def _put(key: str, value, params=None) -> None:
    """Write a widget's value before it is drawn, only when needed: every write is sent to the
    browser and replaces what the widget holds there, so writing the same value each run would
    drop arrow-key presses that arrive while a rerun is on its way (the slider jumps back). It
    is needed when the value differs, when the palette was not drawn in the run before (a visit
    to History) or when the widget's ``params`` changed (a slider's range, a chooser's labels):
    the browser then builds the widget anew, at its default."""
    runs = st.session_state.get(RUNS, 0)
    shown_just_before = st.session_state.get(PALETTE_RUN) in (runs - 1, runs)
    same_widget = st.session_state.get(key + PARAMS) == params
    st.session_state[key + PARAMS] = params
    if not (shown_just_before and same_widget) or key not in st.session_state or st.session_state[key] != value:
        st.session_state[key] = value


def _keep(key: str) -> None:
    """on_change: remember the user's choice under a key Streamlit does not drop."""
    st.session_state[key + KEPT] = st.session_state[key]


remembered, keep = _remembered, _keep   # for the one-click tools' settings (ui/click_tools.py)


def setting(key: str, default):
    """The user's choice for a view setting (opacity, outlines, zoom, ignore shape), or ``default``."""
    return st.session_state.get(key + KEPT, default)


def zoom() -> int:
    """The canvas zoom the chooser holds (0 = fit), also while the chooser is not drawn yet."""
    value = setting(ZOOM, 0)
    return int(value) if value in ZOOMS else 0


def canvas_geometry(work: Work) -> tuple[tuple[int, int], tuple[float, float]]:
    """(canvas (width, height), (sx, sy) canvas px per image px) at the current zoom."""
    h, w = work.mask.shape
    size = canvas_size(h, w, zoom())
    return size, raster.canvas_scale((h, w), size)


def palette(loaded: Loaded, work: Work, tool: str) -> tuple[int | None, float]:
    """Undo / redo, the class palette in the dataset's colours (keys 1-9), brush size, view
    switches. Returns (the class id the tool paints, the brush radius in image pixels). The brush
    size, opacity, outlines and zoom outlive a save or a visit to History."""
    cmap = loaded.ds.class_map
    u1, u2 = st.columns(2)
    u1.button("", icon=":material/undo:", key=P + "undo", shortcut="Ctrl+Z", width="stretch",
              disabled=not work.undo, on_click=work.step_back, help="Undo (Ctrl+Z)")
    u2.button("", icon=":material/redo:", key=P + "redo", shortcut="Ctrl+Y", width="stretch",
              disabled=not work.redo, on_click=work.step_forward, help="Redo (Ctrl+Y)")
    ids = cmap.ids
    if st.session_state.get(CLASS) not in ids:
        non_bg = [c for c in ids if c != raster.background_class(cmap) and c not in cmap.ignore_ids]
        st.session_state[CLASS] = (non_bg or ids)[0]
    css = "".join(f".st-key-{P}class_{c.id} button {{border-left: 18px solid {c.color} !important;"
                  "justify-content: flex-start;}" for c in cmap.classes)
    st.html(f"<style>{css}</style>")
    st.markdown("**Class**")
    for k, c in enumerate(cmap.classes):
        short = str(k + 1) if k < 9 else None
        st.button(c.name + (" (ignore)" if c.ignore else ""), key=f"{P}class_{c.id}", shortcut=short,
                  width="stretch", type="primary" if st.session_state[CLASS] == c.id else "secondary",
                  on_click=_set, args=(CLASS, c.id), help=f"class id {c.id}" + (f" · key {short}" if short else ""))
    class_id = tool_class(tool, st.session_state[CLASS], cmap)
    if class_id is not None:
        painted = cmap.by_id(class_id)
        what = {"eraser": "Erasing to", "ignore": "Setting to"}.get(tool, "Painting")
        st.html(f'<div style="margin:2px 0 6px 0">{what} <span style="display:inline-block;width:14px;height:14px;'
                f'background:{painted.color};border:1px solid #888;vertical-align:middle"></span> '
                f'<b>{html.escape(painted.name)}</b> (id {painted.id})</div>')
    if tool == "eraser":
        st.caption("The eraser paints the background class: the class named \"background\" if there is one, "
                   "else class id 0.")
    if tool == "ignore":
        _remembered(IGNORE_SHAPE, "brush")
        st.radio("Ignore with", ["brush", "polygon"], key=IGNORE_SHAPE, horizontal=True, on_change=_keep,
                 args=(IGNORE_SHAPE,))
    _, (sx, sy) = canvas_geometry(work)
    scale = math.sqrt(sx * sy)
    top = radius_limit(scale)
    # until the user picks a radius it is a few screen pixels at whatever zoom is shown
    wanted = min(max(float(st.session_state.get(RADIUS + KEPT) or default_radius(scale)), 0.5), top)
    _put(RADIUS, wanted, (top, _drawing_mode(tool)))
    radius = st.slider("Brush radius (image pixels)", 0.5, top, step=0.5, key=RADIUS, on_change=_keep, args=(RADIUS,),
                       disabled=_drawing_mode(tool) != "freedraw" or tool in CLICK_TOOLS,
                       help=f"Until you set it: {SCREEN_RADIUS} screen pixels at the zoom shown")
    st.caption(f"Radius {radius:g} image px = {radius * scale:.2g} screen px at this zoom")
    _remembered(ALPHA, 0.5)
    st.slider("Mask opacity", 0.0, 1.0, step=0.05, key=ALPHA, on_change=_keep, args=(ALPHA,))
    _remembered(OUTLINE, False)
    st.toggle("Class outlines", key=OUTLINE, on_change=_keep, args=(OUTLINE,))
    h, w = work.mask.shape
    _put(ZOOM, zoom(), (h, w))   # the user's zoom, or fit (a zoom no longer offered too)
    st.selectbox("Canvas zoom", ZOOMS, key=ZOOM, format_func=lambda z: zoom_label(z, h, w), on_change=_keep,
                 args=(ZOOM,), help="How many screen pixels an image pixel takes; fit: as large as the column "
                                    f"allows. A canvas has at most {MAX_CANVAS_SIDE:,} px on a side.")
    st.session_state[PALETTE_RUN] = st.session_state.get(RUNS, 0)
    return class_id, float(radius)


def _drawing_mode(tool: str) -> str:
    if tool in ("sam2", "snap"):
        return "rect" if prompt() == "box" else "point"
    if tool == "ignore":
        return "polygon" if setting(IGNORE_SHAPE, "brush") == "polygon" else "freedraw"
    return TOOLS[tool][3]


def _drawn(value) -> list[dict]:
    """The objects of the drawing the canvas sent (its session value)."""
    drawing = (value.get("drawing") or {}).get("raw") or {} if isinstance(value, dict) else {}
    return list(drawing.get("objects") or [])


def _on_canvas(key: str, work: Work, class_map, scale: tuple[float, float], hooks=None) -> None:
    """The canvas sent its drawing: rasterise the objects not applied yet into the working mask,
    with the tool and class chosen now. A stroke can arrive in the same rerun as the class
    shortcut pressed just before it (the canvas had no time to take the new colour): the class
    the user picked last is the one they mean, not the one this callback was drawn with."""
    objects = _drawn(st.session_state.get(key))
    seen_key, seen = st.session_state.get(SEEN, (None, []))
    new = fresh_objects(seen if seen_key == key else [], objects)
    st.session_state[SEEN] = (key, objects)
    tool = st.session_state.get(TOOL, "brush")
    class_id = tool_class(tool, st.session_state.get(CLASS, class_map.ids[0]), class_map)
    if new and class_id is not None:
        if hooks is not None and hooks.takes(tool):
            hooks.handle(work, tool, new, class_id, scale)
        elif tool not in CLICK_TOOLS:
            apply_drawing(work, new, tool, class_id, scale)


def _picture(loaded: Loaded, work: Work, size: tuple[int, int], alpha: float, outline: bool) -> CanvasPicture:
    """The canvas background, kept in the session for the image and canvas size shown: a stroke
    redraws only its box of it; another image or zoom makes a new one."""
    key = (dataset_key(loaded.ds), work.image_id, size)
    held = st.session_state.get(PICTURE)
    if held is None or held[0] != key:
        held = (key, CanvasPicture(loaded.ds.image(work.image_id), loaded.ds.class_map, size, alpha, outline))
        st.session_state[PICTURE] = held
    pic = held[1]
    pic.restyle(alpha, outline)
    pic.follow(work)
    return pic


def canvas(loaded: Loaded, work: Work, tool: str, class_id: int | None, radius: float, hooks=None) -> None:
    """The canvas: the image with the working mask as its background; what is drawn on it is
    applied to the working mask on arrival, then the canvas is cleared over the new background.
    It scrolls inside a box of the column's width (a 1:1 canvas never runs under the palette),
    which also hides the canvas's own floating toolbar above it: the page has Undo / Redo.
    ``hooks`` (ui/click_tools.Hooks) take the one-click tools' objects and draw their background."""
    from streamlit_drawable_canvas import st_canvas  # registers a component: only under streamlit

    h, w = work.mask.shape
    size, scale = canvas_geometry(work)
    pic = _picture(loaded, work, size, float(setting(ALPHA, 0.5)), bool(setting(OUTLINE, False)))
    mode = _drawing_mode(tool)
    color = loaded.ds.class_map.by_id(class_id).color if class_id is not None else "#ff00ff"
    clicking = hooks is not None and hooks.takes(tool)
    background = hooks.background(work, tool, pic, class_id) if clicking else pic.data_url()
    width = 3 if tool == "superpixel" else (raster.canvas_stroke_width(radius, scale) if mode == "freedraw" else 2)
    # one key per image and size: the component stays (a new colour, width or mode reconfigures
    # its tool in place); a new ``editorStep`` clears its drawing
    key = f"{P}canvas_{work.image_id}_{size[0]}x{size[1]}"
    st.html(f"<style>.st-key-{CANVAS_BOX} {{overflow: auto; max-height: {CANVAS_MAX_H + 40}px;}}</style>")
    with st.container(key=CANVAS_BOX):
        st_canvas(background_image=background, width=size[0], height=size[1], drawing_mode=mode,
                  stroke_width=width,
                  stroke_color=rgba(color, 0.75), fill_color=rgba(color, 0.45), point_display_radius=3,
                  update_streamlit=True, key=key, disabled=class_id is None,
                  initial_drawing={"objects": [], "editorStep": work.gen},
                  on_change=lambda: _on_canvas(key, work, loaded.ds.class_map, scale, hooks))
    hints = {"freedraw": "Drag to paint.", "polygon": "Click the corners; click the first corner again to fill.",
             "point": "Click a region to fill it (4-connected pixels of one class)."}
    hint = hooks.hint(tool) if clicking else hints[mode]
    st.caption(f"{hint} {zoom_report(h, w, zoom(), size)}.")


def save_row(loaded: Loaded, work: Work, next_id: str | None) -> None:
    """Note, Save (Ctrl+S), Save and next (Ctrl+Enter), Discard; the stale-version choice."""
    ds = loaded.ds
    note = st.text_input("Note (saved with the version)", key=f"{NOTE}_{work.image_id}",
                         placeholder="what was wrong (optional)")
    a, b, c = st.columns(3)
    do_save = a.button("Save", icon=":material/save:", key=P + "save", type="primary", shortcut="Ctrl+S",
                       disabled=not work.dirty, width="stretch", help="Ctrl+S: a new version; the file stays as it is")
    do_next = b.button("Save and next", icon=":material/skip_next:", key=P + "save_next", shortcut="Ctrl+Enter",
                       disabled=not work.dirty or next_id is None, width="stretch", help="Ctrl+Enter")
    if c.button("Discard changes", icon=":material/restart_alt:", key=P + "discard", disabled=not work.dirty,
                width="stretch"):
        forget(loaded, work.image_id)
        st.rerun()
    st.caption(f"{work.changed_px:,} pixels changed, not saved yet" if work.dirty else "No unsaved change.")
    if do_save or do_next:
        _save(ds, work, note, force=False, then=next_id if do_next else None)
    stale = st.session_state.get(STALE)
    if stale and stale[0] == work.image_id:
        v = stale[1]
        st.warning(stale_message(v) + " Load it (your changes here are dropped), or save yours over it "
                   "(it stays in the history).", icon=":material/sync_problem:")
        l1, l2 = st.columns(2)
        if l1.button(f"Load version {v.number}", key=P + "stale_load", width="stretch"):
            st.session_state.pop(STALE, None)
            forget(loaded, work.image_id)
            st.rerun()
        if l2.button("Save mine over it", key=P + "stale_force", type="primary", width="stretch"):
            st.session_state.pop(STALE, None)
            _save(ds, work, note, force=True, then=None)


def _save(ds, work: Work, note: str, force: bool, then: str | None) -> None:
    try:
        v = save(ds, work, note, review_store(), force=force)
    except corr.StaleVersion as e:
        st.session_state[STALE] = (work.image_id, e.latest)
        st.rerun()
    except ValueError as e:
        st.error(str(e))
        return
    st.session_state.pop(f"{NOTE}_{work.image_id}", None)
    flash(f"Saved {work.image_id} as version {v.number} ({v.changed_px or 0:,} pixels changed).")
    if then:
        go_to(then)
    st.rerun()


def show_flash() -> None:
    text = st.session_state.pop(FLASH, None)
    if text:
        st.toast(text, icon=":material/check_circle:")


# --- history ----------------------------------------------------------------------------------
def _when(at) -> str:
    if isinstance(at, _dt.datetime):
        return f"{at:%Y-%m-%d %H:%M:%S} UTC"
    return str(at)


def history_table(vs) -> pd.DataFrame:
    rows = [{"version": v.number, "who": v.who, "when": _when(v.at), "tool": v.tool, "note": v.note,
             "changed px": v.changed_px, "original": bool(v.original)} for v in reversed(vs)]
    return pd.DataFrame(rows, columns=["version", "who", "when", "tool", "note", "changed px", "original"])


def history_section(loaded: Loaded, work: Work) -> None:
    """The image's versions, a diff of any version against the one before or the original, revert."""
    ds, store = loaded.ds, review_store()
    vs = corr.versions(ds, work.image_id, store)
    if not vs:
        st.info("No saved version yet: this image shows its file's mask. Saving in the editor makes version 1.")
        return
    latest = vs[-1].number
    st.dataframe(history_table(vs), hide_index=True, width="stretch",
                 column_config={"changed px": st.column_config.NumberColumn(format="localized")})
    numbers = [v.number for v in reversed(vs)] + [0]
    label = {v.number: f"version {v.number} · {v.who} · {_when(v.at)}" for v in vs} | {0: "the original (file)"}
    c1, c2 = st.columns(2)
    number = c1.selectbox("Show version", numbers, format_func=label.get, key=f"{HIST_NUMBER}_{work.image_id}")
    against_choices = ["the version before", "the original"]
    against = c2.radio("Compared with", against_choices, key=f"{HIST_AGAINST}_{work.image_id}", horizontal=True)
    before_no = 0 if against == "the original" or number == 0 else max(
        [v.number for v in vs if v.number < number], default=0)
    after = corr.version_mask(ds, work.image_id, number, store)
    before = corr.version_mask(ds, work.image_id, before_no, store)
    image = ds.image(work.image_id)
    if after is None or before is None:
        st.info("This image has no mask in one of the two versions (unlabeled).")
    else:
        diff = corr.mask_diff(before, after, ds.class_map)
        left, right = st.columns([3, 2])
        left.image(diff_picture(image, before, after, ds.class_map), width="stretch",
                   caption=f"{label[number]} vs {label[before_no]}: {diff.changed_px:,} pixels differ (highlighted)")
        with right:
            st.markdown(f"**Pixels per class** ({label[before_no]} → {label[number]})")
            if diff.table.empty:
                st.caption("No pixel differs.")
            else:
                st.dataframe(diff.table, hide_index=True, width="stretch")
    cur = "the original" if number == 0 else f"version {number}"
    if number == latest:
        st.caption(f"{label[number]} is the current mask.")
        return
    if work.dirty:
        st.caption("Save or discard the editor's changes before reverting.")
    if st.button(f"Revert to {cur}", icon=":material/history:", key=P + "revert", disabled=work.dirty,
                 help="Makes it current as a new version; nothing is deleted"):
        try:
            v = corr.revert_correction(ds, work.image_id, number, store=store, who=current_user(), expected=latest)
        except corr.StaleVersion as e:
            st.warning(stale_message(e.latest) + " Look at the history again.")
            return
        forget(loaded, work.image_id)
        flash(f"Reverted {work.image_id} to {cur}: version {v.number}.")
        st.rerun()
