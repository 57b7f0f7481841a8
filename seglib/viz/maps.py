"""Per-pixel pictures of predictions (numpy only): errors against the ground truth, where two
predictions disagree (and which one is right), confidence or entropy as a heat map, and chosen
pixels highlighted. Each returns uint8 (H, W, 3) at the image's size."""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from .draw import to_rgb

IGNORE = 255
# Okabe-Ito colours (safe for colour-blind eyes). Vermillion means "wrong" in every map.
WRONG = (213, 94, 0)            # vermillion: a wrong pixel (both wrong, in a disagreement map)
A_WINS, B_WINS = (0, 114, 178), (0, 158, 115)    # blue: only A is right; bluish green: only B is
BOTH_WRONG = WRONG
DIFFER = (240, 228, 66)         # yellow: the two differ (no ground truth)
HIGHLIGHT = (255, 0, 255)       # magenta: pixels picked out (a confusion, a label issue)


def _dim(image: np.ndarray, keep: float = 0.45) -> np.ndarray:
    """The image in grey at ``keep`` brightness, as float: a quiet background for coloured pixels."""
    rgb = to_rgb(image).astype(np.float32)
    grey = rgb.mean(2, keepdims=True)
    return np.repeat(grey * keep + 255 * (1 - keep) * 0.25, 3, axis=2)


def _paint(base: np.ndarray, where: np.ndarray, color, alpha: float) -> None:
    base[where] = base[where] * (1 - alpha) + np.asarray(color, np.float32) * alpha


def _done(base: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(base), 0, 255).astype(np.uint8)


def error_map(image: np.ndarray, truth: np.ndarray, pred: np.ndarray, alpha: float = 0.85,
              visible: list[int] | None = None) -> np.ndarray:
    """Wrong pixels in vermillion over the dimmed image; right and unknown pixels stay grey.
    ``visible`` limits the errors shown to pixels whose true or predicted class is in it."""
    base = _dim(image)
    wrong = (pred != truth) & (truth != IGNORE)
    if visible is not None:
        wrong &= np.isin(truth, visible) | np.isin(pred, visible)
    _paint(base, wrong, WRONG, alpha)
    return _done(base)


def disagreement_map(image: np.ndarray, a: np.ndarray, b: np.ndarray, truth: np.ndarray | None = None,
                     alpha: float = 0.85, visible: list[int] | None = None) -> np.ndarray:
    """Where predictions ``a`` and ``b`` differ. With ``truth``: blue where only a is right,
    green where only b is right, vermillion where both are wrong; without: yellow."""
    base = _dim(image)
    differ = a != b
    if visible is not None:
        differ &= np.isin(a, visible) | np.isin(b, visible)
    if truth is None:
        _paint(base, differ, DIFFER, alpha)
        return _done(base)
    known = truth != IGNORE
    a_ok, b_ok = a == truth, b == truth
    _paint(base, differ & known & a_ok, A_WINS, alpha)
    _paint(base, differ & known & b_ok, B_WINS, alpha)
    _paint(base, differ & known & ~a_ok & ~b_ok, BOTH_WRONG, alpha)
    _paint(base, differ & ~known, DIFFER, alpha * 0.5)
    return _done(base)


@lru_cache(maxsize=8)
def _lut(colorscale: str) -> np.ndarray:
    from plotly.colors import sample_colorscale, unlabel_rgb

    colors = sample_colorscale(colorscale, list(np.linspace(0, 1, 256)))
    return np.array([unlabel_rgb(c) for c in colors], np.float32).round().astype(np.uint8)


def heat_map(values: np.ndarray, shape: tuple[int, int] | None = None, colorscale: str = "Viridis") -> np.ndarray:
    """float (h, w) in [0, 1] -> uint8 (H, W, 3) in a plotly colour scale, grown by nearest
    neighbour to ``shape`` (maps may be stored smaller than their image)."""
    idx = np.clip(np.rint(np.nan_to_num(values) * 255), 0, 255).astype(np.uint8)
    if shape is not None and idx.shape != tuple(shape):
        rows = np.minimum((np.arange(shape[0]) * idx.shape[0]) // shape[0], idx.shape[0] - 1)
        cols = np.minimum((np.arange(shape[1]) * idx.shape[1]) // shape[1], idx.shape[1] - 1)
        idx = idx[rows][:, cols]
    return _lut(colorscale)[idx]


def highlight(image: np.ndarray, where: np.ndarray, color=HIGHLIGHT, alpha: float = 0.9) -> np.ndarray:
    """``where`` (bool (H, W)) painted over the dimmed image."""
    base = _dim(image)
    _paint(base, where, color, alpha)
    return _done(base)
