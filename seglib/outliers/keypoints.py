"""The overlap detector's pixel pass: ORB keypoints and a small thumbnail of every image.

Crops cut from one big photo share pixels at an offset, which whole-image hashes and
thumbnails (features.py) cannot see; local keypoints can. Every image of a dataset is matched
at one scale (a reduction by 1, 2, 4 or 8 of the median image, its shorter side >= WORK_SIDE),
so crops of one source keep one scale whatever their sizes, and a big JPEG is decoded reduced
(PIL's draft) straight to it. Kept per image: at most N_KEYPOINTS ORB descriptors (32 bytes)
with their positions, and a grey thumbnail of at most THUMB_SIDE px for the pixel check of a
matched pair: about 23 KB an image, whatever its size, held only while the detector runs (its
flags are cached with the others'). Images stream through a few threads with a bounded
decode-ahead, as in the shared pass.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import cv2
import numpy as np

from ..data.dataset import SegDataset
from ..data.io import reduce_factor
from . import features
from .features import Progress, _Ticker, bounded_map, grey

WORK_SIDE = 256     # the median image is matched reduced by 2, 4 or 8 while its shorter side stays >= this
N_KEYPOINTS = 300   # ORB keypoints an image: ~10 KB of descriptors, enough for a crop overlapping by a fifth ...
PX_PER_KEYPOINT = 250  # ... and at most one per this many pixels: a small image's corners are mostly noise
THUMB_SIDE = 128    # the pixel check's thumbnails: the median image's longer side at most this
ORB_PATCH = 31      # ORB's own patch; a small image gets a smaller one (a keypoint's patch must fit inside)
MIN_PATCH = 9
FAST_THRESHOLD = 5  # ORB's 20 leaves soft photos (and small ones) with few corners; the best N_KEYPOINTS are kept
ORB_LEVELS = 1      # crops of one source share a scale: keypoints at that scale only (more of them, and half
                    # the time of ORB's 8 levels; recall of crop pairs sharing a fifth 0.98 vs 0.92)


@dataclass
class Keypoints:
    """Keypoints of N images (rows in ``ids`` order) at one working scale.

    factor: images are matched at 1/factor of their full size (1, 2, 4 or 8).
    size (N, 2) int32: each image's (H, W) at the working scale.
    desc (M, 32) uint8, xy (M, 2) float32, owner (M,) int32: every image's ORB descriptors,
    their (x, y) at the working scale and the row of their image, concatenated.
    thumbs: N grey uint8 thumbnails, ``thumb_scale`` times the working size (all alike).
    """

    ids: list[str]
    factor: int
    size: np.ndarray
    desc: np.ndarray
    xy: np.ndarray
    owner: np.ndarray
    thumbs: list[np.ndarray]
    thumb_scale: float

    def __len__(self) -> int:
        return len(self.ids)


def working_factor(shapes: np.ndarray) -> int:
    """The reduction (1, 2, 4 or 8) of the median (H, W) of ``shapes`` ((N, >=2)) that keeps its
    shorter side >= WORK_SIDE."""
    if not len(shapes):
        return 1
    h, w = np.median(np.asarray(shapes)[:, :2], axis=0)
    return reduce_factor(int(w), int(h), shorter=WORK_SIDE)


def _orb(h: int, w: int) -> cv2.ORB:
    patch = int(min(ORB_PATCH, max(MIN_PATCH, min(h, w) // 4)))
    n = int(min(N_KEYPOINTS, max(8, h * w // PX_PER_KEYPOINT)))
    return cv2.ORB_create(nfeatures=n, nlevels=ORB_LEVELS, edgeThreshold=patch, patchSize=patch,
                          fastThreshold=FAST_THRESHOLD)


def compute_keypoints(ds: SegDataset, ids: list[str], shapes: np.ndarray, progress: Progress | None = None
                      ) -> Keypoints:
    """Keypoints of the images ``ids`` whose full (H, W) are ``shapes`` ((N, >=2)); images that
    cannot be read are left out of the result's ids."""
    factor = working_factor(shapes)
    work = np.asarray(shapes)[:, :2] / factor
    longer = float(np.median(work.max(1))) if len(work) else 1.0
    thumb_scale = min(1.0, THUMB_SIDE / max(longer, 1.0))
    shorter = {i: int(min(s[:2])) // factor for i, s in zip(ids, shapes, strict=True)}
    tick = _Ticker(progress, len(ids))
    tick(0)
    workers = features.WORKERS or min(8, (os.cpu_count() or 2) * 2)

    def one(image_id: str) -> dict | None:
        try:
            img, (h, w), _ = ds.image_reduced(image_id, shorter=shorter[image_id] if factor > 1 else 0)  # 0: full size
        except Exception:  # unreadable since the statistics pass: nothing to match
            return None
        return _describe(img, (-(-h // factor), -(-w // factor)), thumb_scale)

    rows, kept = [], []
    for k, (image_id, row) in enumerate(zip(ids, bounded_map(one, ids, workers, 2 * workers), strict=True)):
        if row is not None:
            rows.append(row)
            kept.append(image_id)
        tick(k + 1)
    tick(len(ids))
    counts = [len(r["desc"]) for r in rows]
    return Keypoints(
        ids=kept, factor=factor, size=np.array([r["size"] for r in rows], np.int32).reshape(-1, 2),
        desc=np.concatenate([r["desc"] for r in rows]) if rows else np.zeros((0, 32), np.uint8),
        xy=np.concatenate([r["xy"] for r in rows]) if rows else np.zeros((0, 2), np.float32),
        owner=np.repeat(np.arange(len(rows), dtype=np.int32), counts),
        thumbs=[r["thumb"] for r in rows], thumb_scale=thumb_scale)


def _describe(img: np.ndarray, size: tuple[int, int], thumb_scale: float) -> dict:
    """An image decoded at (or above) the working ``size`` (H, W) -> its keypoints and thumbnail."""
    g = grey(img)
    if g.shape != size:
        g = cv2.resize(g, size[::-1], interpolation=cv2.INTER_AREA)
    kp, desc = _orb(*size).detectAndCompute(g, None)
    thumb = cv2.resize(g, (max(1, round(size[1] * thumb_scale)), max(1, round(size[0] * thumb_scale))),
                       interpolation=cv2.INTER_AREA)
    return {"desc": desc if desc is not None else np.zeros((0, 32), np.uint8),
            "xy": np.array([p.pt for p in kp], np.float32).reshape(-1, 2), "size": size, "thumb": thumb}
