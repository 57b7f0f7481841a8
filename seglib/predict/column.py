"""One column of a comparison: what a model or an ensemble predicted for every image, kept small.

Per image: the argmax mask (uint8, full size), confidence and normalised entropy maps (uint8,
0..255 for 0..1; shrunk by a whole stride to at most ``MAP_SIDE`` pixels a side: they are for
looking at, and full-size float maps of big photos would not fit in memory), predicted pixels
per class, and for labeled images the confusion matrix against the ground truth.

Only the small per-image rows (sizes, pixel counts, confusion matrices) live in memory. The
pixels (each image's mask, then its two maps, image after image) are written to a file as the
column is built and read back one image at a time (:class:`PixelFile`): 350 photos of 1500x1100
are 580 MB of masks per column, which a comparison of three columns held in memory before
(issue 22); now memory does not grow with the number of images.
"""
from __future__ import annotations

import os
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..atomic import atomic_write
from ..paths import cache_dir

MAP_SIDE = 512
CONFUSION_CHUNK = 1 << 20   # pixels per bincount: its int64 codes are 8 bytes a pixel
COPY_CHUNK = 1 << 18        # bytes per read when a column's pixels are copied to another file


def map_stride(h: int, w: int) -> int:
    """The whole stride that shrinks an image of h x w to at most MAP_SIDE a side (its maps' grid)."""
    return max(1, -(-max(h, w) // MAP_SIDE))


def map_shape(h: int, w: int) -> tuple[int, int]:
    s = map_stride(h, w)
    return -(-h // s), -(-w // s)


class PixelFile:
    """uint8 runs written one after another to a file, then read back by offset.

    A fresh one is an unnamed temporary file in the cache folder (on disk, gone with the process
    even after a crash); :meth:`open` reads a stored one. The file object stays open, so the
    data stays readable if its path is replaced or removed (POSIX). Reads take a lock: columns
    are shared by the app's sessions (threads)."""

    def __init__(self, f, size: int = 0):
        self._f, self.size = f, size
        self._lock = threading.Lock()

    @classmethod
    def temporary(cls) -> PixelFile:
        return cls(tempfile.TemporaryFile(dir=cache_dir(), prefix=".column-", suffix=".pixels"))

    @classmethod
    def open(cls, path: Path) -> PixelFile:
        f = open(path, "rb")     # kept open for the life of the column
        return cls(f, os.fstat(f.fileno()).st_size)

    def append(self, values: np.ndarray) -> None:
        data = np.ascontiguousarray(values, np.uint8).reshape(-1)
        with self._lock:
            self._f.seek(self.size)
            self._f.write(memoryview(data))
            self.size += data.size

    def read(self, offset: int, n: int) -> np.ndarray:
        """A writable uint8 array of the ``n`` bytes at ``offset``."""
        out = np.empty(n, np.uint8)
        with self._lock:
            self._f.seek(offset)
            got = self._f.readinto(memoryview(out))
        if got != n:
            raise OSError(f"{getattr(self._f, 'name', 'a column file')}: {got} of {n} bytes at {offset}")
        return out

    def append_from(self, other: PixelFile, offset: int, n: int) -> None:
        """Append ``n`` bytes of ``other`` from ``offset``."""
        with self._lock:
            self._f.seek(self.size)
            other.copy_to(self._f, offset, n)
            self.size += n

    def copy_to(self, f, offset: int = 0, n: int | None = None) -> None:
        """Write ``n`` bytes from ``offset`` (default: all) into the open file ``f``, in chunks."""
        n = self.size - offset if n is None else n
        with self._lock:
            self._f.seek(offset)
            while n > 0:
                chunk = self._f.read(min(n, COPY_CHUNK))
                if not chunk:
                    raise OSError(f"{getattr(self._f, 'name', 'a column file')}: ends before {n} more bytes")
                f.write(chunk)
                n -= len(chunk)

    def save(self, path: Path) -> None:
        """Copy every byte to ``path`` (written to a temporary name and renamed)."""
        def write(tmp: str) -> None:
            with open(tmp, "wb") as f:
                self.copy_to(f)

        atomic_write(path, write)

    def close(self) -> None:
        self._f.close()

    def __del__(self):          # a column let go closes its file (a temporary one is then gone)
        f = getattr(self, "_f", None)
        if f is not None:
            f.close()


@dataclass
class Column:
    name: str
    ids: list[str]
    shapes: np.ndarray          # int32 (N, 2): H, W of each mask
    map_shapes: np.ndarray      # int32 (N, 2): size of the confidence and entropy maps
    counts: np.ndarray          # int64 (N, K): predicted pixels per class
    cms: np.ndarray             # int32 (N, K, K): cms[i, t, p], zeros where unlabeled
    labeled: np.ndarray         # bool (N,): the image has a ground-truth mask
    pixels: PixelFile           # per image: mask, confidence map, entropy map (uint8, 255 = 1)
    info: dict = field(default_factory=dict)   # kind, members, weights, tta, ...

    def __post_init__(self):
        self._row = {i: k for k, i in enumerate(self.ids)}
        area = self.shapes.prod(1, dtype=np.int64)
        small = self.map_shapes.prod(1, dtype=np.int64)
        self._area, self._small = area, small
        self._off = np.concatenate([[0], np.cumsum(area + 2 * small)])   # where each image's pixels start
        if self.pixels.size != self._off[-1]:
            raise ValueError(f"column {self.name!r}: {self.pixels.size} bytes of pixels for {len(self.ids)} "
                             f"images that need {int(self._off[-1])}")

    def __len__(self) -> int:
        return len(self.ids)

    def __contains__(self, image_id: str) -> bool:
        return image_id in self._row

    def row(self, image_id: str) -> int:
        return self._row[image_id]

    def _part(self, r: int, which: int) -> np.ndarray:
        """Image ``r``'s mask (0), confidence (1) or entropy (2), flat uint8."""
        start = int(self._off[r]) + (0 if which == 0 else int(self._area[r] + (which - 1) * self._small[r]))
        return self.pixels.read(start, int(self._area[r] if which == 0 else self._small[r]))

    def mask(self, image_id: str) -> np.ndarray:
        """uint8 (H, W) predicted class ids."""
        r = self._row[image_id]
        return self._part(r, 0).reshape(self.shapes[r])

    def _map(self, image_id: str, which: int) -> np.ndarray:
        r = self._row[image_id]
        return self._part(r, which).reshape(self.map_shapes[r]).astype(np.float32) / 255.0

    def confidence_map(self, image_id: str) -> np.ndarray:
        """float32 (h, w) in [0, 1]: probability of the predicted class (vote share for a vote)."""
        return self._map(image_id, 1)

    def entropy_map(self, image_id: str) -> np.ndarray:
        """float32 (h, w) in [0, 1]: entropy of the class probabilities / log K."""
        return self._map(image_id, 2)

    def mean_confidence(self) -> np.ndarray:
        """float64 (N,): each image's mean confidence (over its confidence map), in row order."""
        return np.array([self._part(r, 1).mean(dtype=np.float64) / 255.0 if self._small[r] else 0.0
                         for r in range(len(self))])

    # Every image's pixels in one flat array, image after image: for tests and small sets only.
    @property
    def masks(self) -> np.ndarray:
        return self._flat(0)

    @property
    def confidence(self) -> np.ndarray:
        return self._flat(1)

    @property
    def entropy(self) -> np.ndarray:
        return self._flat(2)

    def _flat(self, which: int) -> np.ndarray:
        parts = [self._part(r, which) for r in range(len(self))]
        return np.concatenate(parts) if parts else np.zeros(0, np.uint8)

    @classmethod
    def gather(cls, name: str, ids: list[str], source_of: dict[str, Column], info: dict) -> Column:
        """A column of ``ids`` whose rows are copied from other columns (``source_of[id]`` holds
        each): cached predictions of other image sets reused for this one."""
        parts: dict[str, list] = {k: [] for k in cls.ARRAYS}
        pixels = PixelFile.temporary()
        for image_id in ids:
            c = source_of[image_id]
            r = c._row[image_id]
            for key in cls.ARRAYS:
                parts[key].append(getattr(c, key)[r : r + 1])
            pixels.append_from(c.pixels, int(c._off[r]), int(c._off[r + 1] - c._off[r]))
        if not ids:
            first = next(iter(source_of.values()))
            return cls(name, [], **{k: getattr(first, k)[:0] for k in cls.ARRAYS}, pixels=pixels, info=info)
        return cls(name, list(ids), **{k: np.concatenate(v) for k, v in parts.items()}, pixels=pixels, info=info)

    # --- the disk cache: the small rows in an npz (seglib.cache), the pixels in a file beside it --
    ARRAYS = ("shapes", "map_shapes", "counts", "cms", "labeled")

    def to_arrays(self) -> tuple[dict[str, np.ndarray], dict]:
        return {k: getattr(self, k) for k in self.ARRAYS}, {"name": self.name, "ids": self.ids, "info": self.info}

    @classmethod
    def from_arrays(cls, arrays: dict, meta: dict, pixels: PixelFile) -> Column:
        return cls(meta["name"], list(meta["ids"]), **{k: arrays[k] for k in cls.ARRAYS}, pixels=pixels,
                   info=meta.get("info", {}))


class ColumnBuilder:
    """Collects a column batch by batch (tensors on any device): the small rows in memory, the
    pixels straight into the column's file."""

    def __init__(self, name: str, num_classes: int, info: dict | None = None):
        self.name, self.k, self.info = name, num_classes, info or {}
        self.ids: list[str] = []
        self.parts: dict[str, list] = {k: [] for k in Column.ARRAYS}
        self.pixels = PixelFile.temporary()

    def add(self, ids: list[str], labels: torch.Tensor, conf: torch.Tensor, ent: torch.Tensor,
            targets: torch.Tensor | None) -> None:
        """``labels`` (B, H, W) class ids; ``conf`` and ``ent`` (B, h, w) in [0, 1] on the maps'
        grid (:func:`map_shape`: every ``map_stride``-th pixel); ``targets`` (B, H, W) or None."""
        b, h, w = labels.shape
        if tuple(conf.shape[1:]) != map_shape(h, w):
            raise ValueError(f"maps of {tuple(conf.shape[1:])} for {h}x{w} images: want {map_shape(h, w)}")
        # Counting happens in NumPy on uint8 copies: torch.bincount on a CPU is 10-50x slower than
        # np.bincount, and a GPU only has to send one byte per pixel back.
        pred = labels.to(torch.uint8).cpu().numpy().reshape(b, -1)
        truth = None if targets is None else targets.to(torch.uint8).cpu().numpy().reshape(b, -1)
        cms, counts = per_image_confusion(pred, truth, self.k)
        small_conf, small_ent = _quantize(conf).reshape(b, -1), _quantize(ent).reshape(b, -1)
        for i in range(b):
            self.pixels.append(pred[i])
            self.pixels.append(small_conf[i])
            self.pixels.append(small_ent[i])
        p = self.parts
        self.ids += ids
        p["shapes"].append(np.tile([h, w], (b, 1)))
        p["map_shapes"].append(np.tile(conf.shape[1:], (b, 1)))
        p["counts"].append(counts)
        p["cms"].append(cms)
        p["labeled"].append(np.full(b, targets is not None))

    def build(self) -> Column:
        k, p = self.k, self.parts
        empty = {"shapes": np.zeros((0, 2), np.int32), "map_shapes": np.zeros((0, 2), np.int32),
                 "counts": np.zeros((0, k), np.int64), "cms": np.zeros((0, k, k), np.int32),
                 "labeled": np.zeros(0, bool)}
        arrays = {key: np.concatenate(p[key]) if p[key] else empty[key] for key in Column.ARRAYS}
        arrays["shapes"] = arrays["shapes"].astype(np.int32)
        arrays["map_shapes"] = arrays["map_shapes"].astype(np.int32)
        return Column(self.name, list(self.ids), **arrays, pixels=self.pixels, info=self.info)


def save_pixels(column: Column, path: Path) -> None:
    """Store ``column``'s pixels at ``path`` and read them from there from now on (the temporary
    file it was built in is let go)."""
    column.pixels.save(path)
    old, column.pixels = column.pixels, PixelFile.open(path)
    if column.pixels.size != old.size:
        raise OSError(f"{path}: {column.pixels.size} bytes written of {old.size}")
    old.close()


def _quantize(values: torch.Tensor) -> np.ndarray:
    """[0, 1] -> uint8 0..255, rounded (+0.5 then truncation: values are never negative). On a
    CPU in NumPy (single-threaded ufuncs beat torch's small parallel ops); on a GPU before the copy."""
    if values.device.type == "cpu":
        v = values.float().numpy() * 255 + 0.5
        return np.minimum(v, 255, out=v).astype(np.uint8).reshape(-1)
    return (values * 255 + 0.5).clamp_(max=255).to(torch.uint8).cpu().numpy().reshape(-1)


def per_image_confusion(pred: np.ndarray, target: np.ndarray | None, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(int32 (B, K, K) confusion matrices, int64 (B, K) predicted pixels per class) of uint8
    (B, P) predictions and targets, by bincount: seglib.metrics.per_image_confusion in NumPy.
    Targets outside 0..K-1 (unknown, 255) are counted in an extra row that the matrices leave
    out; without targets the matrices are zeros. Small images go in one bincount together, a
    big one in chunks of CONFUSION_CHUNK pixels (the codes are int64: 8 bytes a pixel)."""
    b, n = pred.shape
    cells = (k + 1) * k
    full = np.zeros((b, k + 1, k), np.int64)
    per = max(1, CONFUSION_CHUNK // max(1, n))
    step = n if per > 1 else CONFUSION_CHUNK
    for i in range(0, b, per):
        for s in range(0, max(n, 1), step):
            p = pred[i : i + per, s : s + step]
            code = (np.full(p.shape, k, np.intp) if target is None
                    else np.minimum(target[i : i + per, s : s + step], k).astype(np.intp))
            code *= k
            code += p
            code += np.arange(len(p))[:, None] * cells
            full[i : i + per] += np.bincount(code.ravel(), minlength=len(p) * cells).reshape(len(p), k + 1, k)
    return full[:, :k].astype(np.int32), full.sum(1)
