"""Overlapping crops: images cut from one source at different offsets share pixels (a leak when
they straddle a train/validation split), which the near-copy detector, comparing whole images,
cannot see.

Three vectorised steps over the ORB keypoints of every image (:mod:`.keypoints`):

1. Candidate matches by locality-sensitive hashing: LSH_TABLES keys of KEY_BYTES random bytes
   of each 32-byte descriptor; keypoints of different images that share a key (in a bucket of
   at most BUCKET_CAP, so featureless patterns that match everything are dropped) and differ in
   at most MAX_HAMMING of 256 bits are matches. No image pair is ever compared in full.
2. A translation per image pair (crops of one source share a scale): the most common offset
   among its matches (a Hough vote on BIN-px cells), refined to the mean of the matches near it;
   INLIER_PX from it is an inlier. Matches of unrelated images scatter; a crop pair's agree.
3. A pixel check on the thumbnails: the detail (the picture less its blur) of the shared part
   must correlate cell by cell over most of it, which two pictures of one layout (sky above
   ground) shifted do not, nor pictures that share only a burned-in timestamp or logo, matching
   at one offset in every image.

Pairs that share >= ``min_share`` of the smaller image's pixels are overlaps; the connected
components of overlaps are groups (o1, o2, ...). Copies of one picture (exact or near) are left
to those detectors.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import pandas as pd

from .base import detector, flags_frame, groups_from_pairs, numbered_groups
from .duplicates import picture_groups
from .features import Progress, aligned, features_for
from .keypoints import Keypoints, compute_keypoints

LSH_TABLES, KEY_BYTES = 8, 3  # 8 keys of 24 bits: a keypoint seen in two crops shares one with ~70% odds
BUCKET_CAP = 16     # keypoints sharing a key with more than this many are not distinctive: skipped
MAX_HAMMING = 64    # of 256 bits: a keypoint seen twice differs in ~10-40, unrelated ones in ~128
BIN = 4.0           # px at the working scale: the Hough cells offsets are voted into
INLIER_PX = 2.0     # an inlier lies this close to its pair's offset (working scale)
MATCH_BLOCK = 1 << 17  # matches voted at once: ~20 MB of working arrays (160 bytes a match), whatever the dataset
MIN_INLIERS = 5     # unrelated pairs reach 3 agreeing matches by chance (350 aerial crops; the pixel check would
                    # sort out more); crop pairs sharing a third have 12-25 (5th percentile, median)
DETAIL_SIGMA = 2.0  # thumbnail px: the pixel check compares detail finer than this (the picture minus its blur)
CELL = 8            # thumbnail px: the shared part is compared cell by cell ...
AGREE_QUANTILE = 25  # ... and three quarters of its cells must correlate >= MIN_AGREE: crops of one source
MIN_AGREE = 0.5     # do (>= 0.88 for 99% of pairs of 350 aerial crops); unrelated pictures whose layout agrees (the
                    # demo's sky above ground) or that share an overlay (a timestamp, a logo) stay below 0
MIN_CELLS = 4       # cells with a picture in both images: fewer cannot tell
MIN_STD = 1.0       # grey levels of detail: a flat cell (sky, water) carries no picture to compare
MIN_SHARE = 0.2     # the default share of the smaller image's pixels a pair must have in common
MIN_MIN_SHARE = 0.05  # the lowest share a user may choose: below it, two matched corners are an "overlap"
LSH_SEED = 0        # which bytes make the keys: fixed, so results are reproducible
OVERLAP_SCORE, OVERLAP_SPAN = 0.4, 0.4  # 0.4 at a fifth shared .. 0.8 for a crop inside another:
# below a near copy (0.7-0.9) at most shares, above a video sequence (0.3): a leak, not a broken image


@dataclass
class Overlaps:
    """Image pairs (a < b, rows of ``ids``) that share pixels, one entry per pair.

    dx, dy (float32): where a's top-left corner lies in b, in full-size px.
    share_a, share_b (float32): the fraction of a's / b's pixels in the shared rectangle.
    inliers (int32): keypoint matches that agree on the offset; agreement (float32): see :func:`agreement`.
    groups (N,) int: component label of each image (images in no pair are alone).
    """

    ids: list[str]
    a: np.ndarray
    b: np.ndarray
    dx: np.ndarray
    dy: np.ndarray
    share_a: np.ndarray
    share_b: np.ndarray
    inliers: np.ndarray
    agreement: np.ndarray
    groups: np.ndarray

    def __len__(self) -> int:
        return len(self.a)


def candidate_matches(kp: Keypoints) -> tuple[np.ndarray, np.ndarray]:
    """Keypoint matches across images, each once: (i, j) rows of ``kp.desc`` with
    ``kp.owner[i] < kp.owner[j]`` (step 1 of the module)."""
    m = len(kp.desc)
    words = np.ascontiguousarray(kp.desc).view(np.uint64)  # (M, 4): Hamming distance by popcount
    rng = np.random.default_rng(LSH_SEED)
    codes = []
    for _ in range(LSH_TABLES):
        cols = rng.choice(kp.desc.shape[1], KEY_BYTES, replace=False)
        key = np.zeros(m, np.uint32)
        for c in cols:
            key = (key << np.uint32(8)) | kp.desc[:, c]
        order = np.argsort(key, kind="stable")
        starts = np.flatnonzero(np.r_[True, key[order][1:] != key[order][:-1]])
        lengths = np.diff(np.r_[starts, m])
        for n in range(2, BUCKET_CAP + 1):  # buckets of one size at a time: a (buckets, n) table
            members = order[starts[lengths == n, None] + np.arange(n)]
            if not len(members):
                continue
            ta, tb = np.triu_indices(n, 1)
            i, j = members[:, ta].ravel(), members[:, tb].ravel()
            keep = kp.owner[i] != kp.owner[j]
            i, j = i[keep], j[keep]
            close = np.bitwise_count(words[i] ^ words[j]).sum(1) <= MAX_HAMMING
            i, j = i[close], j[close]
            swap = kp.owner[i] > kp.owner[j]
            codes.append(np.where(swap, j, i).astype(np.int64) * m + np.where(swap, i, j))
    if not codes:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    code = np.unique(np.concatenate(codes))  # a match found by several keys counts once
    return code // m, code % m


def translations(kp: Keypoints, i: np.ndarray, j: np.ndarray, min_inliers: int = 1) -> tuple[np.ndarray, ...]:
    """Each image pair's offset from its matches (step 2): (a, b, dx, dy, inliers), dx/dy at the
    working scale (where a's corner lies in b), for every pair with at least ``min_inliers``.

    ``i`` must be ascending (as :func:`candidate_matches` gives it), so that the matches of one
    image pair are contiguous: they are taken about MATCH_BLOCK at a time, whole pairs per block,
    and memory stays bounded whatever the number of matches."""
    a = kp.owner[i]
    parts, start = [], 0
    while start < len(i):
        end = len(i) if start + MATCH_BLOCK >= len(i) else int(np.searchsorted(a, a[start + MATCH_BLOCK], "right"))
        p, q, dx, dy, count = _block_translations(kp, i[start:end], j[start:end])
        keep = count >= min_inliers
        parts.append((p[keep], q[keep], dx[keep], dy[keep], count[keep]))
        start = end
    if not parts:
        empty = np.zeros(0, np.int64)
        return empty, empty, np.zeros(0, np.float32), np.zeros(0, np.float32), np.zeros(0, np.int32)
    return tuple(np.concatenate(column) for column in zip(*parts, strict=True))


def _block_translations(kp: Keypoints, i: np.ndarray, j: np.ndarray) -> tuple[np.ndarray, ...]:
    """:func:`translations` of matches holding every match of their image pairs."""
    n = len(kp)
    pair = kp.owner[i].astype(np.int64) * n + kp.owner[j]
    d = kp.xy[j] - kp.xy[i]
    span = 1 << 14  # cells per axis: offsets up to +-32k px at the working scale
    cell = np.clip(np.floor(d / BIN).astype(np.int64) + span // 2, 0, span - 1)
    code = (pair * span + cell[:, 0]) * span + cell[:, 1]
    cells, votes = np.unique(code, return_counts=True)
    cell_pair = cells // (span * span)
    order = np.lexsort((-votes, cell_pair))  # by pair, most voted cell first
    first = order[np.r_[True, cell_pair[order][1:] != cell_pair[order][:-1]]]
    pairs, best = cell_pair[first], cells[first] % (span * span)
    at = np.searchsorted(pairs, pair)
    near = (np.abs(cell[:, 0] - best[at] // span) <= 1) & (np.abs(cell[:, 1] - best[at] % span) <= 1)
    centre = _group_mean(at[near], d[near], len(pairs))
    inlier = near & (np.abs(d - centre[at]).max(1) <= INLIER_PX)
    offset = _group_mean(at[inlier], d[inlier], len(pairs))
    count = np.bincount(at[inlier], minlength=len(pairs)).astype(np.int32)
    return pairs // n, pairs % n, offset[:, 0], offset[:, 1], count


def _group_mean(group: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    """(n, 2) mean of ``values`` (K, 2) by ``group`` (K,) labels; 0 for an empty group."""
    counts = np.maximum(np.bincount(group, minlength=n), 1)[:, None]
    sums = np.stack([np.bincount(group, values[:, k], minlength=n) for k in range(2)], 1)
    return (sums / counts).astype(np.float32)


def shared_rectangle(size_a: np.ndarray, size_b: np.ndarray, dx: np.ndarray, dy: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray]:
    """(share of a, share of b) of the pixels of a placed at (dx, dy) in b; sizes (K, 2) (H, W)."""
    w = np.minimum(size_b[:, 1], dx + size_a[:, 1]) - np.maximum(0, dx)
    h = np.minimum(size_b[:, 0], dy + size_a[:, 0]) - np.maximum(0, dy)
    inter = np.clip(w, 0, None) * np.clip(h, 0, None)
    return (inter / np.prod(size_a, 1)).astype(np.float32), (inter / np.prod(size_b, 1)).astype(np.float32)


def agreement(kp: Keypoints, a: int, b: int, dx: float, dy: float) -> float:
    """How much of the part a and b share when a's corner lies at (dx, dy) (working scale) in b
    looks the same (step 3): the shared part of their thumbnails' detail is cut into CELL-px cells,
    and this is the AGREE_QUANTILE-th percentile of the cells' correlations (cells flat in either
    image left out); -1 when fewer than MIN_CELLS cells carry a picture."""
    ta, tb = (_detail(kp.thumbs[k]) for k in (a, b))
    ox, oy = dx * kp.thumb_scale, dy * kp.thumb_scale
    # whole pixels of b inside a's placed frame, one pixel in from its edges (interpolation blurs them)
    x0, y0 = int(np.ceil(max(0.0, ox))) + 1, int(np.ceil(max(0.0, oy))) + 1
    nx = (int(np.floor(min(tb.shape[1], ox + ta.shape[1]))) - 1 - x0) // CELL
    ny = (int(np.floor(min(tb.shape[0], oy + ta.shape[0]))) - 1 - y0) // CELL
    if nx * ny < MIN_CELLS or nx < 1:
        return -1.0
    ys, xs = np.mgrid[y0 : y0 + ny * CELL, x0 : x0 + nx * CELL].astype(np.float32)
    pa = cv2.remap(ta, xs - np.float32(ox), ys - np.float32(oy), cv2.INTER_LINEAR)  # a, sampled where b's pixels are
    pb = tb[y0 : y0 + ny * CELL, x0 : x0 + nx * CELL]
    ca, cb = (p.reshape(ny, CELL, nx, CELL).transpose(0, 2, 1, 3).reshape(ny * nx, CELL * CELL) for p in (pa, pb))
    ca, cb = ca - ca.mean(1, keepdims=True), cb - cb.mean(1, keepdims=True)
    sa, sb = np.sqrt((ca * ca).mean(1)), np.sqrt((cb * cb).mean(1))
    textured = np.minimum(sa, sb) >= MIN_STD
    if textured.sum() < MIN_CELLS:
        return -1.0
    corr = (ca * cb).mean(1)[textured] / (sa * sb)[textured]
    return float(np.percentile(corr, AGREE_QUANTILE))


def _detail(thumb: np.ndarray) -> np.ndarray:
    """A thumbnail's detail: float32, minus its blur (layouts alike, such as sky above ground, cancel)."""
    t = thumb.astype(np.float32)
    return t - cv2.GaussianBlur(t, (0, 0), DETAIL_SIGMA)


def find_overlaps(ds, stats, progress: Progress | None = None, min_share: float = MIN_SHARE) -> Overlaps:
    """Overlapping image pairs of ``ds`` (rows of the shared features' ids) and their groups."""
    f = features_for(ds, stats)
    kp = compute_keypoints(ds, f.ids, aligned(stats, f, "shape"), progress)
    row = {i: k for k, i in enumerate(f.ids)}
    to_f = np.array([row[i] for i in kp.ids], np.int64)
    a, b, dx, dy, inliers = translations(kp, *candidate_matches(kp), min_inliers=MIN_INLIERS)
    pictures = picture_groups(f)  # copies of one picture: the duplicate detectors say so
    keep = pictures[to_f[a]] != pictures[to_f[b]]
    a, b, dx, dy, inliers = a[keep], b[keep], dx[keep], dy[keep], inliers[keep]
    share_a, share_b = shared_rectangle(kp.size[a], kp.size[b], dx, dy)
    keep = np.maximum(share_a, share_b) >= min_share
    a, b, dx, dy, inliers, share_a, share_b = (x[keep] for x in (a, b, dx, dy, inliers, share_a, share_b))
    agree = np.array([agreement(kp, int(p), int(q), float(x), float(y))
                      for p, q, x, y in zip(a, b, dx, dy, strict=True)], np.float32)
    ok = agree >= MIN_AGREE
    a, b = to_f[a[ok]], to_f[b[ok]]
    return Overlaps(ids=f.ids, a=a, b=b, dx=dx[ok] * kp.factor, dy=dy[ok] * kp.factor, share_a=share_a[ok],
                    share_b=share_b[ok], inliers=inliers[ok], agreement=agree[ok],
                    groups=groups_from_pairs(len(f), a, b))


def overlap_flags(o: Overlaps) -> pd.DataFrame:
    """The overlap detector's rows: each image of a group with its most overlapping partner."""
    if not len(o):
        return flags_frame()
    members = np.unique(np.concatenate([o.a, o.b]))
    names = numbered_groups(o.groups, members, "o")
    size = np.bincount(o.groups[members], minlength=int(o.groups.max()) + 1)
    # both directions: (image, partner, share of the image, where the image's corner lies in the partner)
    me = np.concatenate([o.a, o.b])
    other = np.concatenate([o.b, o.a])
    share = np.concatenate([o.share_a, o.share_b])
    ox, oy = np.concatenate([o.dx, -o.dx]), np.concatenate([o.dy, -o.dy])
    order = np.lexsort((-np.concatenate([o.inliers, o.inliers]), -share, me))
    best = order[np.r_[True, me[order][1:] != me[order][:-1]]]
    rows = []
    for k in best:
        i, g = int(me[k]), names[int(o.groups[me[k]])]
        rows.append({"image_id": o.ids[i], "detector": "overlap", "group": g,
                     "score": OVERLAP_SCORE + OVERLAP_SPAN * float(share[k]),
                     "reason": f"shares ~{share[k]:.0%} of its pixels with {o.ids[int(other[k])]!r} "
                               f"(offset {ox[k]:.0f},{oy[k]:.0f} px); {size[o.groups[i]]} images cut from "
                               f"one source (group {g})"})
    return flags_frame(rows)


@detector("overlap", reads_pixels=True)
def overlap(ds, stats, min_share: float = MIN_SHARE, progress: Progress | None = None) -> pd.DataFrame:
    """Images that share part of their pixels with another at an offset: crops of one source.
    ``min_share``: the share of the smaller image's pixels a pair needs (MIN_MIN_SHARE..1)."""
    if not MIN_MIN_SHARE <= min_share <= 1:
        raise ValueError(f"overlap share {min_share} is outside {MIN_MIN_SHARE}..1")
    return overlap_flags(find_overlaps(ds, stats, progress, min_share))


SHARED_PIXEL_DETECTORS = ("exact_duplicate", "near_duplicate", "overlap")


def shared_pixel_groups(flags: pd.DataFrame) -> dict[str, str]:
    """Image id -> group name (g1, g2, ... largest first) for the images of a flag table that
    share pixels with another: exact or near copies, frames of one video sequence, overlapping
    crops. Groups of those detectors that hold a common image are one group; an image in none
    is in no group (its own). A split that keeps each group on one side does not leak."""
    rows = flags[flags["detector"].isin(SHARED_PIXEL_DETECTORS) & flags["group"].notna()]
    if rows.empty:
        return {}
    image_ids, image_node = np.unique(rows["image_id"].to_numpy(str), return_inverse=True)
    _, group_node = np.unique((rows["detector"] + "/" + rows["group"].astype(str)).to_numpy(str), return_inverse=True)
    n = len(image_ids)
    labels = groups_from_pairs(n + int(group_node.max()) + 1, image_node, n + group_node)
    names = numbered_groups(labels, np.arange(n), "g")
    return {str(i): names[int(labels[k])] for k, i in enumerate(image_ids)}
