"""The editor's working state and its pictures: an image being edited (:class:`Work`: the mask,
the version it started from, exact undo/redo steps, each kept as the box it changed), the tools'
class ids, canvas drawings applied as steps, saving as a new version, the queues Next / Previous
go through, and the diff and region pictures of the Label page (its canvas background is
:mod:`.canvas_picture`). Plain Python: the page (ui/editor.py) only keeps a Work in the session
and draws widgets around it.

>>> work = start_work(ds, "00012")
>>> apply_drawing(work, canvas_objects, "brush", class_id=3, scale=(5.0, 5.0))
>>> work.step_back(); work.step_forward()
>>> save(ds, work, note="crater")          # StaleVersion when another save came since
"""
from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from .. import viz
from ..review import corrections as corr
from ..review import current_user
from ..viz import maps
from . import raster

MAX_UNDO = 100
TOUCHED_KEPT = 256    # boxes remembered for the canvas picture; older: it redraws all
REGION_COLOR = (255, 0, 255)   # disagreement regions' outlines


@dataclass
class Step:
    """One edit: the box it happened in, the pixels of the box it changed (flat indices into the
    box, row by row) and their ids before and after. Only the box is looked at, never the mask."""

    tool: str
    box: raster.Box
    index: np.ndarray
    before: np.ndarray
    after: np.ndarray

    def put(self, mask: np.ndarray, values: np.ndarray) -> None:
        rows, cols = np.divmod(self.index, self.box.shape[1])
        mask[self.box.y0 + rows, self.box.x0 + cols] = values


@dataclass
class Work:
    """An image being edited: the version it started from (``base``; 0 = the file's mask), the
    working mask, and undo/redo stacks of exact steps. ``gen`` names the canvas drawing: it
    changes with every edit, so the next run clears what was drawn over the new mask;
    :meth:`touched_since` says which box of the mask changed since a given ``gen``."""

    image_id: str
    base: int
    mask: np.ndarray
    saved: np.ndarray
    undo: list[Step] = field(default_factory=list)
    redo: list[Step] = field(default_factory=list)
    gen: int = 0
    _changed: int | None = field(default=None, repr=False)        # pixels != saved, kept box by box
    _touched: list = field(default_factory=list, repr=False)      # (gen, Box) of the latest mask changes
    _forgotten: int = field(default=-1, repr=False)               # the last gen whose box was dropped

    @property
    def changed_px(self) -> int:
        if self._changed is None:
            self._changed = int(np.count_nonzero(self.mask != self.saved))
        return self._changed

    @property
    def dirty(self) -> bool:
        return self.changed_px > 0

    def tools(self) -> str:
        """The tools of the steps since the last save, e.g. "brush+fill" (what the version records)."""
        used = list(dict.fromkeys(s.tool for s in self.undo))
        return "+".join(used) or "editor"

    def touched_since(self, gen: int) -> raster.Box | None:
        """The box holding every pixel changed after ``gen`` (None: nothing changed); the whole
        mask when ``gen`` is older than what is remembered."""
        if gen < self._forgotten:
            return raster.Box.of(self.mask.shape)
        box = None
        for g, b in self._touched:
            if g > gen:
                box = b.union(box)
        return box

    def _put(self, box: raster.Box, step: Step, values: np.ndarray) -> None:
        """Write one step's values into the mask, keeping the changed-pixel count exact."""
        saved = self.saved[box.slices].ravel()[step.index]
        was = self.mask[box.slices].ravel()[step.index]
        step.put(self.mask, values)
        if self._changed is not None:
            self._changed += int(np.count_nonzero(values != saved)) - int(np.count_nonzero(was != saved))
        self.gen += 1
        self._touched.append((self.gen, box))
        if len(self._touched) > TOUCHED_KEPT:
            self._forgotten = self._touched.pop(0)[0]

    def edit_box(self, box: raster.Box, new: np.ndarray, tool: str) -> int:
        """Make ``new`` the content of ``box`` of the working mask as one undoable step; the number
        of pixels changed. Only the box is compared and remembered."""
        new = np.asarray(new, np.uint8)
        if new.shape != box.shape:
            raise ValueError(f"the edit is {new.shape} but its box is {box.shape}")
        old = self.mask[box.slices]
        index = np.flatnonzero(new != old).astype(np.int32)
        if not len(index):
            self.gen += 1   # nothing changed (same class): still clear the canvas
            return 0
        step = Step(tool, box, index, old.ravel()[index], new.ravel()[index])
        self._put(box, step, step.after)
        self.undo.append(step)
        del self.undo[:-MAX_UNDO]
        self.redo.clear()
        return len(index)

    def edit(self, new: np.ndarray, tool: str) -> int:
        """Make ``new`` (a whole mask) the working mask as one undoable step; the number of pixels
        changed."""
        new = np.asarray(new, np.uint8)
        if new.shape != self.mask.shape:
            raise ValueError(f"the edit is {new.shape} but the mask is {self.mask.shape}")
        box = raster.changed_box(new, self.mask)
        if box is None:
            self.gen += 1
            return 0
        return self.edit_box(box, new[box.slices], tool)

    def step_back(self) -> str | None:
        """Undo one step; its tool, or None when there is nothing to undo."""
        if not self.undo:
            return None
        s = self.undo.pop()
        self._put(s.box, s, s.before)
        self.redo.append(s)
        return s.tool

    def step_forward(self) -> str | None:
        if not self.redo:
            return None
        s = self.redo.pop()
        self._put(s.box, s, s.after)
        self.undo.append(s)
        return s.tool

    def mark_saved(self, number: int) -> None:
        self.base = number
        self.saved = self.mask.copy()
        self._changed = 0
        self.undo.clear()
        self.redo.clear()
        self.gen += 1


def start_work(ds, image_id: str, store=None) -> Work:
    """The latest version of ``image_id``'s mask as a new Work (an unlabeled image starts as all
    background)."""
    base = corr.latest_number(ds, image_id, store)
    mask = corr.version_mask(ds, image_id, base, store)
    if mask is None:
        h, w = ds.image(image_id).shape[:2]
        mask = np.full((h, w), raster.background_class(ds.class_map), np.uint8)
    mask = np.array(mask, np.uint8, copy=True)
    return Work(image_id, base, mask, mask.copy())


def tool_class(tool: str, chosen: int, class_map) -> int | None:
    """The class id a tool paints: the chosen class (brush, polygon, fill), the background class
    (eraser), the ignore class (None when the class map has none)."""
    if tool == "eraser":
        return raster.background_class(class_map)
    if tool == "ignore":
        return raster.ignore_class(class_map)
    return int(chosen)


def apply_drawing(work: Work, objects: list[dict], tool: str, class_id: int, scale: tuple[float, float]) -> int:
    """Rasterise the canvas objects into the working mask as one step (only the box they touch);
    pixels changed."""
    found = raster.paint_objects(work.mask, objects or [], class_id, scale)
    if found is None:
        work.gen += 1   # nothing to paint: still clear the canvas
        return 0
    return work.edit_box(found[0], found[1], tool)


def fresh_objects(seen: list[dict], objects: list[dict]) -> list[dict]:
    """The objects of a canvas drawing not applied yet. The canvas sends its whole drawing each
    time: when it still starts with the drawing sent before, only what follows is new; when it
    does not (it was cleared in between), all of it is."""
    if seen and objects[:len(seen)] == seen:
        return objects[len(seen):]
    return list(objects)


def save(ds, work: Work, note: str = "", store=None, force: bool = False, who: str | None = None):
    """Save the working mask as a new version; returns it. Raises corr.StaleVersion when another
    save came since the editor opened ``work.base`` (unless ``force``), ValueError for a mask the
    class map refuses."""
    latest = corr.latest_number(ds, work.image_id, store) if force else work.base
    v = corr.save_correction(ds, work.image_id, work.mask, store=store, tool=work.tools(), note=note.strip(),
                             who=who or current_user(), expected=latest)
    work.mark_saved(v.number)
    return v


def queue_ids(ds, queue: str, states: dict[str, str], corrected: set[str],
              ranked: list[str] | None = None) -> list[str]:
    """The images Next / Previous go through, in the dataset's order (``label_next``: the ranked
    unlabeled images still unlabeled, in ``ranked`` order)."""
    if queue == "label_next":
        return [i for i in ranked or [] if i in ds and not ds.is_labeled(i)]
    if queue == "review":
        return [i for i in ds.ids if states.get(i) in ("relabel", "flagged")]
    if queue == "corrected":
        return [i for i in ds.ids if i in corrected]
    if queue == "unlabeled":
        return [i for i in ds.ids if not ds.is_labeled(i)]
    return list(ds.ids)


def step_in_queue(order: list[str], ids: list[str], current: str, delta: int) -> str | None:
    """The next (delta=1) or previous (-1) image of ``ids`` after ``current``, where ``order`` is
    the dataset's order (``current`` need not be in ``ids``); None at the end."""
    if not ids:
        return None
    if current in ids:
        k = ids.index(current) + delta
        return ids[k] if 0 <= k < len(ids) else None
    pos = {i: n for n, i in enumerate(order)}
    here = pos.get(current, -1)
    after = [i for i in ids if pos.get(i, -1) > here] if delta > 0 else [i for i in ids if pos.get(i, -1) < here]
    if not after:
        return None
    return after[0] if delta > 0 else after[-1]


def diff_picture(image: np.ndarray, before: np.ndarray, after: np.ndarray, class_map, size: int = 768) -> np.ndarray:
    """The image with the pixels that differ between two masks highlighted, enlarged by whole pixels."""
    pic = maps.highlight(viz.overlay(image, after, class_map, 0.35), before != after)
    return viz.thumbnail_pair(pic, None, size)[0]


def regions_picture(image: np.ndarray, mask: np.ndarray, regions: list, class_map, size: int = 640) -> np.ndarray:
    """The image and working mask, each listed region outlined in magenta and numbered 1, 2, ..."""
    base = viz.overlay(image, mask, class_map, 0.35)
    h, w = mask.shape
    s = max(1, size // max(h, w))
    pic = cv2.resize(base, (w * s, h * s), interpolation=cv2.INTER_NEAREST) if s > 1 else base.copy()
    for n, r in enumerate(regions, start=1):
        m = cv2.resize(np.asarray(r.pixels, np.uint8), (pic.shape[1], pic.shape[0]), interpolation=cv2.INTER_NEAREST)
        contours, _ = cv2.findContours(m, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(pic, contours, -1, REGION_COLOR, max(1, s // 3))
        y0, x0 = int(r.bbox[0]) * s, int(r.bbox[1]) * s
        cv2.putText(pic, str(n), (x0 + 2, max(y0 + 12, 12)), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 2)
        cv2.putText(pic, str(n), (x0 + 2, max(y0 + 12, 12)), cv2.FONT_HERSHEY_SIMPLEX, 0.45, REGION_COLOR, 1)
    return pic
