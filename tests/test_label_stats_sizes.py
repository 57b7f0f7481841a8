"""label_stats compares a mask's pieces with what is usual *for its size*: big tiles hold more objects."""
from __future__ import annotations

import numpy as np
from PIL import Image

from seglib.data import open_dataset
from seglib.outliers import detect
from seglib.stats import compute_stats


def _blobs(rng, h: int, w: int, per_mp: float) -> np.ndarray:
    """A two-class mask with about ``per_mp`` separate squares of class 1 per megapixel."""
    m = np.zeros((h, w), np.uint8)
    n = max(1, int(round(per_mp * h * w / 1e6)))
    ys, xs = rng.integers(0, h - 8, n), rng.integers(0, w - 8, n)
    for y, x in zip(ys - ys % 12, xs - xs % 12, strict=True):  # a 12-px grid: squares never touch
        m[y:y + 6, x:x + 6] = 1
    return m


def _folder(tmp_path, sizes_and_density) -> str:
    rng = np.random.default_rng(0)
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    for k, ((h, w), per_mp) in enumerate(sizes_and_density):
        img = rng.integers(0, 255, (h, w), dtype=np.uint8)
        Image.fromarray(img).save(tmp_path / "images" / f"{k:03d}.png")
        Image.fromarray(_blobs(rng, h, w, per_mp)).save(tmp_path / "masks" / f"{k:03d}.png")
    return str(tmp_path)


def test_big_tiles_with_the_usual_density_are_not_flagged_a_dense_small_mask_is(tmp_path):
    # 30 small masks (~8 pieces), 3 tiles 20x their area with the same density (~160 pieces), one
    # small mask with 6x the usual density: only that one is fragmented for its size.
    spec = [((200, 200), 200.0)] * 30 + [((900, 900), 200.0)] * 3 + [((200, 200), 1200.0)]
    ds = open_dataset(_folder(tmp_path, spec))
    flags = detect(ds, compute_stats(ds), detectors=["label_stats"], use_cache=False)
    pieces = flags[flags.reason.str.contains("pieces")]
    assert pieces.image_id.tolist() == ["033"], pieces.reason.tolist()
    assert "expected at its size" in pieces.reason.iloc[0]
