"""The magic wand: a click floods the image's pixels of about the clicked colour (within a
tolerance of the clicked pixel, 4-connected), as the Fill tool does on the mask's classes.

>>> box, pixels = colour_region(image, x=120.0, y=80.0, tolerance=12)
"""
from __future__ import annotations

import math

import cv2
import numpy as np

from .. import viz
from .raster import Box

DEFAULT_TOLERANCE = 12


def _as_uint8(image: np.ndarray) -> np.ndarray:
    rgb = viz.to_rgb(image)
    if rgb.ndim == 3 and rgb.shape[2] == 3 and np.array_equal(rgb[..., 0], rgb[..., 1]) \
            and np.array_equal(rgb[..., 1], rgb[..., 2]):
        return np.ascontiguousarray(rgb[..., 0])   # grey: one channel, the tolerance means one thing
    return np.ascontiguousarray(rgb)


def colour_region(image: np.ndarray, x: float, y: float, tolerance: float = DEFAULT_TOLERANCE,
                  prepared: np.ndarray | None = None) -> tuple[Box, np.ndarray] | None:
    """(the box, bool pixels of the box) of the 4-connected pixels whose every channel is within
    ``tolerance`` of pixel (round(y), round(x)); None when the point lies outside the image.
    ``prepared``: the image as :func:`prepare` returns it, to skip the conversion per click."""
    img = prepared if prepared is not None else prepare(image)
    h, w = img.shape[:2]
    j, i = int(math.floor(x + 0.5)), int(math.floor(y + 0.5))
    if not (0 <= i < h and 0 <= j < w):
        return None
    ff = np.zeros((h + 2, w + 2), np.uint8)
    t = float(tolerance)
    diff = (t, t, t) if img.ndim == 3 else t
    flags = 4 | cv2.FLOODFILL_MASK_ONLY | cv2.FLOODFILL_FIXED_RANGE | (1 << 8)
    _, _, _, (rx, ry, rw, rh) = cv2.floodFill(img, ff, (j, i), 0, diff, diff, flags)
    box = Box(ry, rx, ry + rh, rx + rw)
    return box, ff[1:-1, 1:-1][box.slices].astype(bool)


def prepare(image: np.ndarray) -> np.ndarray:
    """The image as the wand reads it: uint8, one channel for grey, RGB for colour."""
    return _as_uint8(image)


def click_tool(image: np.ndarray, tolerance: float = DEFAULT_TOLERANCE):
    """The wand as the click simulator sees it (seglib.edit.clicks): a positive click adds the
    colour region under it, a negative one removes it."""
    img = prepare(image)

    def tool(clicks) -> np.ndarray:
        mask = np.zeros(img.shape[:2], bool)
        for c in clicks:
            found = colour_region(image, c.x, c.y, tolerance, prepared=img)
            if found is not None:
                mask[found[0].slices][found[1]] = bool(c.positive)
        return mask
    return tool
