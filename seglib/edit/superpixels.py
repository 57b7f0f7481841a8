"""Superpixels for one-click labeling: an image cut into small regions of similar colour, so a
click (or a drag across several) gives a whole region the chosen class. No weights needed.

>>> seg = superpixels(image, size=24, compactness=10)          # int32 (H, W) region ids, SLIC
>>> box, pixels = pick(seg, [(120.0, 80.0)])                   # the region under the click
>>> work.edit_box(box, paint(work.mask[box.slices], pixels, class_id), "superpixel")

Cut by scikit-image: SLIC (k-means in colour and position, regions of about ``size`` pixels on a
side, ``compactness`` trading colour for shape) or Felzenszwalb's graph cut (regions follow
colour edges, ``size`` is their minimum area's side).
"""
from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from .. import viz
from .raster import Box

METHODS = {"slic": "SLIC (even regions)", "felzenszwalb": "Felzenszwalb (follows colour edges)"}
DEFAULT_SIZE = 24
DEFAULT_COMPACTNESS = 10.0
MAX_PIXELS = 1_000_000   # a bigger image is cut at a reduced size, its regions scaled back (nearest)


def superpixels(image: np.ndarray, size: int = DEFAULT_SIZE, compactness: float = DEFAULT_COMPACTNESS,
                method: str = "slic", max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """int32 (H, W) region ids of ``image`` (grey or colour, any dtype viz reads) cut into
    regions of about ``size`` pixels on a side. An image over ``max_pixels`` is cut at a reduced
    size and its regions scaled back: a 2000x1500 photo in about a second instead of four (SLIC)
    or eight (Felzenszwalb); the region borders are then as coarse as the reduction."""
    import cv2

    full = viz.to_rgb(image)
    fh, fw = full.shape[:2]
    factor = min(1.0, float(np.sqrt(max_pixels / (fh * fw))))
    if factor < 1.0:
        small = cv2.resize(full, (max(1, round(fw * factor)), max(1, round(fh * factor))), interpolation=cv2.INTER_AREA)
        seg = superpixels(small, max(2, round(size * factor)), compactness, method, max_pixels=small.size)
        return np.ascontiguousarray(cv2.resize(seg, (fw, fh), interpolation=cv2.INTER_NEAREST), dtype=np.int32)
    from skimage.segmentation import felzenszwalb, slic

    if method not in METHODS:
        raise ValueError(f"superpixel method {method!r}: one of {', '.join(METHODS)}")
    size = max(int(size), 2)
    rgb = full
    h, w = rgb.shape[:2]
    if method == "slic":
        n = max(1, round(h * w / (size * size)))
        seg = slic(rgb, n_segments=n, compactness=float(compactness), start_label=0, channel_axis=-1)
    else:
        # scale: larger means larger regions; tied to size so the one control means the same thing
        seg = felzenszwalb(rgb, scale=float(size) * 4, sigma=0.8, min_size=size * size // 2, channel_axis=-1)
    return np.ascontiguousarray(seg, dtype=np.int32)


def regions_at(seg: np.ndarray, points: Iterable[tuple[float, float]]) -> np.ndarray:
    """The ids of the regions under ``points`` (x, y pixel-index coordinates; outside ones skipped)."""
    h, w = seg.shape
    pts = np.asarray(list(points), float).reshape(-1, 2)
    if not len(pts):
        return np.zeros(0, np.int32)
    j = np.floor(pts[:, 0] + 0.5).astype(np.int64)
    i = np.floor(pts[:, 1] + 0.5).astype(np.int64)
    inside = (i >= 0) & (i < h) & (j >= 0) & (j < w)
    return np.unique(seg[i[inside], j[inside]])


def pick(seg: np.ndarray, points: Iterable[tuple[float, float]]) -> tuple[Box, np.ndarray] | None:
    """(the box, bool pixels of the box) of the regions under ``points``; None when no point is
    on the image."""
    ids = regions_at(seg, points)
    if not len(ids):
        return None
    where = np.isin(seg, ids)
    rows, cols = np.flatnonzero(where.any(axis=1)), np.flatnonzero(where.any(axis=0))
    box = Box(int(rows[0]), int(cols[0]), int(rows[-1]) + 1, int(cols[-1]) + 1)
    return box, where[box.slices]


def path_points(lines: Iterable[np.ndarray], step: float = 1.0) -> np.ndarray:
    """Points every ``step`` pixels along polylines (x, y), so a fast drag still touches every
    region it crosses."""
    out = []
    for line in lines:
        pts = np.asarray(line, float).reshape(-1, 2)
        if len(pts) == 1:
            out.append(pts)
            continue
        for a, b in zip(pts[:-1], pts[1:], strict=True):
            n = max(1, int(np.ceil(np.hypot(*(b - a)) / step)))
            t = np.linspace(0.0, 1.0, n + 1)[:, None]
            out.append(a + t * (b - a))
    return np.concatenate(out) if out else np.zeros((0, 2))


def boundaries(seg: np.ndarray) -> np.ndarray:
    """bool, the shape of ``seg``: pixels whose right or lower neighbour is in another region
    (thin lines to draw the regions with)."""
    edge = np.zeros(seg.shape, bool)
    edge[:, :-1] |= seg[:, :-1] != seg[:, 1:]
    edge[:-1, :] |= seg[:-1, :] != seg[1:, :]
    return edge


def click_tool(seg: np.ndarray):
    """The superpixel tool as the click simulator sees it: a positive click adds the region under
    it, a negative one removes it (seglib.edit.clicks)."""
    def tool(clicks) -> np.ndarray:
        mask = np.zeros(seg.shape, bool)
        for c in clicks:
            mask[seg == seg[c.y, c.x]] = bool(c.positive)
        return mask
    return tool
