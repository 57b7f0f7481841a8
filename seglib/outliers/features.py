"""One pixel pass that every detector shares: hashes, thumbnails and cheap image/mask measures.

Reading pixels is the expensive part of detection, so it happens once per dataset content
(kept in a small in-process LRU keyed by fingerprint and ids, safe to share between sessions
and threads); detectors only do vectorised work on these arrays.
Images of any size and colour are measured on their grey version; hashes and thumbnails are
taken on a fixed 32x32 grey thumbnail so that sizes do not matter.

Memory is bounded by design: images stream through a few threads with a bounded decode-ahead,
each is reduced to its fixed-size measures as soon as it is decoded, and only those are kept
(about 3 KB an image, whatever its size). A big photo is measured on a reduced copy whose
shorter side stays >= FEATURE_SIDE (a JPEG is decoded reduced, PIL's draft); its exact-copy hash
is then taken on the reduced pixels, and confirmed on the full ones, decoded for the few images
that look alike, so "identical pixels" still means identical full-size pixels.
"""
from __future__ import annotations

import hashlib
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, fields

import cv2
import numpy as np
import scipy.fftpack

from ..cache import LRU
from ..data.classmap import UNKNOWN_INDEX
from ..data.dataset import SegDataset
from ..data.io import reduce_factor, to_uint8
from ..data.npz import NpzDataset
from .base import hash_pairs

THUMB = 32          # thumbnail side: hashes, correlations and the label layout grid use it
CHUNK_PIXELS = 16_000_000  # npz rows measured per vectorised batch: ~16 MB of pixels, 1,950 demo images
FEATURE_SIDE = 256  # big images are measured on a copy reduced by 2, 4 or 8 whose shorter side stays >= this
CONFIRM_BITS = 4    # reduced-pixel hashes are confirmed on full pixels for images this close in phash
CONFIRM_WORKERS = 2  # full-size decodes in flight while confirming: few images, and each full one is big
PROGRESS_EVERY = 0.1  # seconds between progress calls: smooth for a bar, cheap for 20,000 small images
WORKERS: int | None = None  # decoding threads (None: twice the CPUs, at most 8); each has 2 images in flight
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


def grey(img: np.ndarray) -> np.ndarray:
    """uint8 (H, W) or (H, W, C) -> uint8 (H, W) luma (float32 for one image at a time)."""
    if img.ndim == 2:
        return img
    return np.clip(np.rint(img[..., :3].astype(np.float32) @ _GREY), 0, 255).astype(np.uint8)


def _measure_grey(g8: np.ndarray) -> dict:
    """(B, H, W) uint8 grey images of one size -> per-image measures (see Features), no hash."""
    b = len(g8)
    thumb = np.stack([cv2.resize(x, (THUMB, THUMB), interpolation=cv2.INTER_AREA) for x in g8])
    g16 = g8.astype(np.int16)  # integer differences: 2x less memory traffic than float32
    grad = np.zeros(b, np.float32)
    for axis in (1, 2):
        if g16.shape[axis] > 1:
            grad += np.abs(np.diff(g16, axis=axis)).mean((1, 2), dtype=np.float32) / 2
    levels = _histograms(g8)
    size = max(g8[0].size, 1)
    return {"phash": phash_batch(thumb), "thumb": thumb, "grad": grad, "low": levels[:, :3].sum(1) / size,
            "high": levels[:, 253:].sum(1) / size, "mode_frac": levels.max(1) / size,
            "mode_value": levels.argmax(1).astype(np.uint8)}


def _measure_images(imgs: np.ndarray) -> dict:
    """(B, H, W) or (B, H, W, C) uint8 of one size -> per-image measures (see Features)."""
    g8 = imgs if imgs.ndim == 3 else np.stack([grey(x) for x in imgs])
    return {"img_hash": np.array([_hash64(x) for x in imgs], np.uint64), **_measure_grey(g8)}


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


class _Ticker:
    """Progress calls at most every PROGRESS_EVERY seconds, and always at the end of a pass."""

    def __init__(self, progress: Progress | None, total: int):
        self.progress, self.total, self.last, self.done = progress, total, 0.0, -1

    def __call__(self, done: int) -> None:
        now = time.monotonic()
        if self.progress and done != self.done and (done >= self.total or now - self.last >= PROGRESS_EVERY):
            self.last, self.done = now, done
            self.progress(done, self.total)


def _npz_parts(ds: NpzDataset, ids: list[str], tick: _Ticker) -> list[tuple[list[str], dict]]:
    """Labeled rows of an .npz measured straight from its arrays, about CHUNK_PIXELS at a time."""
    arrays = ds.labeled_arrays()
    if arrays is None or arrays[1].dtype != np.uint8:
        return []  # odd mask values: the per-image path decodes them one by one
    images, raw = arrays
    lab_ids = [i for i in ids if ds.is_labeled(i)]
    chunk = max(1, min(4096, CHUNK_PIXELS // max(1, int(np.prod(images.shape[1:])))))
    parts = []
    for a in range(0, len(lab_ids), chunk):
        part = lab_ids[a : a + chunk]
        rows = [next(iter(ds.rows_of(i).values())) for i in part]  # images and masks share a row
        imgs = to_uint8(np.asarray(images[rows]))
        if imgs.ndim == 4:
            imgs = imgs[..., 0] if imgs.shape[-1] == 1 else imgs[..., :3]
        masks = ds.decoder.decode(np.asarray(raw[rows]))[0]  # a (B, H, W) batch of values
        parts.append((part, measure(imgs, masks)))
        tick(a + len(part))
    return parts


def bounded_map(fn: Callable, items: Iterable, workers: int, ahead: int) -> Iterator:
    """``fn`` over ``items`` in ``workers`` threads, results in order, at most ``ahead`` of them
    computed but not yet consumed (``Executor.map`` submits everything at once, and a slow
    consumer then holds every decoded image)."""
    with ThreadPoolExecutor(workers) as pool:
        it = iter(items)
        pending = deque(pool.submit(fn, x) for _, x in zip(range(ahead), it, strict=False))
        while pending:
            result = pending.popleft().result()
            nxt = next(it, _END)
            if nxt is not _END:
                pending.append(pool.submit(fn, nxt))
            yield result


_END = object()


def _measure_one(ds: SegDataset, image_id: str) -> dict | None:
    """One image's measures (a Features row as a dict of 1-row arrays, plus its full shape and
    whether its hash is of full pixels), or None if the pair cannot be read. The image is
    decoded once, reduced if big, and dropped here: nothing of full size leaves this function."""
    img, mask, full, f = ds.load_pair_reduced(image_id, shorter=FEATURE_SIDE)
    if img is None:
        return None
    exact = f == 1
    img_hash = _hash64(img)  # of full pixels, or (big JPEG) of reduced ones, confirmed later if need be
    g = grey(img)
    if exact and (k := reduce_factor(g.shape[1], g.shape[0], shorter=FEATURE_SIDE)) > 1:
        g = cv2.resize(g, (-(-g.shape[1] // k), -(-g.shape[0] // k)), interpolation=cv2.INTER_AREA)
    row = {"img_hash": np.array([img_hash], np.uint64), **_measure_grey(g[None]),
           **_measure_masks(None if mask is None else mask[None], 1)}
    return {"row": row, "shape": (*full, 1 if img.ndim == 2 else img.shape[2]), "exact": exact}


def _file_parts(ds: SegDataset, ids: list[str], tick: _Ticker, done: int) -> list:
    """Images read in threads (decoding releases the GIL), each measured as soon as it is
    decoded into rows allocated once for all: memory holds the features and at most
    ``2 x workers`` images in flight, whatever the dataset size."""
    if not ids:
        return []
    workers = WORKERS or min(8, (os.cpu_count() or 2) * 2)
    template = measure(np.zeros((1, 8, 8), np.uint8), None)
    cols = {f: np.zeros((len(ids), *v.shape[1:]), v.dtype) for f, v in template.items()}
    ok = np.zeros(len(ids), bool)
    exact = np.ones(len(ids), bool)
    shapes: list[tuple | None] = [None] * len(ids)
    for k, one in enumerate(bounded_map(lambda i: _measure_one(ds, i), ids, workers, 2 * workers)):
        if one is not None:
            for f, v in one["row"].items():
                cols[f][k] = v[0]
            ok[k], exact[k], shapes[k] = True, one["exact"], one["shape"]
        tick(done + k + 1)
    if not ok.any():
        return []
    _confirm_hashes(ds, ids, cols, shapes, exact & ok | ~ok, workers)
    rows = np.flatnonzero(ok)
    return [([ids[k] for k in rows], {f: v[rows] for f, v in cols.items()} if len(rows) < len(ids) else cols)]


def _confirm_hashes(ds: SegDataset, ids: list[str], cols: dict, shapes: list, exact: np.ndarray,
                    workers: int) -> None:
    """Replace reduced-pixel hashes by full-pixel ones for the images that could be exact copies
    of another: same full shape and perceptual hashes at most CONFIRM_BITS apart. Each of those
    is decoded in full once; the others keep hashes that no full-pixel hash can equal."""
    if exact.all():
        return
    a, b, _ = hash_pairs(cols["phash"], CONFIRM_BITS)
    same = np.array([shapes[i] is not None and shapes[i] == shapes[j] for i, j in zip(a, b, strict=True)], bool)
    rows = np.unique(np.concatenate([a[same], b[same]])) if len(a) else np.zeros(0, np.int64)
    rows = rows[~exact[rows]]
    if not len(rows):
        return

    def full_hash(k: int) -> int:
        try:
            return _hash64(ds.image(ids[k]))
        except Exception:  # changed since: keep the reduced hash, which matches no full one
            return int(cols["img_hash"][k])

    for k, h in zip(rows, bounded_map(full_hash, rows, CONFIRM_WORKERS, CONFIRM_WORKERS), strict=True):
        cols["img_hash"][k] = h


def features_for(ds: SegDataset, stats, progress: Progress | None = None) -> Features:
    """The features of the images that ``stats`` (a DatasetStats) could read, in its order."""
    return compute_features(ds, list(stats.ids), progress)


def compute_features(ds: SegDataset, ids: list[str], progress: Progress | None = None) -> Features:
    """Measure every image of ``ids`` once; memoised in-process by dataset content and ids."""
    key = f"{ds.fingerprint()}|{len(ids)}|{hashlib.sha1(chr(0).join(ids).encode()).hexdigest()}"
    if ds.corrected_ids:
        # The files' features (measured once), with the corrected images' mask measures taken
        # again: a saved correction costs one mask, not a pass over the dataset.
        return MEMO.get_or_compute(key, lambda: _with_corrected_masks(compute_features(ds.original(), ids, progress),
                                                                      ds))

    def measure_all() -> Features:
        tick = _Ticker(progress, len(ids))
        tick(0)
        parts = _npz_parts(ds, ids, tick) if isinstance(ds, NpzDataset) else []
        seen = {i for pids, _ in parts for i in pids}
        parts += _file_parts(ds, [i for i in ids if i not in seen], tick, len(seen))
        tick(len(ids))  # every image accounted for, read or not
        return _concat(parts, ids)

    return MEMO.get_or_compute(key, measure_all)


def _with_corrected_masks(files: Features, ds: SegDataset) -> Features:
    """A copy of ``files`` whose mask measures of ``ds``'s corrected images are measured anew."""
    row = {i: k for k, i in enumerate(files.ids)}
    mask_fields = list(_measure_masks(None, 1))
    cols = {f: getattr(files, f) for f in _FIELDS}
    cols.update({f: cols[f].copy() for f in mask_fields})
    for image_id in ds.corrected_ids:
        if image_id in row:
            mask = ds.mask(image_id)
            for f, v in _measure_masks(mask[None], 1).items():
                cols[f][row[image_id]] = v[0]
    return Features(ids=list(files.ids), **cols)


def aligned(stats, f: Features, name: str) -> np.ndarray:
    """``stats.<name>`` (rows in stats.ids order) with its rows in ``f.ids`` order; the two
    differ only if an image became unreadable between the stats pass and this one."""
    arr = np.asarray(getattr(stats, name))
    if list(stats.ids) == f.ids:
        return arr
    pos = {i: k for k, i in enumerate(stats.ids)}
    return arr[[pos[i] for i in f.ids]]
