"""Realistic label errors put into clean masks, to measure how well a ranking finds them.

The five kinds annotators make (Lad & Mueller 2023 and Rottmann & Reese 2022 inject the first
two; the others are what outlines drawn in a hurry look like):

- ``dropped``:  one or two objects left unlabeled (given the class around them)
- ``swapped``:  one object, or the larger part of one region, given another class
- ``boundary``: one class's outline dilated or eroded by a few pixels along its whole edge
- ``shifted``:  the whole mask moved by a few pixels (a label drawn on a misaligned frame)
- ``coarse``:   every outline simplified to a rough polygon (a hasty annotator)

>>> noisy, truth = inject_errors(masks, share=0.05, seed=0, background=0)
>>> truth["dropped"]          # indices of the masks given that kind of error
"""
from __future__ import annotations

import cv2
import numpy as np

KINDS = ("dropped", "swapped", "boundary", "shifted", "coarse")


def _objects(mask: np.ndarray, background: int | None, min_px: int, max_share: float = 0.15
             ) -> list[tuple[int, np.ndarray]]:
    """(class, bool mask) of every 8-connected region of a non-background class of min_px or more
    and at most ``max_share`` of the image: objects, not the ground they stand on."""
    out, most = [], max_share * mask.size
    for c in np.unique(mask):
        if c == background:
            continue
        n, labels, stats, _ = cv2.connectedComponentsWithStats((mask == c).astype(np.uint8), connectivity=8)
        out += [(int(c), labels == k) for k in range(1, n) if min_px <= stats[k, cv2.CC_STAT_AREA] <= most]
    return out


def _surrounding(mask: np.ndarray, region: np.ndarray) -> int:
    ring = cv2.dilate(region.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool) & ~region
    values = mask[ring]
    return int(np.bincount(values).argmax()) if values.size else int(np.bincount(mask.ravel()).argmax())


def drop(mask, rng, background, classes, scale) -> np.ndarray | None:
    objs = _objects(mask, background, int(12 * scale ** 2))
    if not objs:
        return None
    m = mask.copy()
    for k in rng.permutation(len(objs))[: rng.integers(1, 3)]:
        c, region = objs[k]
        m[region] = _surrounding(mask, region)
    return m


def swap(mask, rng, background, classes, scale) -> np.ndarray | None:
    objs = _objects(mask, background, int(12 * scale ** 2), max_share=0.3)
    others = lambda c: [d for d in classes if d != c and d != background]  # noqa: E731
    objs = [(c, r) for c, r in objs if others(c)]
    if not objs:
        return None
    c, region = objs[rng.integers(len(objs))]
    m = mask.copy()
    m[region] = rng.choice(others(c))
    return m


def boundary(mask, rng, background, classes, scale) -> np.ndarray | None:
    present = [c for c in np.unique(mask) if c != background and (mask == c).sum() >= 30 * scale ** 2]
    if not present:
        return None
    c = int(rng.choice(present))
    r = max(1, int(round(rng.uniform(2, 3.5) * scale)))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    inside = (mask == c).astype(np.uint8)
    m = mask.copy()
    if rng.random() < 0.5:                  # dilated: class c grows over its neighbours
        m[cv2.dilate(inside, kernel).astype(bool) & (mask != c)] = c
    else:                                   # eroded: its rim goes to the class around it
        rim = inside.astype(bool) & ~cv2.erode(inside, kernel).astype(bool)
        grown = cv2.dilate(np.where(inside.astype(bool), 0, mask + 1).astype(np.uint8), kernel)   # nearest other
        m[rim] = np.where(grown[rim] > 0, grown[rim] - 1, mask[rim])
    return m


def shift(mask, rng, background, classes, scale) -> np.ndarray | None:
    h, w = mask.shape
    dy, dx = (int(round(v * scale)) * int(rng.choice([-1, 1])) for v in rng.uniform(2, 4, 2))
    moved = cv2.warpAffine(mask, np.float32([[1, 0, dx], [0, 1, dy]]), (w, h), flags=cv2.INTER_NEAREST,
                           borderMode=cv2.BORDER_REPLICATE)
    return moved


def coarse(mask, rng, background, classes, scale) -> np.ndarray | None:
    eps = rng.uniform(2.0, 3.5) * scale
    m = np.full_like(mask, background if background is not None else int(np.bincount(mask.ravel()).argmax()))
    order = sorted((c for c in np.unique(mask) if c != m.flat[0]), key=lambda c: -(mask == c).sum())
    for c in order:             # large classes first, small ones drawn over them
        contours, _ = cv2.findContours((mask == c).astype(np.uint8), cv2.RETR_CCOMP, cv2.CHAIN_APPROX_NONE)
        rough = [cv2.approxPolyDP(cnt, eps, True) for cnt in contours]
        layer = np.zeros_like(mask)
        cv2.drawContours(layer, rough, -1, 1, thickness=cv2.FILLED)
        m[layer.astype(bool)] = c
    return m if (m != mask).mean() > 0.01 else None


INJECTORS = {"dropped": drop, "swapped": swap, "boundary": boundary, "shifted": shift, "coarse": coarse}


def inject_errors(masks: np.ndarray, share: float = 0.05, seed: int = 0, background: int | None = 0,
                  kinds=KINDS, scale: float | None = None) -> tuple[np.ndarray, dict[str, list[int]]]:
    """(noisy masks, {kind: indices}) with ``share`` of the masks given each kind of error, on
    disjoint images. ``scale``: pixel sizes grow with the images (default: shorter side / 64).
    A mask where a kind cannot apply (no object to drop) is skipped for another."""
    masks = np.asarray(masks)
    rng = np.random.default_rng(seed)
    n = len(masks)
    scale = scale or max(1.0, min(masks.shape[1:]) / 64)
    classes = [int(c) for c in np.unique(masks)]
    noisy = masks.copy()
    order = iter(rng.permutation(n).tolist())
    truth: dict[str, list[int]] = {k: [] for k in kinds}
    want = max(1, int(round(share * n)))
    for kind in kinds:
        for i in order:
            changed = INJECTORS[kind](masks[i], rng, background, classes, scale)
            if changed is None or (changed != masks[i]).sum() < 8:
                continue
            noisy[i] = changed
            truth[kind].append(int(i))
            if len(truth[kind]) == want:
                break
    return noisy, truth
