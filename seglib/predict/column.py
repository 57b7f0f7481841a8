"""One column of a comparison: what a model or an ensemble predicted for every image, kept small.

Per image: the argmax mask (uint8, full size), confidence and normalised entropy maps (uint8,
0..255 for 0..1; shrunk by a whole stride to at most ``MAP_SIDE`` pixels a side: they are for
looking at, and full-size float maps of big photos would not fit in memory), predicted pixels
per class, and for labeled images the confusion matrix against the ground truth. Images may
differ in size: pixels are stored flat, one run per image, with the offsets.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

MAP_SIDE = 512


def _stride(h: int, w: int) -> int:
    return max(1, -(-max(h, w) // MAP_SIDE))


@dataclass
class Column:
    name: str
    ids: list[str]
    shapes: np.ndarray          # int32 (N, 2): H, W of each mask
    masks: np.ndarray           # uint8 flat: each mask's pixels in turn
    map_shapes: np.ndarray      # int32 (N, 2): size of the confidence and entropy maps
    confidence: np.ndarray      # uint8 flat, 255 = probability 1
    entropy: np.ndarray         # uint8 flat, 255 = uniform over the classes
    counts: np.ndarray          # int64 (N, K): predicted pixels per class
    cms: np.ndarray             # int32 (N, K, K): cms[i, t, p], zeros where unlabeled
    labeled: np.ndarray         # bool (N,): the image has a ground-truth mask
    info: dict = field(default_factory=dict)   # kind, members, weights, tta, ...

    def __post_init__(self):
        self._row = {i: k for k, i in enumerate(self.ids)}
        self._off = np.concatenate([[0], np.cumsum(self.shapes.prod(1, dtype=np.int64))])
        self._map_off = np.concatenate([[0], np.cumsum(self.map_shapes.prod(1, dtype=np.int64))])

    def __len__(self) -> int:
        return len(self.ids)

    def __contains__(self, image_id: str) -> bool:
        return image_id in self._row

    def row(self, image_id: str) -> int:
        return self._row[image_id]

    def mask(self, image_id: str) -> np.ndarray:
        """uint8 (H, W) predicted class ids."""
        i = self._row[image_id]
        return self.masks[self._off[i] : self._off[i + 1]].reshape(self.shapes[i])

    def _map(self, values: np.ndarray, image_id: str) -> np.ndarray:
        i = self._row[image_id]
        return values[self._map_off[i] : self._map_off[i + 1]].reshape(self.map_shapes[i]).astype(np.float32) / 255.0

    def confidence_map(self, image_id: str) -> np.ndarray:
        """float32 (h, w) in [0, 1]: probability of the predicted class (vote share for a vote)."""
        return self._map(self.confidence, image_id)

    def entropy_map(self, image_id: str) -> np.ndarray:
        """float32 (h, w) in [0, 1]: entropy of the class probabilities / log K."""
        return self._map(self.entropy, image_id)

    @classmethod
    def gather(cls, name: str, ids: list[str], source_of: dict[str, Column], info: dict) -> Column:
        """A column of ``ids`` whose rows are copied from other columns (``source_of[id]`` holds
        each): cached predictions of other image sets reused for this one."""
        parts: dict[str, list] = {k: [] for k in cls.ARRAYS}
        for image_id in ids:
            c = source_of[image_id]
            r = c._row[image_id]
            for key in ("shapes", "map_shapes", "counts", "cms", "labeled"):
                parts[key].append(getattr(c, key)[r : r + 1])
            parts["masks"].append(c.masks[c._off[r] : c._off[r + 1]])
            parts["confidence"].append(c.confidence[c._map_off[r] : c._map_off[r + 1]])
            parts["entropy"].append(c.entropy[c._map_off[r] : c._map_off[r + 1]])
        if not ids:
            return cls(name, [], **{k: getattr(next(iter(source_of.values())), k)[:0] for k in cls.ARRAYS}, info=info)
        return cls(name, list(ids), **{k: np.concatenate(v) for k, v in parts.items()}, info=info)

    # --- the disk cache -------------------------------------------------------------------
    ARRAYS = ("shapes", "masks", "map_shapes", "confidence", "entropy", "counts", "cms", "labeled")

    def to_arrays(self) -> tuple[dict[str, np.ndarray], dict]:
        return {k: getattr(self, k) for k in self.ARRAYS}, {"name": self.name, "ids": self.ids, "info": self.info}

    @classmethod
    def from_arrays(cls, arrays: dict, meta: dict) -> Column:
        return cls(meta["name"], list(meta["ids"]), **{k: arrays[k] for k in cls.ARRAYS}, info=meta.get("info", {}))


class ColumnBuilder:
    """Collects a column batch by batch (tensors on any device) and packs it at the end."""

    def __init__(self, name: str, num_classes: int, info: dict | None = None):
        self.name, self.k, self.info = name, num_classes, info or {}
        self.ids: list[str] = []
        self.parts: dict[str, list] = {k: [] for k in Column.ARRAYS}

    def add(self, ids: list[str], labels: torch.Tensor, conf: torch.Tensor, ent: torch.Tensor,
            targets: torch.Tensor | None) -> None:
        b, h, w = labels.shape
        s = _stride(h, w)
        k = self.k
        # Counting happens in NumPy on uint8 copies: torch.bincount on a CPU is 10-50x slower than
        # np.bincount, and a GPU only has to send one byte per pixel back.
        pred = labels.to(torch.uint8).cpu().numpy().reshape(b, -1)
        truth = None if targets is None else targets.to(torch.uint8).cpu().numpy().reshape(b, -1)
        cms, counts = per_image_confusion(pred, truth, k)
        p = self.parts
        self.ids += ids
        p["shapes"].append(np.tile([h, w], (b, 1)))
        p["masks"].append(pred.reshape(-1))
        small = (slice(None), slice(None, None, s), slice(None, None, s))
        p["map_shapes"].append(np.tile(conf[small].shape[1:], (b, 1)))
        p["confidence"].append(_quantize(conf[small]))
        p["entropy"].append(_quantize(ent[small]))
        p["counts"].append(counts)
        p["cms"].append(cms)
        p["labeled"].append(np.full(b, targets is not None))

    def build(self) -> Column:
        k, p = self.k, self.parts
        empty = {"shapes": np.zeros((0, 2), np.int32), "map_shapes": np.zeros((0, 2), np.int32),
                 "counts": np.zeros((0, k), np.int64), "cms": np.zeros((0, k, k), np.int32),
                 "labeled": np.zeros(0, bool)}
        arrays = {}
        for key in Column.ARRAYS:
            if not p[key]:
                arrays[key] = empty.get(key, np.zeros(0, np.uint8))
            else:
                arrays[key] = np.concatenate(p[key])
        arrays["shapes"] = arrays["shapes"].astype(np.int32)
        arrays["map_shapes"] = arrays["map_shapes"].astype(np.int32)
        return Column(self.name, list(self.ids), **arrays, info=self.info)


def _quantize(values: torch.Tensor) -> np.ndarray:
    """[0, 1] -> uint8 0..255, rounded (+0.5 then truncation: values are never negative). On a
    CPU in NumPy (single-threaded ufuncs beat torch's small parallel ops); on a GPU before the copy."""
    if values.device.type == "cpu":
        v = values.numpy() * 255 + 0.5
        return np.minimum(v, 255, out=v).astype(np.uint8).reshape(-1)
    return (values * 255 + 0.5).clamp_(max=255).to(torch.uint8).cpu().numpy().reshape(-1)


def per_image_confusion(pred: np.ndarray, target: np.ndarray | None, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(int32 (B, K, K) confusion matrices, int64 (B, K) predicted pixels per class) of uint8
    (B, P) predictions and targets, in one bincount: seglib.metrics.per_image_confusion in NumPy.
    Targets outside 0..K-1 (unknown, 255) are counted in an extra row that the matrices leave
    out; without targets the matrices are zeros."""
    b = len(pred)
    code = np.full(pred.shape, k, np.intp) if target is None else np.minimum(target, k).astype(np.intp)
    code *= k
    code += pred
    code += np.arange(b)[:, None] * ((k + 1) * k)
    full = np.bincount(code.ravel(), minlength=b * (k + 1) * k).reshape(b, k + 1, k)
    return full[:, :k].astype(np.int32), full.sum(1)
