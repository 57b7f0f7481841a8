"""Where a model disagrees with a label: connected regions, largest first, and accepting them.

>>> regions = disagreement_regions(label, pred, ds.class_map)
>>> regions[0].describe(ds.class_map)       # '412 px: label road → model building'
>>> fixed = accept_region(label, pred, regions[0])

A region is a 4-connected set of pixels where the label says one class and the model another
(one pair of classes per region, so "accept" means one thing). Pixels the label marks with an
ignore class are left out: ignore regions are the labeller's choice, not a disagreement.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import cv2
import numpy as np


@dataclass(frozen=True)
class Region:
    index: int                       # 0 = the largest
    area: int                        # pixels
    bbox: tuple[int, int, int, int]  # y0, x0, y1, x1 (exclusive ends)
    label_class: int
    pred_class: int
    _components: np.ndarray = field(repr=False, compare=False)  # int32 (H, W) component ids, shared
    _component: int = field(repr=False, compare=False, default=0)

    @property
    def pixels(self) -> np.ndarray:
        """(H, W) bool: the region's pixels."""
        return self._components == self._component

    def describe(self, class_map) -> str:
        return (f"{self.area:,} px: label {class_map.name_of(self.label_class)} → "
                f"model {class_map.name_of(self.pred_class)}")


def region_key(region: Region) -> str:
    """A stable name of a region (its pixels and the model's class): survives re-listing, so a
    rejected region stays rejected when the regions are found again."""
    h = hashlib.md5(np.packbits(np.asarray(region.pixels, bool)).tobytes())
    h.update(f"{region.label_class}>{region.pred_class}".encode())
    return h.hexdigest()[:16]


def disagreement_regions(label: np.ndarray, pred: np.ndarray, class_map, min_px: int = 4,
                         limit: int = 200) -> list[Region]:
    """The regions where ``pred`` differs from ``label`` (both (H, W) class ids), of at least
    ``min_px`` pixels, largest first (at most ``limit``)."""
    if label.shape != pred.shape:
        raise ValueError(f"label is {label.shape[1]}x{label.shape[0]} but the prediction is "
                         f"{pred.shape[1]}x{pred.shape[0]}")
    differ = label != pred
    ignored = class_map.ignore_ids
    if ignored:
        differ &= ~np.isin(label, ignored)
    if not differ.any():
        return []
    pair = label.astype(np.int32) * 256 + pred.astype(np.int32)
    components = np.zeros(label.shape, np.int32)
    found: list[tuple[int, tuple, int, int, int]] = []
    next_id = 1
    for key in np.unique(pair[differ]):
        n, comp, stats, _ = cv2.connectedComponentsWithStats((differ & (pair == key)).astype(np.uint8), connectivity=4)
        for c in range(1, n):
            x, y, w, h, area = (int(v) for v in stats[c])
            if area < min_px:
                continue
            components[comp == c] = next_id
            found.append((area, (y, x, y + h, x + w), int(key) // 256, int(key) % 256, next_id))
            next_id += 1
    found.sort(key=lambda r: -r[0])
    return [Region(k, area, bbox, lc, pc, components, cid)
            for k, (area, bbox, lc, pc, cid) in enumerate(found[:limit])]


def accept_region(mask: np.ndarray, pred: np.ndarray, region: Region) -> np.ndarray:
    """A copy of ``mask`` that takes the model's class inside ``region``."""
    out = mask.copy()
    where = region.pixels
    out[where] = pred[where]
    return out


def accept_prediction(mask: np.ndarray | None, pred: np.ndarray, class_map) -> np.ndarray:
    """The whole prediction as a new mask, keeping the pixels ``mask`` marks with an ignore
    class (a start for a badly labeled image, or a new label when ``mask`` is None)."""
    out = pred.astype(np.uint8, copy=True)
    if mask is not None and class_map.ignore_ids:
        keep = np.isin(mask, class_map.ignore_ids)
        out[keep] = mask[keep]
    return out


def region_at(regions: list[Region], x: float, y: float) -> Region | None:
    """The listed region holding pixel (round(y), round(x)), or None (a click on agreement)."""
    j, i = int(np.floor(x + 0.5)), int(np.floor(y + 0.5))
    for r in regions:
        y0, x0, y1, x1 = r.bbox
        if y0 <= i < y1 and x0 <= j < x1 and r._components[i, j] == r._component:
            return r
    return None


def prediction_in_box(mask: np.ndarray, pred: np.ndarray, box, class_map) -> np.ndarray:
    """The content of ``box`` (a raster Box) of ``mask`` taking the model's classes there, keeping
    the pixels the mask marks with an ignore class."""
    return accept_prediction(mask[box.slices], pred[box.slices], class_map)
