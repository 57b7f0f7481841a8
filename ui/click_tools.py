"""The Label page's one-click tools, the Streamlit side: SAM 2 (clicks and a box give a proposed
mask, shown before it is applied), superpixels (a click or a drag gives whole regions the class)
and Snap to model (a click takes a disagreement region of the chosen run, a box its prediction
inside). The work is seglib.edit's (sam, superpixels, proposal, regions); the editor
(ui/editor.py) draws the canvas and hands its objects here through :class:`Hooks`.
"""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import streamlit as st

from seglib.data.classmap import hex_to_rgb
from seglib.edit import raster, regions, sam, superpixels, wand
from seglib.edit.clicks import Click
from seglib.edit.proposal import Proposal
from seglib.review import dataset_key

from . import edit_assist
from . import editor as ed
from .data import Loaded

P = "label_click_"
PROPOSALS = P + "proposals"      # dict[(dataset key, image id)] -> Proposal
SAM_MODEL = P + "sam_model"      # str: a sam.MODELS name
TIMING = P + "timing"            # dict: the last SAM 2 click's seconds (embedding, mask)
SP_SIZE, SP_COMPACT, SP_METHOD, SP_LINES = P + "sp_size", P + "sp_compact", P + "sp_method", P + "sp_lines"
NOTICE = P + "notice"            # (str, time): what the last click did not do, shown for NOTICE_SECONDS
NOTICE_SECONDS = 8
FILL_BY = P + "fill_by"          # "class" | "colour": what the Fill tool floods
TOLERANCE = P + "tolerance"      # int: the colour fill's tolerance (grey levels per channel)
FILL_KINDS = {"class": "one class in the mask", "colour": "similar colour in the image"}
SNAP_ACCENT = (255, 0, 255)


def notice(text: str) -> None:
    """Say what a click did not do, under the canvas."""
    st.session_state[NOTICE] = (text, time.time())


def proposal(loaded: Loaded, image_id: str) -> Proposal:
    props = st.session_state.setdefault(PROPOSALS, {})
    key = (dataset_key(loaded.ds), image_id)
    if key not in props:
        props[key] = Proposal(image_id, "sam2")
        while len(props) > 16:
            props.pop(next(iter(props)))
    return props[key]


# --- SAM 2 ---------------------------------------------------------------------------------------
@st.cache_resource(max_entries=2, show_spinner="Loading SAM 2…")
def _segmenter(name: str, folder: str) -> sam.Segmenter:
    return sam.Segmenter.load(name)


def segmenter() -> tuple[sam.Segmenter | None, str]:
    """The chosen SAM 2 model, or (None, one line on how to get it)."""
    name = st.session_state.get(SAM_MODEL, sam.DEFAULT)
    folder = sam.cached_folder(name)
    if folder is None:
        return None, sam.missing_message(name)
    try:
        return _segmenter(name, str(folder)), ""
    except sam.SamMissing as e:
        return None, str(e)


def _sam_prompt(loaded: Loaded, work: ed.Work, prop: Proposal, click: Click | None, box) -> None:
    seg, why = segmenter()
    if seg is None:
        notice(why)
        return
    image = loaded.ds.image(work.image_id)
    key = f"{dataset_key(loaded.ds)}/{work.image_id}"
    clicks = prop.clicks + ([click] if click else [])
    box = box if box is not None else prop.box
    window = sam.window_for(image.shape[:2], clicks, box, prop.result.window if prop.result else None)
    fresh = not seg.has_embedding(key, window)
    start = time.perf_counter()
    result = seg.segment(image, key, clicks, box=box, previous=prop.result)
    took = time.perf_counter() - start
    st.session_state[TIMING] = {"seconds": took, "embedded": fresh, "device": seg.device}
    prop.push(clicks, box, result)


def _download(name: str) -> None:
    bar = st.progress(0.0, text=f"Connecting to the hub for {sam.repo_of(name)}…")
    seen = {"done": 0, "total": None}

    def progress(done, total):
        seen.update(done=done, total=total)

    with ThreadPoolExecutor(1) as pool:   # the hub's threads cannot draw; this one does
        job = pool.submit(sam.fetch, name, progress)
        while not job.done():
            if seen["total"]:
                bar.progress(min(1.0, seen["done"] / seen["total"]),
                             text=f"Downloading {name}: {seen['done'] / 1e6:,.0f} of {seen['total'] / 1e6:,.0f} MB")
            time.sleep(0.25)
        try:
            job.result()
        except sam.SamMissing as e:
            bar.empty()
            st.error(str(e), icon=":material/cloud_off:")
            return
    st.rerun()


# --- superpixels -----------------------------------------------------------------------------------
@st.cache_resource(max_entries=6, show_spinner="Cutting the image into superpixels…")
def _superpixels(source: str, image_id: str, size: int, compactness: float, method: str, _image) -> np.ndarray:
    return superpixels.superpixels(_image, size, compactness, method)


def current_superpixels(loaded: Loaded, image_id: str) -> np.ndarray:
    return _superpixels(str(loaded.ds.source), image_id, int(ed.setting(SP_SIZE, superpixels.DEFAULT_SIZE)),
                        float(ed.setting(SP_COMPACT, superpixels.DEFAULT_COMPACTNESS)),
                        ed.setting(SP_METHOD, "slic"), loaded.ds.image(image_id))


def _paint_superpixels(loaded: Loaded, work: ed.Work, objects: list[dict], class_id: int, scale) -> None:
    seg = current_superpixels(loaded, work.image_id)
    points = []
    for obj in objects:
        shape = raster.object_shape(obj)
        if shape is not None:
            points.append(superpixels.path_points([raster.to_image(ln, scale) for ln in shape.lines]))
    found = superpixels.pick(seg, np.concatenate(points)) if points else None
    if found is None:
        work.gen += 1
        return
    box, pixels = found
    new = np.array(work.mask[box.slices], np.uint8, copy=True)
    new[pixels] = int(class_id)
    work.edit_box(box, new, "superpixel")


def _wand(loaded: Loaded, work: ed.Work, objects: list[dict], class_id: int, scale) -> None:
    """Fill by colour: each click floods the image's pixels of about its colour with the class."""
    image = loaded.ds.image(work.image_id)
    tolerance = float(ed.setting(TOLERANCE, wand.DEFAULT_TOLERANCE))
    for obj in objects:
        click, _ = _prompt_of(obj, scale)
        found = wand.colour_region(image, click.x, click.y, tolerance) if click else None
        if found is None:
            continue
        box, pixels = found
        new = np.array(work.mask[box.slices], np.uint8, copy=True)
        new[pixels] = int(class_id)
        work.edit_box(box, new, "wand")


# --- snap to the model -----------------------------------------------------------------------------
def _snap(loaded: Loaded, work: ed.Work, click: Click | None, box) -> None:
    pred, why = edit_assist.current_prediction(loaded, work)
    if pred is None:
        notice(why)
        return
    cmap = loaded.ds.class_map
    if click is not None:
        found = regions.region_at(regions.disagreement_regions(work.mask, pred, cmap), click.x, click.y)
        if found is None:
            notice("The model agrees with the mask where you clicked: nothing to take.")
            return
        work.edit(regions.accept_region(work.mask, pred, found), "snap")
        return
    b = raster.Box(int(box[1]), int(box[0]), int(box[3]) + 1, int(box[2]) + 1).clip(work.mask.shape)
    if not b.empty:
        work.edit_box(b, regions.prediction_in_box(work.mask, pred, b, cmap), "snap")


# --- the editor's hooks -----------------------------------------------------------------------------
def _prompt_of(obj: dict, scale) -> tuple[Click | None, tuple | None]:
    """A canvas object as a prompt: a point (a click) or a rect (a box, x0, y0, x1, y1 image px)."""
    shape = raster.object_shape(obj)
    if shape is None:
        return None, None
    pts = raster.to_image(shape.lines[0], scale)
    if shape.kind == "point":
        x, y = pts[0]
        return Click(int(np.floor(x + 0.5)), int(np.floor(y + 0.5)), ed.prompt() != "remove"), None
    lo, hi = np.floor(pts.min(axis=0) + 0.5), np.floor(pts.max(axis=0) + 0.5)
    return None, (float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1]))


@dataclass
class Hooks:
    """What the editor's canvas asks of the one-click tools."""

    loaded: Loaded

    def takes(self, tool: str) -> bool:
        """True for the tools whose canvas objects come here (the one-click tools, Fill by colour)."""
        return tool in ed.CLICK_TOOLS or (tool == "fill" and ed.setting(FILL_BY, "class") == "colour")

    def handle(self, work: ed.Work, tool: str, objects: list[dict], class_id: int, scale) -> None:
        """New canvas objects drawn with a one-click tool."""
        if tool == "fill":
            _wand(self.loaded, work, objects, class_id, scale)
            work.gen += 1
            return
        if tool == "superpixel":
            _paint_superpixels(self.loaded, work, objects, class_id, scale)
            return
        for obj in objects:
            click, box = _prompt_of(obj, scale)
            if click is None and box is None:
                continue
            if tool == "sam2":
                _sam_prompt(self.loaded, work, proposal(self.loaded, work.image_id), click, box)
            else:
                _snap(self.loaded, work, click, box)
        work.gen += 1   # clear the canvas's drawing (a proposal is not a mask edit)

    def background(self, work: ed.Work, tool: str, pic, class_id: int | None) -> str:
        """The canvas background: the proposal tinted in the class colour (SAM 2), or the
        superpixels' outlines."""
        if tool == "sam2":
            prop = proposal(self.loaded, work.image_id)
            if prop.empty:
                return pic.data_url()
            color = hex_to_rgb(self.loaded.ds.class_map.by_id(class_id).color) if class_id is not None else SNAP_ACCENT
            tint = pic.sample(prop.result.full(work.mask.shape))
            return pic.data_url_with(("sam2", id(prop.result), color), tint=tint, color=color)
        if tool == "superpixel" and ed.setting(SP_LINES, True):
            seg = current_superpixels(self.loaded, work.image_id)
            lines = superpixels.boundaries(pic.sample(seg))
            return pic.data_url_with(("superpixel", id(seg)), lines=lines, line_color=(255, 255, 255))
        return pic.data_url()

    def hint(self, tool: str) -> str:
        if tool == "fill":
            return "Click a region of the image: its pixels of about that colour take the class."
        if tool == "sam2":
            return {"add": "Click the object: SAM 2 proposes its mask (more clicks refine it).",
                    "remove": "Click where the proposal spills over to take that part out.",
                    "box": "Drag a box around the object."}[ed.prompt()]
        if tool == "superpixel":
            return "Click a superpixel to give it the class; drag across several."
        return {"box": "Drag a box: the model's prediction inside it."}.get(
            ed.prompt(), "Click inside a region where the model disagrees: the region takes the model's class.")


# --- the panel beside and below the canvas ------------------------------------------------------------
def options(loaded: Loaded, work: ed.Work, tool: str) -> None:
    """The chosen one-click tool's settings (in the palette column); Fill's choice of what it floods."""
    if tool == "fill":
        ed.remembered(FILL_BY, "class")
        st.radio("Fill floods", list(FILL_KINDS), key=FILL_BY, format_func=FILL_KINDS.get, on_change=ed.keep,
                 args=(FILL_BY,), help="One class in the mask: the 4-connected pixels of the clicked class. "
                                       "Similar colour: a magic wand on the image")
        if ed.setting(FILL_BY, "class") == "colour":
            ed.remembered(TOLERANCE, wand.DEFAULT_TOLERANCE)
            st.slider("Colour tolerance", 1, 80, key=TOLERANCE, on_change=ed.keep, args=(TOLERANCE,),
                      help="How far (in grey levels, per channel) a pixel may be from the clicked one")
    elif tool == "superpixel":
        ed.remembered(SP_METHOD, "slic")
        st.selectbox("Superpixels", list(superpixels.METHODS), key=SP_METHOD, format_func=superpixels.METHODS.get,
                     on_change=ed.keep, args=(SP_METHOD,))
        ed.remembered(SP_SIZE, superpixels.DEFAULT_SIZE)
        st.slider("Superpixel size (image px)", 4, 128, key=SP_SIZE, on_change=ed.keep, args=(SP_SIZE,),
                  help="About how many pixels a region spans; smaller follows edges closer, larger needs fewer clicks")
        if ed.setting(SP_METHOD, "slic") == "slic":
            ed.remembered(SP_COMPACT, superpixels.DEFAULT_COMPACTNESS)
            st.slider("Compactness", 1.0, 40.0, step=1.0, key=SP_COMPACT, on_change=ed.keep, args=(SP_COMPACT,),
                      help="Higher: rounder regions of even size; lower: regions follow colour more closely")
        ed.remembered(SP_LINES, True)
        st.toggle("Show superpixels", key=SP_LINES, on_change=ed.keep, args=(SP_LINES,))
    elif tool == "sam2":
        ed.remembered(SAM_MODEL, sam.DEFAULT)
        st.selectbox("SAM 2 model", list(sam.MODELS), key=SAM_MODEL, on_change=ed.keep, args=(SAM_MODEL,),
                     help="Hugging Face transformers' SAM 2, from the Hugging Face cache: tiny is the fastest")
        name = st.session_state[SAM_MODEL]
        if sam.cached_folder(name) is None:
            if st.button("Download", key=P + "download", icon=":material/download:", width="stretch",
                         help=sam.missing_message(name)):
                _download(name)
            st.caption(f"{name} is not in the Hugging Face cache yet.")
        else:
            st.caption(f"{name}: in the cache.")


def proposal_row(loaded: Loaded, work: ed.Work, tool: str, class_id: int | None) -> None:
    """Below the canvas: the last click's message; for SAM 2 the proposal's Apply / Back / Clear."""
    # shown for a few seconds: clearing the canvas after a click reruns the page once more
    said, at = st.session_state.get(NOTICE) or (None, 0.0)
    said = said if time.time() - at < NOTICE_SECONDS else None
    if said:
        st.warning(said, icon=":material/info:")
    if tool != "sam2":
        return
    seg_missing = sam.cached_folder(st.session_state.get(SAM_MODEL, sam.DEFAULT)) is None
    if seg_missing and not said:
        st.info("SAM 2 is not in the Hugging Face cache yet: press Download in the column on the right, or "
                f"run `{sam.fetch_command(st.session_state.get(SAM_MODEL, sam.DEFAULT))}`. Every other tool "
                "works without it.", icon=":material/download:")
    prop = proposal(loaded, work.image_id)
    a, b, c = st.columns(3)
    name = loaded.ds.class_map.by_id(class_id).name if class_id is not None else "?"

    def apply():
        prop.apply(work, class_id)

    a.button(f"Apply as {name}", icon=":material/check:", key=P + "apply", type="primary", width="stretch",
             shortcut="Enter", disabled=prop.empty or class_id is None, on_click=apply,
             help="Give the proposed pixels the chosen class (Enter); undo with Ctrl+Z")
    b.button("Take back the last click", icon=":material/undo:", key=P + "back", width="stretch",
             disabled=not prop.clicks and prop.box is None, on_click=prop.back)
    c.button("Clear the proposal", icon=":material/close:", key=P + "clear", width="stretch",
             disabled=prop.empty, on_click=prop.clear)
    timing = st.session_state.get(TIMING)
    if not prop.empty:
        n_pos = sum(cl.positive for cl in prop.clicks)
        parts = [f"{n} {kind} click{'s' if n != 1 else ''}" for n, kind in
                 ((n_pos, "add"), (len(prop.clicks) - n_pos, "remove")) if n] + (["a box"] if prop.box else [])
        what = " and ".join(parts)
        took = ""
        if timing:
            took = (f" · {timing['seconds']:.2f} s on {timing['device']}"
                    + (" (image embedding computed: once per image)" if timing["embedded"] else ""))
        st.caption(f"Proposal: {prop.area:,} px from {what}, SAM 2's own IoU estimate "
                   f"{prop.result.score:.2f}{took}. Pick another class in the palette to apply it as that.")
