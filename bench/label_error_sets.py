"""Clean datasets for bench_label_errors.py: the demo's terrain with nothing injected, and
aerial-like scenes of discrete objects (buildings, roads, trees, cars, water on ground)."""
from __future__ import annotations

import cv2
import numpy as np

from seglib.data.demo import clean_terrain

AERIAL_CLASSES = ["ground", "building", "road", "tree", "car", "water"]
_COLOURS = np.array([[120, 110, 80], [170, 160, 150], [70, 70, 75], [40, 90, 40], [200, 40, 40], [40, 70, 140]],
                    np.float32)


def aerial_scenes(n: int, seed: int = 0, size: int = 128) -> tuple[np.ndarray, np.ndarray]:
    """(images (n, S, S, 3) uint8, masks (n, S, S) uint8): roads crossing, buildings beside them,
    trees as blobs, cars on the roads, now and then a pond; per-class texture and lighting."""
    rng = np.random.default_rng(seed)
    masks = np.zeros((n, size, size), np.uint8)
    for m in masks:
        if rng.random() < 0.3:
            centre = (int(rng.integers(0, size)), int(rng.integers(0, size)))
            axes = (int(rng.integers(10, 30)), int(rng.integers(8, 20)))
            cv2.ellipse(m, centre, axes, float(rng.uniform(0, 180)), 0, 360, 5, -1)
        for _ in range(rng.integers(1, 3)):
            if rng.random() < 0.5:
                y = int(rng.integers(10, size - 10))
                cv2.line(m, (0, y), (size, y + int(rng.integers(-20, 20))), 2, int(rng.integers(6, 11)))
            else:
                x = int(rng.integers(10, size - 10))
                cv2.line(m, (x, 0), (x + int(rng.integers(-20, 20)), size), 2, int(rng.integers(6, 11)))
        for _ in range(rng.integers(2, 6)):
            x, y = (int(v) for v in rng.integers(0, size - 20, 2))
            w, h = (int(v) for v in rng.integers(10, 26, 2))
            if (m[y:y + h, x:x + w] == 0).mean() > 0.9:
                m[y:y + h, x:x + w] = 1
        for _ in range(rng.integers(3, 9)):
            c = (int(rng.integers(0, size)), int(rng.integers(0, size)))
            r = int(rng.integers(3, 8))
            blob = np.zeros_like(m)
            cv2.circle(blob, c, r, 1, -1)
            m[(blob == 1) & (m == 0)] = 3
        road = np.argwhere(m == 2)
        for _ in range(rng.integers(0, 4) if len(road) else 0):
            y, x = road[rng.integers(len(road))]
            car = np.zeros_like(m)
            cv2.rectangle(car, (int(x) - 2, int(y) - 1), (int(x) + 2, int(y) + 1), 1, -1)
            m[(car == 1) & (m == 2)] = 4
    base = _COLOURS[masks]                                                   # (n, S, S, 3)
    light = rng.uniform(0.8, 1.2, (n, 1, 1, 1)).astype(np.float32)
    grain = rng.normal(0, 9, masks.shape + (1,)).astype(np.float32)
    texture = np.stack([cv2.GaussianBlur(rng.normal(0, 14, (size, size)).astype(np.float32), (0, 0), 2)
                        for _ in range(n)])[..., None]
    img = base * light + grain + texture * (masks[..., None] != 2)
    img = np.stack([cv2.GaussianBlur(i, (3, 3), 0.7) for i in img])
    return np.clip(np.rint(img), 0, 255).astype(np.uint8), masks


def terrain(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    return clean_terrain(n, seed)
