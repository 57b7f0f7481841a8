"""Canvas geometry to exact mask edits.

The Label page's canvas (``streamlit-drawable-canvas``, Fabric.js 6) returns the objects drawn on
it as Fabric JSON. This module turns each object into image-space geometry and applies it to a
uint8 class-id mask. The class id always comes from the tool (``class_id``), never from the
colours or the anti-aliased pixels the canvas shows.

Coordinates, from an object to a mask pixel:

1. object-local -> canvas: Fabric's own matrix. A ``path`` command point ``p`` (or a polygon
   ``points`` entry) lands at ``M @ (p - pathOffset)``, where ``pathOffset`` is the centre of the
   path's bounding box (computed here as Fabric does; it is not in the JSON) and
   ``M = translate(centre) . rotate(angle) . scale(scaleX, scaleY, flips) . skewX . skewY``.
   ``centre`` is ``(left, top)`` moved by the origin (``originX/originY``) times the object's
   transformed size (``width + strokeWidth``, scaled), rotated by ``angle`` about ``(left, top)``.
   A freshly drawn stroke has ``M @ (p - pathOffset) == p``: its path holds canvas pixels.
2. canvas -> image: the canvas shows the image stretched to ``canvas_w x canvas_h``, so the
   canvas point ``(cx, cy)`` is the image point ``(cx / sx, cy / sy)`` with
   ``sx = canvas_w / image_w``, ``sy = canvas_h / image_h``. Image pixel ``(row i, col j)``
   covers ``[j, j+1) x [i, i+1)``; its centre is ``(j + 0.5, i + 0.5)``.
3. Rules (pixel centres decide, so results are exact and testable):

   - brush / eraser / ignore stroke (a freedraw ``path``; ``M``, ``L``, ``Q``, ``C``, ``Z``
     commands, curves flattened finely): every pixel whose centre lies within ``r`` of the
     stroke's polyline, ``r`` = half the stroke width in image pixels (at least 0.5, so a
     stroke always paints the pixels it passes through the middle of);
   - polygon (a ``polygon`` object, or a ``rect``): every pixel whose centre lies inside it
     (even-odd rule);
   - flood fill (a ``circle``, which the canvas's ``point`` mode draws around the click): the
     4-connected region of the clicked pixel's class id.

Only the :class:`Box` around an object is rasterised (:func:`object_region`, :func:`paint_objects`):
a stroke on a 2000x1800 mask measures the pixels near its segments, not the whole mask, and the
editor keeps the box as the undo step. A stroke paints the width it was drawn with (its own
``strokeWidth``); :func:`canvas_stroke_width` gives the brush width for a radius, unrounded.
"""
from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import cv2
import numpy as np

_ORIGIN = {"left": -0.5, "top": -0.5, "center": 0.0, "right": 0.5, "bottom": 0.5}


# --- class choices ---------------------------------------------------------------------------
def background_class(class_map) -> int:
    """The eraser's class: the class map's background (``ClassMap.background_id``: marked in the
    class file, or named background/bg), else class id 0 (an eraser paints some class)."""
    background = class_map.background_id
    return 0 if background is None else int(background)


def ignore_class(class_map) -> int | None:
    """The class the "ignore" tool paints: the class map's first class marked ``ignore``, or
    None when it marks none (then there is no ignore tool for that dataset)."""
    ids = class_map.ignore_ids
    return int(ids[0]) if ids else None


# --- Fabric's object transform ---------------------------------------------------------------
def _num(obj: dict, key: str, default: float) -> float:
    value = obj.get(key, default)
    try:
        value = float(value)
    except (TypeError, ValueError):
        return default
    return value if math.isfinite(value) else default


def _origin(value) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value) - 0.5   # Fabric takes numbers 0..1 too
    return _ORIGIN.get(str(value), -0.5)


def _dimensions_matrix(obj: dict) -> np.ndarray:
    """2x2: scale (with flips) . skewX . skewY, Fabric's ``calcDimensionsMatrix``."""
    sx, sy = _num(obj, "scaleX", 1.0), _num(obj, "scaleY", 1.0)
    m = np.diag([-sx if obj.get("flipX") else sx, -sy if obj.get("flipY") else sy])
    kx, ky = _num(obj, "skewX", 0.0), _num(obj, "skewY", 0.0)
    if kx:
        m = m @ np.array([[1.0, math.tan(math.radians(kx))], [0.0, 1.0]])
    if ky:
        m = m @ np.array([[1.0, 0.0], [math.tan(math.radians(ky)), 1.0]])
    return m


def _transformed_size(obj: dict) -> tuple[float, float]:
    """The object's size on the canvas before rotation (Fabric's ``_getTransformedDimensions``)."""
    sw = _num(obj, "strokeWidth", 1.0)
    pre, post = (0.0, sw) if obj.get("strokeUniform") else (sw, 0.0)
    w, h = _num(obj, "width", 0.0) + pre, _num(obj, "height", 0.0) + pre
    if not _num(obj, "skewX", 0.0) and not _num(obj, "skewY", 0.0):
        return w * _num(obj, "scaleX", 1.0) + post, h * _num(obj, "scaleY", 1.0) + post
    corners = np.array([[-w, -h], [w, -h], [-w, h], [w, h]]) / 2 @ _dimensions_matrix(obj).T
    size = corners.max(axis=0) - corners.min(axis=0)
    return float(size[0]) + post, float(size[1]) + post


def object_matrix(obj: dict) -> np.ndarray:
    """3x3 affine matrix: object-local coordinates (relative to the object's centre, i.e. a path
    point minus ``pathOffset``) -> canvas pixels."""
    angle = math.radians(_num(obj, "angle", 0.0))
    cos, sin = math.cos(angle), math.sin(angle)
    rot = np.array([[cos, -sin], [sin, cos]])
    dx, dy = _transformed_size(obj)
    offset = np.array([-_origin(obj.get("originX", "left")) * dx, -_origin(obj.get("originY", "top")) * dy])
    centre = np.array([_num(obj, "left", 0.0), _num(obj, "top", 0.0)]) + rot @ offset
    m = np.eye(3)
    m[:2, :2] = rot @ _dimensions_matrix(obj)
    m[:2, 2] = centre
    return m


def _apply(m: np.ndarray, pts: np.ndarray) -> np.ndarray:
    return pts @ m[:2, :2].T + m[:2, 2]


def _linear_scale(m: np.ndarray) -> float:
    return math.sqrt(abs(float(np.linalg.det(m[:2, :2]))))


# --- paths -----------------------------------------------------------------------------------
def _curve_bounds(p0, p1, p2, p3) -> list[tuple[float, float]]:
    """Extremes of a cubic Bezier (end points included): Fabric's ``getBoundsOfCurve``."""
    pts = [tuple(p0), tuple(p3)]
    for axis in (0, 1):
        a = -3 * p0[axis] + 9 * p1[axis] - 9 * p2[axis] + 3 * p3[axis]
        b = 6 * p0[axis] - 12 * p1[axis] + 6 * p2[axis]
        c = 3 * p1[axis] - 3 * p0[axis]
        if abs(a) < 1e-12:
            roots = [] if abs(b) < 1e-12 else [-c / b]
        else:
            disc = b * b - 4 * c * a
            roots = [] if disc < 0 else [(-b + math.sqrt(disc)) / (2 * a), (-b - math.sqrt(disc)) / (2 * a)]
        for t in roots:
            if 0 < t < 1:
                pts.append(tuple(_cubic(np.array(p0), np.array(p1), np.array(p2), np.array(p3), np.array([t]))[0]))
    return pts


def _cubic(p0, p1, p2, p3, t: np.ndarray) -> np.ndarray:
    t = t[:, None]
    u = 1 - t
    return u ** 3 * p0 + 3 * u * u * t * p1 + 3 * u * t * t * p2 + t ** 3 * p3


def _quad(p0, p1, p2, t: np.ndarray) -> np.ndarray:
    t = t[:, None]
    u = 1 - t
    return u * u * p0 + 2 * u * t * p1 + t * t * p2


def _commands(path) -> list[tuple[str, list[float]]]:
    """``[["M", x, y], ["Q", x1, y1, x, y], ...]`` (or an SVG string) -> (letter, numbers), absolute."""
    if isinstance(path, str):
        import re
        tokens = re.findall(r"[MLQCZmlqcz]|-?\d*\.?\d+(?:e-?\d+)?", path)
        out, letter, nums = [], None, []
        for tok in tokens + ["M"]:
            if tok.isalpha():
                if letter is not None:
                    out.append((letter, nums))
                letter, nums = tok, []
            else:
                nums.append(float(tok))
        path = [[letter, *nums] for letter, nums in out]
    cmds = []
    for item in path or []:
        if not item:
            continue
        letter = str(item[0])
        if letter.islower() and letter not in "z":
            raise ValueError(f"relative path command {letter!r}: the canvas sends absolute ones")
        cmds.append((letter.upper(), [float(v) for v in item[1:]]))
    return cmds


def path_offset(path) -> np.ndarray:
    """The centre of a Fabric path's bounding box, as Fabric computes it (``pathOffset``)."""
    pts: list[tuple[float, float]] = []
    start = cur = (0.0, 0.0)
    for letter, v in _commands(path):
        if letter == "M":
            cur = start = (v[0], v[1])
        elif letter == "L":
            pts += [start, (v[0], v[1])]  # Fabric pushes the subpath's start here (sic)
            cur = (v[0], v[1])
        elif letter == "Q":
            pts += _curve_bounds(cur, (v[0], v[1]), (v[0], v[1]), (v[2], v[3]))
            cur = (v[2], v[3])
        elif letter == "C":
            pts += _curve_bounds(cur, (v[0], v[1]), (v[2], v[3]), (v[4], v[5]))
            cur = (v[4], v[5])
        elif letter == "Z":
            cur = start
    if not pts:
        return np.zeros(2)
    a = np.array(pts, float)
    lo, hi = a.min(axis=0), a.max(axis=0)
    return (lo + hi) / 2


def flatten_path(path, step: float = 1.0) -> list[np.ndarray]:
    """A path's subpaths as polylines ((N, 2) float arrays, path coordinates); curves are cut into
    pieces at most about ``step`` long."""
    lines: list[list] = []
    cur = start = np.zeros(2)
    line: list = []

    def pieces(length: float) -> np.ndarray:
        n = int(min(max(math.ceil(length / max(step, 1e-3)), 1), 256))
        return np.linspace(0, 1, n + 1)[1:]

    for letter, v in _commands(path):
        if letter == "M":
            if len(line):
                lines.append(line)
            cur = start = np.array(v[:2])
            line = [cur]
        elif letter == "L":
            cur = np.array(v[:2])
            line.append(cur)
        elif letter == "Q":
            p1, p2 = np.array(v[0:2]), np.array(v[2:4])
            length = np.linalg.norm(p1 - cur) + np.linalg.norm(p2 - p1)
            line.extend(_quad(cur, p1, p2, pieces(length)))
            cur = p2
        elif letter == "C":
            p1, p2, p3 = np.array(v[0:2]), np.array(v[2:4]), np.array(v[4:6])
            length = np.linalg.norm(p1 - cur) + np.linalg.norm(p2 - p1) + np.linalg.norm(p3 - p2)
            line.extend(_cubic(cur, p1, p2, p3, pieces(length)))
            cur = p3
        elif letter == "Z":
            line.append(start)
            cur = start
    if len(line):
        lines.append(line)
    return [np.array(ln, float).reshape(-1, 2) for ln in lines]


# --- object -> canvas geometry -----------------------------------------------------------------
@dataclass(frozen=True)
class Shape:
    """One canvas object in canvas pixels.

    kind: "stroke" (polylines painted ``radius`` around), "polygon" (filled; ``lines[0]`` is the
    ring) or "point" (a click: ``lines[0][0]``)."""

    kind: str
    lines: list
    radius: float = 0.0


def object_shape(obj: dict) -> Shape | None:
    """A Fabric object's geometry on the canvas, or None for kinds the editor does not use."""
    kind = str(obj.get("type", "")).lower()
    m = object_matrix(obj)
    if kind == "path":
        path = obj.get("path") or []
        offset = path_offset(path)
        lines = [_apply(m, ln - offset) for ln in flatten_path(path, step=0.5 / max(_linear_scale(m), 1e-6))]
        sw = _num(obj, "strokeWidth", 1.0)
        radius = sw / 2 if obj.get("strokeUniform") else sw / 2 * _linear_scale(m)
        return Shape("stroke", [ln for ln in lines if len(ln)], radius)
    if kind in ("polygon", "polyline"):
        pts = np.array([[_num(p, "x", 0.0), _num(p, "y", 0.0)] for p in obj.get("points") or []], float)
        if len(pts) < 3:
            return None
        offset = (pts.min(axis=0) + pts.max(axis=0)) / 2
        return Shape("polygon", [_apply(m, pts - offset)])
    if kind == "rect":
        w, h = _num(obj, "width", 0.0) / 2, _num(obj, "height", 0.0) / 2
        return Shape("polygon", [_apply(m, np.array([[-w, -h], [w, -h], [w, h], [-w, h]]))])
    if kind == "circle":  # the canvas's "point" mode: a small circle centred on the click
        return Shape("point", [_apply(m, np.zeros((1, 2)))])
    return None


# --- boxes -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Box:
    """Rows ``y0 .. y1 - 1`` and columns ``x0 .. x1 - 1`` of a mask (ends exclusive): where an edit
    happened, so that painting, undo steps and the canvas picture touch only that part."""

    y0: int
    x0: int
    y1: int
    x1: int

    @classmethod
    def of(cls, shape: tuple[int, ...]) -> Box:
        """The whole of an (H, W) array."""
        return cls(0, 0, int(shape[0]), int(shape[1]))

    @property
    def slices(self) -> tuple[slice, slice]:
        return slice(self.y0, self.y1), slice(self.x0, self.x1)

    @property
    def shape(self) -> tuple[int, int]:
        return self.y1 - self.y0, self.x1 - self.x0

    @property
    def empty(self) -> bool:
        return self.y1 <= self.y0 or self.x1 <= self.x0

    def union(self, other: Box | None) -> Box:
        if other is None:
            return self
        return Box(min(self.y0, other.y0), min(self.x0, other.x0), max(self.y1, other.y1), max(self.x1, other.x1))

    def clip(self, shape: tuple[int, ...]) -> Box:
        return Box(max(self.y0, 0), max(self.x0, 0), min(self.y1, int(shape[0])), min(self.x1, int(shape[1])))

    def within(self, outer: Box) -> tuple[slice, slice]:
        """This box's slices inside an array that holds ``outer`` (which contains it)."""
        return (slice(self.y0 - outer.y0, self.y1 - outer.y0), slice(self.x0 - outer.x0, self.x1 - outer.x0))


def changed_box(a: np.ndarray, b: np.ndarray) -> Box | None:
    """The smallest box holding every pixel where two masks of one shape differ (None: none)."""
    differ = a != b
    rows, cols = np.flatnonzero(differ.any(axis=1)), np.flatnonzero(differ.any(axis=0))
    if not len(rows):
        return None
    return Box(int(rows[0]), int(cols[0]), int(rows[-1]) + 1, int(cols[-1]) + 1)


# --- raster operations (image pixel-index coordinates: pixel (i, j) centred at x=j, y=i) -------
def _segments(line: np.ndarray):
    line = np.asarray(line, float).reshape(-1, 2)
    if len(line) == 1:
        return [(line[0], line[0])]
    return list(zip(line[:-1], line[1:], strict=True))


def stroke_box(shape: tuple[int, int], lines: Iterable[np.ndarray], radius: float) -> Box | None:
    """The pixels a stroke can reach (its polylines' extent, ``radius`` around), clipped to the
    mask; None when it lies outside."""
    pts = [np.asarray(ln, float).reshape(-1, 2) for ln in lines]
    pts = [p for p in pts if len(p)]
    if not pts:
        return None
    r = max(float(radius), 0.5)
    a = np.concatenate(pts)
    lo, hi = a.min(axis=0), a.max(axis=0)
    box = Box(int(math.floor(lo[1] - r)), int(math.floor(lo[0] - r)),
              int(math.ceil(hi[1] + r)) + 1, int(math.ceil(hi[0] + r)) + 1).clip(shape)
    return None if box.empty else box


def stroke_pixels(shape: tuple[int, int], lines: Iterable[np.ndarray], radius: float,
                  box: Box | None = None) -> np.ndarray:
    """bool, the shape of ``box`` (default: the whole (H, W) mask): pixels whose centre lies
    within ``radius`` of the polylines (x, y pixel-index coordinates, pixel centres at integers).
    ``radius`` is raised to 0.5. Only the pixels near each segment are measured."""
    box = box or Box.of(shape)
    r = max(float(radius), 0.5)
    r2 = r * r + 1e-9
    hit = np.zeros(box.shape, bool)
    for line in lines:
        for a, b in _segments(line):
            x0 = max(int(math.floor(min(a[0], b[0]) - r)), box.x0)
            x1 = min(int(math.ceil(max(a[0], b[0]) + r)), box.x1 - 1)
            y0 = max(int(math.floor(min(a[1], b[1]) - r)), box.y0)
            y1 = min(int(math.ceil(max(a[1], b[1]) + r)), box.y1 - 1)
            if x0 > x1 or y0 > y1:
                continue
            ys, xs = np.mgrid[y0:y1 + 1, x0:x1 + 1].astype(float)
            d = b - a
            dd = float(d @ d)
            if dd == 0:
                dist2 = (xs - a[0]) ** 2 + (ys - a[1]) ** 2
            else:
                t = np.clip(((xs - a[0]) * d[0] + (ys - a[1]) * d[1]) / dd, 0, 1)
                dist2 = (xs - a[0] - t * d[0]) ** 2 + (ys - a[1] - t * d[1]) ** 2
            hit[y0 - box.y0:y1 + 1 - box.y0, x0 - box.x0:x1 + 1 - box.x0] |= dist2 <= r2
    return hit


def polygon_box(shape: tuple[int, int], ring: np.ndarray) -> Box | None:
    """The rows and columns a polygon's pixels can be in, clipped to the mask; None outside."""
    ring = np.asarray(ring, float).reshape(-1, 2)
    if len(ring) < 3:
        return None
    lo, hi = ring.min(axis=0), ring.max(axis=0)
    box = Box(int(math.floor(lo[1])), int(math.ceil(lo[0])), int(math.ceil(hi[1])) + 1,
              int(math.floor(hi[0])) + 1).clip(shape)
    return None if box.empty else box


def polygon_pixels(shape: tuple[int, int], ring: np.ndarray, box: Box | None = None) -> np.ndarray:
    """bool, the shape of ``box`` (default: the whole (H, W) mask): pixels whose centre lies
    inside the polygon (even-odd rule; x, y pixel-index coordinates, pixel centres at integers)."""
    box = box or Box.of(shape)
    ring = np.asarray(ring, float).reshape(-1, 2)
    inside = np.zeros(box.shape, bool)
    if len(ring) < 3:
        return inside
    a, b = ring, np.roll(ring, -1, axis=0)
    ys = np.arange(max(int(math.floor(ring[:, 1].min())), box.y0),
                   min(int(math.ceil(ring[:, 1].max())), box.y1 - 1) + 1)
    if not len(ys):
        return inside
    yc = ys[:, None].astype(float)
    # half-open rule on y: an edge counts when the row's y lies in [min_y, max_y)
    lo, hi = np.minimum(a[:, 1], b[:, 1]), np.maximum(a[:, 1], b[:, 1])
    crosses = (yc >= lo) & (yc < hi)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (yc - a[:, 1]) / (b[:, 1] - a[:, 1])
        xcross = a[:, 0] + t * (b[:, 0] - a[:, 0])
    for k, y in enumerate(ys):
        xs = np.sort(xcross[k][crosses[k]])
        for x_in, x_out in zip(xs[0::2], xs[1::2], strict=False):
            j0, j1 = max(int(math.ceil(x_in)), box.x0), min(int(math.floor(x_out)), box.x1 - 1)
            if j0 <= j1:
                inside[y - box.y0, j0 - box.x0:j1 + 1 - box.x0] = True
    return inside


def flood_region(mask: np.ndarray, x: float, y: float) -> tuple[Box, np.ndarray] | None:
    """The 4-connected region of pixels with the class id of pixel (round(y), round(x))
    (pixel-index coordinates) as (its bounding box, bool pixels of the box); None outside the mask."""
    h, w = mask.shape
    j, i = int(math.floor(x + 0.5)), int(math.floor(y + 0.5))
    if not (0 <= i < h and 0 <= j < w):
        return None
    ff = np.zeros((h + 2, w + 2), np.uint8)
    # MASK_ONLY: the mask itself is not written, so it needs no copy
    _, _, _, (rx, ry, rw, rh) = cv2.floodFill(np.ascontiguousarray(mask, dtype=np.uint8), ff, (j, i), 0, 0, 0,
                                              4 | cv2.FLOODFILL_MASK_ONLY | (1 << 8))
    box = Box(ry, rx, ry + rh, rx + rw)
    return box, ff[1:-1, 1:-1][box.slices].astype(bool)


def flood_pixels(mask: np.ndarray, x: float, y: float) -> np.ndarray:
    """bool (H, W): the 4-connected region of pixels with the class id of pixel (round(y), round(x))
    (pixel-index coordinates); all False when the point lies outside the mask."""
    region = np.zeros(mask.shape, bool)
    found = flood_region(mask, x, y)
    if found is not None:
        region[found[0].slices] = found[1]
    return region


# --- the editor's entry points -----------------------------------------------------------------
def canvas_scale(image_shape: tuple[int, ...], canvas_size: tuple[int, int]) -> tuple[float, float]:
    """(sx, sy): canvas pixels per image pixel for an image drawn stretched on a canvas of
    ``canvas_size`` = (width, height)."""
    return canvas_size[0] / image_shape[1], canvas_size[1] / image_shape[0]


def canvas_stroke_width(radius: float, scale: tuple[float, float]) -> float:
    """The canvas brush width (canvas pixels) that paints ``radius`` image pixels around a stroke:
    the inverse of the radius :func:`object_region` reads from a stroke's ``strokeWidth``. Not
    rounded: a whole-pixel width would paint another radius than the one asked for."""
    return 2 * float(radius) * math.sqrt(scale[0] * scale[1])


def to_image(points: np.ndarray, scale: tuple[float, float]) -> np.ndarray:
    """Canvas points (x, y) -> image pixel-index coordinates (pixel centres at integers)."""
    return np.asarray(points, float) / np.asarray(scale, float) - 0.5


def object_region(obj: dict, mask: np.ndarray, scale: tuple[float, float]) -> tuple[Box, np.ndarray] | None:
    """The pixels one canvas object covers (see the module's rules) as (a box, bool pixels of
    the box): only the box around the object is rasterised. None for an object the editor does
    not use, or one that covers no pixel of the mask. A stroke paints the width it was drawn with
    (its own ``strokeWidth``), whatever the brush is set to now."""
    shp = object_shape(obj)
    if shp is None:
        return None
    if shp.kind == "stroke":
        lines = [to_image(ln, scale) for ln in shp.lines]
        radius = shp.radius / math.sqrt(scale[0] * scale[1])
        box = stroke_box(mask.shape, lines, radius)
        return None if box is None else (box, stroke_pixels(mask.shape, lines, radius, box))
    if shp.kind == "polygon":
        ring = to_image(shp.lines[0], scale)
        box = polygon_box(mask.shape, ring)
        return None if box is None else (box, polygon_pixels(mask.shape, ring, box))
    x, y = to_image(shp.lines[0], scale)[0]
    return flood_region(mask, x, y)


def object_pixels(obj: dict, mask: np.ndarray, scale: tuple[float, float]) -> np.ndarray | None:
    """bool (H, W): the pixels one canvas object covers (see the module's rules); None for an
    object the editor does not use."""
    if object_shape(obj) is None:
        return None
    where = np.zeros(mask.shape, bool)
    found = object_region(obj, mask, scale)
    if found is not None:
        where[found[0].slices] = found[1]
    return where


def paint_objects(mask: np.ndarray, objects: Iterable[dict], class_id: int,
                  scale: tuple[float, float]) -> tuple[Box, np.ndarray] | None:
    """Every object's pixels set to ``class_id``, in drawing order (a flood fill sees the strokes
    before it), as (the box they touch, the box's new content); ``mask`` is not changed. None
    when no object covers a pixel."""
    if not 0 <= int(class_id) <= 255:
        raise ValueError(f"class id {class_id} is not in 0..255")
    objects = list(objects)
    # One object (a stroke, a polygon, a click) needs no copy of the whole mask.
    painted = mask if len(objects) == 1 else np.array(mask, dtype=np.uint8, copy=True)
    union: Box | None = None
    for obj in objects:
        found = object_region(obj, painted, scale)
        if found is None:
            continue
        box, where = found
        if painted is mask:
            crop = np.array(mask[box.slices], dtype=np.uint8, copy=True)
            crop[where] = class_id
            return box, crop
        painted[box.slices][where] = class_id
        union = box.union(union)
    if union is None:
        return None
    return union, painted[union.slices].copy()


def apply_objects(mask: np.ndarray, objects: Iterable[dict], class_id: int,
                  scale: tuple[float, float]) -> tuple[np.ndarray, int]:
    """A copy of ``mask`` with every object's pixels set to ``class_id``, in drawing order (a flood
    fill sees the strokes before it), and the number of pixels whose class changed."""
    out = np.array(mask, dtype=np.uint8, copy=True)
    found = paint_objects(mask, objects, class_id, scale)
    if found is None:
        return out, 0
    box, crop = found
    before = out[box.slices].copy()
    out[box.slices] = crop
    return out, int(np.count_nonzero(before != crop))
