"""One pixel pass that every detector shares: hashes, thumbnails and cheap image/mask measures.

Reading pixels is the expensive part of detection, so it happens once per dataset content
(kept in a small in-process LRU keyed by fingerprint and ids, safe to share between sessions
and threads); detectors only do vectorised work on these arrays.
Images of any size and colour are measured on their grey version; hashes and thumbnails are
taken on a fixed 32x32 grey thumbnail so that sizes do not matter.
"""
from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, fields

import cv2
import numpy as np
import scipy.fftpack

from ..cache import LRU
from ..data.classmap import UNKNOWN_INDEX
from ..data.dataset import SegDataset
from ..data.io import to_uint8
from ..data.npz import NpzDataset

THUMB = 32          # thumbnail side: hashes, correlations and the label layout grid use it
CHUNK = 1024
Progress = Callable[[int, int], None]
_GREY = np.array([0.299, 0.587, 0.114], np.float32)


@dataclass
class Features:
    """Per-image measures, rows in ``ids`` order (N rows).

    img_hash, mask_hash (N,) uint64: content hashes (shape included); mask_hash 0 if unlabeled.
    phash (N,) uint64: imagehash.phash bits of the grey thumbnail.
    thumb (N, 32, 32) uint8: grey thumbnail (INTER_AREA).
    grad (N,) float32: mean absolute difference of neighbouring grey pixels (texture).
    low, high (N,) float32: fraction of grey pixels <= 2 / >= 253 (crushed / clipped).
    mode_frac (N,) float32, mode_value (N,) uint8: share and value of the most common grey level.
    labeled (N,) bool; mask_small (N, 32, 32) uint8 nearest-neighbour mask (255 if unlabeled).
    n_values (N,) int16: distinct mask values; fragments (N, 256) int32: connected pieces per class.
    """

    ids: list[str]
    img_hash: np.ndarray
    phash: np.ndarray
    thumb: np.ndarray
    grad: np.ndarray
    low: np.ndarray
    high: np.ndarray
    mode_frac: np.ndarray
    mode_value: np.ndarray
    labeled: np.ndarray
    mask_hash: np.ndarray
    mask_small: np.ndarray
    n_values: np.ndarray
    fragments: np.ndarray
    _derived: dict = field(default_factory=dict, init=False, repr=False, compare=False)
    _lock: threading.RLock = field(default_factory=threading.RLock, init=False, repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.ids)

    def derived(self, name: str, compute):
        """A result that several detectors share (e.g. the near-copy pairs), computed once per
        ``name`` under a lock: the detectors of two sessions may run at once on one Features."""
        with self._lock:
            if name not in self._derived:
                self._derived[name] = compute()
            return self._derived[name]


_FIELDS = [f.name for f in fields(Features) if f.init and f.name != "ids"]
MEMO: LRU[Features] = LRU(4)  # a few datasets at most: the app switches between them


def _hash64(a: np.ndarray) -> int:
    """64 bits of SHA-1 over shape and bytes (SHA-1 is the fastest hashlib digest here)."""
    h = hashlib.sha1(np.asarray(a.shape, np.int64).tobytes())
    h.update(np.ascontiguousarray(a).tobytes())
    return int.from_bytes(h.digest()[:8], "little") or 1  # 0 is kept for "no mask"


def _histograms(g8: np.ndarray) -> np.ndarray:
    """(B, H, W) uint8 -> (B, 256) float32 grey-level counts (cv2.calcHist: fastest per image)."""
    return np.stack([cv2.calcHist([np.ascontiguousarray(x)], [0], None, [256], [0, 256]).reshape(-1) for x in g8])


def phash_batch(thumbs: np.ndarray) -> np.ndarray:
    """imagehash.phash (hash_size 8) of a stack of 32x32 grey thumbnails, in one batched DCT.

    thumbs: (B, 32, 32) uint8. Returns (B,) uint64 whose bits, most significant first, are
    ``imagehash.phash(Image.fromarray(t)).hash.ravel()`` (a test checks they agree)."""
    dct = scipy.fftpack.dct(scipy.fftpack.dct(thumbs.astype(np.float64), axis=1), axis=2)[:, :8, :8]
    low = dct.reshape(len(thumbs), 64)
    bits = low > np.median(low, axis=1, keepdims=True)
    return np.packbits(bits, axis=1).view(">u8").ravel().astype(np.uint64)


def _measure_images(imgs: np.ndarray) -> dict:
    """(B, H, W) or (B, H, W, C) uint8 of one size -> per-image measures (see Features)."""
    b = len(imgs)
    g8 = imgs if imgs.ndim == 3 else np.clip(np.rint(imgs[..., :3].astype(np.float32) @ _GREY), 0, 255).astype(np.uint8)
    thumb = np.stack([cv2.resize(x, (THUMB, THUMB), interpolation=cv2.INTER_AREA) for x in g8])
    g16 = g8.astype(np.int16)  # integer differences: 2x less memory traffic than float32
    grad = np.zeros(b, np.float32)
    for axis in (1, 2):
        if g16.shape[axis] > 1:
            grad += np.abs(np.diff(g16, axis=axis)).mean((1, 2), dtype=np.float32) / 2
    levels = _histograms(g8)
    size = max(g8[0].size, 1)
    return {"img_hash": np.array([_hash64(x) for x in imgs], np.uint64), "phash": phash_batch(thumb),
            "thumb": thumb, "grad": grad, "low": levels[:, :3].sum(1) / size, "high": levels[:, 253:].sum(1) / size,
            "mode_frac": levels.max(1) / size, "mode_value": levels.argmax(1).astype(np.uint8)}


def _pieces_per_mask(labels: np.ndarray, n: int, b: int) -> np.ndarray:
    """(B,) pieces per mask from cv2 labels of the stacked masks ((B * (H+1), W) int32, n labels).

    cv2 numbers pieces in scan order (provisional labels are given in scan order and each
    piece keeps its smallest), so each mask holds the run of labels after the previous
    mask's largest. If the largest labels ever failed to rise mask by mask, each piece is
    assigned to its mask pixel by pixel instead (slower, same answer)."""
    per = labels.reshape(b, -1)
    hi = per.max(1).astype(np.int64)
    top = np.maximum.accumulate(hi)
    counts = np.diff(top, prepend=0)
    if top[-1] == n - 1 and np.all((hi == top) | (hi == 0)):
        return counts
    mask_of = np.zeros(n, np.int64)
    mask_of[labels.ravel()] = np.repeat(np.arange(b), per.shape[1])
    return np.bincount(mask_of[1:], minlength=b)


def _fragments(masks: np.ndarray) -> np.ndarray:
    """(B, H, W) uint8 -> (B, 256) int32 connected pieces (8-connectivity) per class.

    The masks are stacked into one tall image with a row of UNKNOWN_INDEX between them, so
    one cv2 call per class labels the whole batch."""
    b, h, w = masks.shape
    tall = np.concatenate([masks, np.full((b, 1, w), UNKNOWN_INDEX, np.uint8)], axis=1).reshape(-1, w)
    out = np.zeros((b, 256), np.int32)
    for c in np.flatnonzero(cv2.calcHist([tall], [0], None, [256], [0, 256]).reshape(-1)):
        if c == UNKNOWN_INDEX:
            continue
        n, labels = cv2.connectedComponents((tall == c).view(np.uint8), connectivity=8)
        out[:, c] = _pieces_per_mask(labels, n, b)
    return out


def _measure_masks(masks: np.ndarray | None, b: int) -> dict:
    """(B, H, W) uint8 class ids, or None for B unlabeled images -> per-image mask measures."""
    if masks is None:
        return {"labeled": np.zeros(b, bool), "mask_hash": np.zeros(b, np.uint64),
                "mask_small": np.full((b, THUMB, THUMB), UNKNOWN_INDEX, np.uint8),
                "n_values": np.zeros(b, np.int16), "fragments": np.zeros((b, 256), np.int32)}
    h, w = masks.shape[1:]
    rows, cols = np.arange(THUMB) * h // THUMB, np.arange(THUMB) * w // THUMB  # cv2's INTER_NEAREST grid
    fragments = _fragments(masks)
    values = (fragments[:, :UNKNOWN_INDEX] > 0).sum(1) + (masks == UNKNOWN_INDEX).any((1, 2))
    return {"labeled": np.ones(b, bool), "mask_hash": np.array([_hash64(m) for m in masks], np.uint64),
            "mask_small": masks[:, rows][:, :, cols], "n_values": values.astype(np.int16), "fragments": fragments}


def measure(imgs: np.ndarray, masks: np.ndarray | None) -> dict:
    """Every per-image measure of a batch of same-size images (and their masks or None)."""
    return {**_measure_images(imgs), **_measure_masks(masks, len(imgs))}


def _concat(parts: list[tuple[list[str], dict]], ids: list[str]) -> Features:
    """Batches -> one Features with rows in ``ids`` order (ids missing from parts are dropped)."""
    where = {i: (p, k) for p, (pids, _) in enumerate(parts) for k, i in enumerate(pids)}
    kept = [i for i in ids if i in where]
    if not parts:
        return Features(ids=[], **{k: v[:0] for k, v in measure(np.zeros((1, 8, 8), np.uint8), None).items()})
    cols = {f: np.concatenate([d[f] for _, d in parts]) for f in _FIELDS}
    offsets = np.cumsum([0] + [len(pids) for pids, _ in parts])
    order = np.array([offsets[where[i][0]] + where[i][1] for i in kept], np.int64)
    return Features(ids=kept, **{f: v[order] for f, v in cols.items()})


def _npz_parts(ds: NpzDataset, ids: list[str], progress: Progress | None) -> list[tuple[list[str], dict]]:
    """Labeled rows of an .npz measured straight from its arrays, CHUNK images at a time."""
    arrays = ds.labeled_arrays()
    if arrays is None or arrays[1].dtype != np.uint8:
        return []  # odd mask values: the per-image path decodes them one by one
    images, raw = arrays
    lab_ids = [i for i in ids if ds.is_labeled(i)]
    parts = []
    for a in range(0, len(lab_ids), CHUNK):
        part = lab_ids[a : a + CHUNK]
        rows = [next(iter(ds.rows_of(i).values())) for i in part]  # images and masks share a row
        imgs = to_uint8(np.asarray(images[rows]))
        if imgs.ndim == 4:
            imgs = imgs[..., 0] if imgs.shape[-1] == 1 else imgs[..., :3]
        masks = ds.decoder.decode(np.asarray(raw[rows]))[0]  # a (B, H, W) batch of values
        parts.append((part, measure(imgs, masks)))
        if progress:
            progress(a + len(part), len(ids))
    return parts


def _file_parts(ds: SegDataset, ids: list[str], progress: Progress | None, done: int) -> list:
    """Images read one by one (threads: decoding releases the GIL), measured in batches of one
    size so that folders of many sizes and colour modes work."""
    parts: list[tuple[list[str], dict]] = []
    buffers: dict[tuple, list] = {}

    def flush(key):
        items = buffers.pop(key)
        masks = np.stack([m for _, _, m in items]) if key[1] else None
        parts.append(([i for i, _, _ in items], measure(np.stack([x for _, x, _ in items]), masks)))

    workers = min(8, (os.cpu_count() or 2) * 2)
    with ThreadPoolExecutor(workers) as pool:
        for k, (image_id, (img, mask, _)) in enumerate(zip(ids, pool.map(ds.load_pair, ids), strict=True)):
            if img is not None:
                key = (img.shape, mask is not None)
                buffers.setdefault(key, []).append((image_id, img, mask))
                if sum(map(len, buffers.values())) >= CHUNK:
                    for key in list(buffers):
                        flush(key)
            if progress and (k % 256 == 0 or k == len(ids) - 1):
                progress(done + k + 1, done + len(ids))
    for key in list(buffers):
        flush(key)
    return parts


def features_for(ds: SegDataset, stats, progress: Progress | None = None) -> Features:
    """The features of the images that ``stats`` (a DatasetStats) could read, in its order."""
    return compute_features(ds, list(stats.ids), progress)


def compute_features(ds: SegDataset, ids: list[str], progress: Progress | None = None) -> Features:
    """Measure every image of ``ids`` once; memoised in-process by dataset content and ids."""
    key = f"{ds.fingerprint()}|{len(ids)}|{hashlib.sha1(chr(0).join(ids).encode()).hexdigest()}"

    def measure_all() -> Features:
        parts = _npz_parts(ds, ids, progress) if isinstance(ds, NpzDataset) else []
        seen = {i for pids, _ in parts for i in pids}
        parts += _file_parts(ds, [i for i in ids if i not in seen], progress, len(seen))
        return _concat(parts, ids)

    return MEMO.get_or_compute(key, measure_all)


def aligned(stats, f: Features, name: str) -> np.ndarray:
    """``stats.<name>`` (rows in stats.ids order) with its rows in ``f.ids`` order; the two
    differ only if an image became unreadable between the stats pass and this one."""
    arr = np.asarray(getattr(stats, name))
    if list(stats.ids) == f.ids:
        return arr
    pos = {i: k for k, i in enumerate(stats.ids)}
    return arr[[pos[i] for i in f.ids]]
