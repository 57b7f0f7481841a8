"""Datasets of crops cut from a few large synthetic aerial scenes, for the overlap detector and the
split by group (tests/test_outliers_overlaps.py, test_split_groups.py, test_page_train_split.py).

``aerial(seed, w, h)`` is a textured RGB scene: luminance noise at four scales under a tint, and
small sharp-edged "roofs". ``write_crops(root, ...)`` cuts ``per_source`` crops at random offsets
from each of ``n_sources`` scenes into ``root/images/tile<s>/crop_<k>.jpg`` (JPEG, as photos are)
with 3-class masks in ``root/masks/``, and returns ``{image_id: (source, x, y)}``: image ids
``tile<s>/crop_<k>``, so the first folder is the source.
"""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

CLASSES = [{"id": 0, "name": "dark"}, {"id": 1, "name": "mid"}, {"id": 2, "name": "bright"}]


def aerial(seed: int, w: int, h: int) -> np.ndarray:
    """(h, w, 3) uint8: a scene no other seed shares any part of."""
    rng = np.random.default_rng(seed)
    lum = np.zeros((h, w), np.float32)
    for cell, amp in ((max(w, h) // 5, 40), (60, 22), (12, 12), (3, 7)):
        field = rng.normal(0, 1, (h // cell + 2, w // cell + 2)).astype(np.float32)
        lum += amp * cv2.resize(field, (w, h), interpolation=cv2.INTER_CUBIC)
    img = (110 + lum)[..., None] * rng.uniform(0.7, 1.2, 3).astype(np.float32)
    for _ in range(w * h // 3000):
        x, y = rng.integers(0, [w, h])
        rw, rh = rng.integers(4, 24, 2)
        c = float(rng.uniform(40, 230))
        cv2.rectangle(img, (int(x), int(y)), (int(x + rw), int(y + rh)), (c, 0.95 * c, 0.9 * c), -1)
    return np.clip(img, 0, 255).astype(np.uint8)


def write_crops(root: Path, n_sources: int = 3, per_source: int = 10, size: tuple[int, int] = (600, 400),
                crop: tuple[int, int] = (300, 200), seed: int = 0) -> dict[str, tuple[int, int, int]]:
    """Crops of ``crop`` (w, h) px at random offsets in scenes of ``size`` (w, h); see the module."""
    rng = np.random.default_rng(seed)
    placed = {}
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "classes.json").write_text(json.dumps(CLASSES))
    for s in range(n_sources):
        scene = aerial(100 + s, *size)
        for d in ("images", "masks"):
            (root / d / f"tile{s}").mkdir(parents=True, exist_ok=True)
        for k in range(per_source):
            x, y = (int(rng.integers(0, size[i] - crop[i] + 1)) for i in (0, 1))
            part = scene[y : y + crop[1], x : x + crop[0]]
            image_id = f"tile{s}/crop_{k:02d}"
            Image.fromarray(part).save(root / "images" / f"{image_id}.jpg", quality=90)
            mask = np.digitize(part.mean(2), [95, 135]).astype(np.uint8)
            Image.fromarray(mask).save(root / "masks" / f"{image_id}.png")
            placed[image_id] = (s, x, y)
    return placed


def true_share(placed: dict, a: str, b: str, crop: tuple[int, int] = (300, 200)) -> float:
    """The fraction of a crop's pixels two crops of ``placed`` share (0 for different sources)."""
    (sa, xa, ya), (sb, xb, yb) = placed[a], placed[b]
    if sa != sb:
        return 0.0
    w, h = crop[0] - abs(xa - xb), crop[1] - abs(ya - yb)
    return max(w, 0) * max(h, 0) / (crop[0] * crop[1])
