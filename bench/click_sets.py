"""Scenes for bench_clicks.py: street-like frames (480x360: sky, buildings, road, pavement,
cars, poles, trees) with per-object colour and texture, so objects of one class differ as they do
in photos. Aerial-like scenes come from label_error_sets.aerial_scenes."""
from __future__ import annotations

import cv2
import numpy as np

STREET_CLASSES = ["sky", "building", "road", "pavement", "car", "pole", "tree"]
_BASE = {0: (150, 190, 235), 1: (150, 130, 115), 2: (80, 80, 85), 3: (160, 155, 145), 4: (180, 30, 30),
         5: (60, 60, 60), 6: (50, 110, 45)}


def _draw_object(img, mask, shape: np.ndarray, cls: int, rng) -> None:
    """Paint one object: its own tint of the class colour, its own shading, then into the mask."""
    base = np.array(_BASE[cls], np.float32) * rng.uniform(0.7, 1.3) + rng.normal(0, 18, 3)
    if cls == 4:   # cars come in all colours
        base = rng.uniform(20, 235, 3).astype(np.float32)
    ys, xs = np.nonzero(shape)
    if not len(ys):
        return
    shade = 1 + 0.25 * (ys - ys.mean()) / max(1.0, ys.std() * 3)
    img[ys, xs] = np.clip(base[None] * shade[:, None], 0, 255)
    mask[ys, xs] = cls


def street_scenes(n: int, seed: int = 0, h: int = 360, w: int = 480) -> tuple[np.ndarray, np.ndarray]:
    """(images (n, h, w, 3) uint8, masks (n, h, w) uint8) of street-like frames."""
    rng = np.random.default_rng(seed)
    images = np.zeros((n, h, w, 3), np.uint8)
    masks = np.zeros((n, h, w), np.uint8)
    for k in range(n):
        img = np.zeros((h, w, 3), np.float32)
        m = np.zeros((h, w), np.uint8)
        horizon = int(h * rng.uniform(0.45, 0.6))
        sky = np.linspace(1.1, 0.85, h)[:, None, None] * np.array(_BASE[0], np.float32)
        img[:] = sky
        x = 0
        while x < w:   # a row of buildings of their own heights and colours
            bw = int(rng.integers(50, 140))
            top = int(rng.integers(int(h * 0.08), horizon - 30))
            shape = np.zeros((h, w), np.uint8)
            shape[top:horizon, x:x + bw] = 1
            _draw_object(img, m, shape, 1, rng)
            for wy in range(top + 10, horizon - 15, 22):    # windows: texture inside the building
                for wx in range(x + 8, min(x + bw, w) - 10, 18):
                    img[wy:wy + 10, wx:wx + 8] *= rng.uniform(0.4, 0.7)
            x += bw + int(rng.integers(0, 25))
        road = np.zeros((h, w), np.uint8)
        cv2.fillPoly(road, [np.array([[0, h], [w, h], [int(w * 0.62), horizon], [int(w * 0.38), horizon]])], 1)
        pave = np.zeros((h, w), np.uint8)
        pave[horizon:] = 1
        pave[road == 1] = 0
        _draw_object(img, m, pave, 3, rng)
        _draw_object(img, m, road, 2, rng)
        for _ in range(int(rng.integers(1, 4))):   # trees on the pavement, in front of buildings
            cx = int(rng.integers(20, w - 20))
            base_y = int(rng.integers(horizon + 5, min(h - 5, horizon + 60)))
            r = int(rng.integers(18, 40))
            shape = np.zeros((h, w), np.uint8)
            cv2.ellipse(shape, (cx, base_y - r * 2), (r, int(r * 1.2)), 0, 0, 360, 1, -1)
            cv2.rectangle(shape, (cx - 3, base_y - r), (cx + 3, base_y), 1, -1)
            _draw_object(img, m, shape, 6, rng)
        for _ in range(int(rng.integers(1, 3))):   # poles
            px = int(rng.integers(10, w - 10))
            shape = np.zeros((h, w), np.uint8)
            top = int(rng.integers(int(h * 0.15), horizon))
            cv2.rectangle(shape, (px, top), (px + int(rng.integers(3, 6)), int(rng.integers(horizon + 20, h))), 1, -1)
            _draw_object(img, m, shape, 5, rng)
        for _ in range(int(rng.integers(1, 4))):   # cars on the road, bigger when nearer
            y = int(rng.integers(horizon + 20, h - 10))
            scale = (y - horizon) / (h - horizon)
            cw, ch = int(40 + 110 * scale), int(20 + 50 * scale)
            cx = int(w / 2 + rng.uniform(-0.35, 0.35) * (w * 0.25 + w * 0.6 * scale))
            shape = np.zeros((h, w), np.uint8)
            cv2.rectangle(shape, (cx - cw // 2, y - ch), (cx + cw // 2, y - ch // 3), 1, -1)
            cv2.rectangle(shape, (cx - cw // 3, y - ch - ch // 2), (cx + cw // 3, y - ch), 1, -1)
            _draw_object(img, m, shape, 4, rng)
            for wx in (cx - cw // 3, cx + cw // 3):   # wheels: dark, part of the car
                cv2.circle(img, (wx, y - ch // 3), max(3, ch // 5), (20, 20, 20), -1)
                cv2.circle(m, (wx, y - ch // 3), max(3, ch // 5), 4, -1)
        img += rng.normal(0, 6, img.shape)
        img = cv2.GaussianBlur(img, (3, 3), 0.8)
        images[k] = np.clip(np.rint(img), 0, 255).astype(np.uint8)
        masks[k] = m
    return images, masks
