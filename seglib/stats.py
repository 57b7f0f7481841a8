"""Per-image and per-class statistics as DataFrames, computed in one pass and cached on disk.

>>> ds = open_dataset("mars.npz")
>>> stats = compute_stats(ds)        # reads every pixel once; a second call is a cache hit
>>> stats.per_image[["mean", "frac_4"]].describe()
>>> stats.per_class()                # id, name, pixels, pixel_fraction, images_with_class, ignore
>>> stats.unknown_values             # [('#8429F6', pixels, masks), ...]: what the class map lacks

The pass is also the dataset's pixel-level validation: unreadable files, masks of the wrong
size and unknown colours become problems, recorded on the dataset (bad pairs leave it).
"""
from __future__ import annotations

import os
import shlex
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from . import cache
from .data.classmap import UNKNOWN_INDEX, ClassInfo, ClassMap
from .data.dataset import SegDataset
from .data.io import to_uint8
from .data.npz import NpzDataset
from .data.report import Problem

STATS_VERSION = 6  # 6: the unknown values and colours with their pixels and masks
CHUNK = 1024
UNKNOWN_KEPT = 256  # unknown values kept by name (JPEG-compressed masks have thousands): more than a class file holds
UNKNOWN_COLOR = "#FF00FF"  # how pictures draw unknown pixels (ClassMap.lut)
SIZES_SHOWN = 12  # image sizes a person is shown one by one; more: their range and the largest
Progress = Callable[[int, int], None]


@dataclass
class DatasetStats:
    """Everything the pass measured. ``counts`` is (N, 256) pixels per class id per image
    (column 255 = unknown); rows follow ``ids``; unlabeled rows are all zero."""

    ids: list[str]
    labeled: np.ndarray      # (N,) bool
    counts: np.ndarray       # (N, 256) int64
    intensity: np.ndarray    # (N, 4) float32: mean, std, min, max over all pixels and channels
    shape: np.ndarray        # (N, 3) int32: height, width, channels
    class_map: ClassMap
    problems: list[Problem] = field(default_factory=list)
    from_cache: bool = False
    # (value or '#RRGGBB', pixels, masks) of what the class map lacks, most pixels first; at most
    # UNKNOWN_KEPT of them, ``n_unknown_values`` says how many there were.
    unknown_values: list[tuple] = field(default_factory=list)
    n_unknown_values: int = 0

    # --- per image ---------------------------------------------------------------------
    @property
    def per_image(self) -> pd.DataFrame:
        """One row per image (index ``image_id``): labeled, height, width, channels, mean,
        std, min, max, n_classes, px_<id> and frac_<id> per class, unknown_px."""
        df = pd.DataFrame({
            "labeled": self.labeled,
            "height": self.shape[:, 0], "width": self.shape[:, 1], "channels": self.shape[:, 2],
            "mean": self.intensity[:, 0], "std": self.intensity[:, 1],
            "min": self.intensity[:, 2], "max": self.intensity[:, 3],
        }, index=pd.Index(self.ids, name="image_id"))
        area = (self.shape[:, 0].astype(np.float64) * self.shape[:, 1])
        ids = self.class_map.ids
        px = self.counts[:, ids]
        frac = px / np.maximum(area, 1)[:, None]
        lab = self.labeled
        extra = {}
        for k, cid in enumerate(ids):
            extra[f"px_{cid}"] = np.where(lab, px[:, k], np.nan)
            extra[f"frac_{cid}"] = np.where(lab, frac[:, k], np.nan)
        keep = [k for k, c in enumerate(self.class_map) if not c.ignore]
        extra["n_classes"] = np.where(lab, (px[:, keep] > 0).sum(1), np.nan)
        extra["unknown_px"] = np.where(lab, self.counts[:, UNKNOWN_INDEX], np.nan)
        return pd.concat([df, pd.DataFrame(extra, index=df.index)], axis=1)

    # --- per dataset -------------------------------------------------------------------
    def per_class(self, unknown_name: str | None = None) -> pd.DataFrame:
        """id, name, color, ignore, pixels, pixel_fraction, images_with_class.

        ``pixel_fraction`` of a normal class is its share of the pixels of all non-ignored
        classes; an ignore class's is its share of all labeled pixels (reported apart).

        With ``unknown_name`` (e.g. "Unknown colours"), pixels the class map lacks are a row of
        their own (id UNKNOWN_INDEX, magenta as pictures draw them) when there are any, and they
        count in the shares: the normal classes' and theirs add up to 1. A class file whose
        colours miss the masks' then shows 99% unknown, not 100% of its one matching class."""
        rows = []
        lab = self.counts[self.labeled]
        unknown = int(lab[:, UNKNOWN_INDEX].sum()) if unknown_name is not None else 0
        total = lab[:, self.class_map.ids].sum() + unknown
        counted = sum(int(lab[:, c.id].sum()) for c in self.class_map if not c.ignore) + unknown
        for c in self.class_map:
            pixels = int(lab[:, c.id].sum())
            denom = total if c.ignore else counted
            rows.append({"id": c.id, "name": c.name, "color": c.color, "ignore": c.ignore, "pixels": pixels,
                         "pixel_fraction": pixels / denom if denom else 0.0,
                         "images_with_class": int((lab[:, c.id] > 0).sum())})
        if unknown:
            rows.append({"id": UNKNOWN_INDEX, "name": unknown_name, "color": UNKNOWN_COLOR, "ignore": False,
                         "pixels": unknown, "pixel_fraction": unknown / counted,
                         "images_with_class": int((lab[:, UNKNOWN_INDEX] > 0).sum())})
        return pd.DataFrame(rows)

    def size_histogram(self) -> pd.DataFrame:
        """height, width, channels, count: one row per image size, most common first."""
        df = pd.DataFrame(self.shape, columns=["height", "width", "channels"])
        return df.value_counts().rename("count").reset_index()

    def sizes_largest_first(self) -> pd.DataFrame:
        """:meth:`size_histogram` ordered by pixels (height x width), largest first."""
        sizes = self.size_histogram()
        area = sizes["height"].astype(np.int64) * sizes["width"]
        order = np.lexsort((-sizes["channels"].to_numpy(), -sizes["width"].to_numpy(), -area.to_numpy()))
        return sizes.iloc[order].reset_index(drop=True)

    def cooccurrence(self) -> pd.DataFrame:
        """K x K: number of labeled images that contain both classes (names on both axes)."""
        present = (self.counts[self.labeled][:, self.class_map.ids] > 0).astype(np.int64)
        return pd.DataFrame(present.T @ present, index=self.class_map.names, columns=self.class_map.names)

    @property
    def scored_pixels(self) -> int:
        """Labeled pixels of the classes that metrics and losses count (not ignored, not unknown)."""
        scored = [c.id for c in self.class_map if not c.ignore]
        return int(self.counts[self.labeled][:, scored].sum())

    @property
    def unknown_pixels(self) -> int:
        return int(self.counts[self.labeled, UNKNOWN_INDEX].sum())

    def to_json(self, dataset: SegDataset | None = None) -> dict:
        """The CLI ``stats --json`` document (see DESIGN.md for the contract)."""
        problems = (dataset.report.problems if dataset is not None else self.problems)
        return {
            "dataset": str(dataset.source) if dataset is not None else None,
            "n_images": len(self.ids), "n_labeled": int(self.labeled.sum()),
            "n_excluded": len({p.image_id for p in problems if p.excluded and p.image_id}),
            "classes": self.per_class().drop(columns=["color"]).to_dict("records"),
            "unknown_pixels": self.unknown_pixels,
            "unknown_values": [{"value": k, "pixels": px, "masks": m} for k, px, m in self.unknown_values],
            "sizes": self.size_histogram().to_dict("records"),
            "problems": [p.to_dict() for p in problems],
            "corrected_masks": dataset.corrected_ids if dataset is not None else [],
        }


def describe_sizes(sizes: pd.DataFrame, show: int = SIZES_SHOWN) -> str:
    """Image sizes for a person, largest first (``sizes``: :meth:`DatasetStats.sizes_largest_first`):
    all of them when there are at most ``show``; else their number, their range and the largest
    ones, saying how many more there are. Never drops a size silently."""
    def size(r) -> str:
        return f"{r.height}×{r.width}×{r.channels} ({r.count:,})"
    rows = list(sizes.itertuples())
    if not rows:
        return "no image sizes"
    if len(rows) <= show:
        return f"Image sizes (H×W×C, images), largest first: {', '.join(size(r) for r in rows)}"
    big, small, kept = rows[0], rows[-1], max(1, show - 4)
    return (f"{len(rows)} image sizes (H×W×C, images) from {small.height}×{small.width} to {big.height}×{big.width}; "
            f"the {kept} largest: {', '.join(size(r) for r in rows[:kept])}; and {len(rows) - kept} more")


# =========================================================================================
def _intensity(images: np.ndarray) -> np.ndarray:
    """(B, ...) uint8 -> (B, 4) float32 mean, std, min, max over all pixels and channels.

    Exact, from integer sums: per row of a (B, rows, <=16384) view, sums of values and of
    squares fit uint32; no float64 copy of the image (a float64 ``std`` costs 8 bytes per
    value and is 4x slower). std is the population std, sqrt(E[x^2] - E[x]^2)."""
    b = len(images)
    if not b:
        return np.zeros((0, 4), np.float32)
    flat = images.reshape(b, -1)
    n = flat.shape[1]
    if not n:
        return np.zeros((b, 4), np.float32)
    if flat.dtype != np.uint8:  # not from the readers (they give uint8): the plain way
        return np.stack([flat.mean(1, dtype=np.float64), flat.std(1, dtype=np.float64),
                         flat.min(1), flat.max(1)], axis=1).astype(np.float32)
    s = np.zeros(b, np.float64)
    ss = np.zeros(b, np.float64)
    step = 1 << 14  # 16384 * 255^2 < 2^32: a row's sum of squares fits uint32
    rows = n // step
    parts = [flat[:, : rows * step].reshape(b, rows, step)] if rows else []
    if n % step:
        parts.append(flat[:, rows * step :].reshape(b, 1, -1))
    for part in parts:
        sq = part.astype(np.uint16)
        sq *= sq
        s += part.sum(2, dtype=np.uint32).sum(1, dtype=np.uint64)
        ss += sq.sum(2, dtype=np.uint32).sum(1, dtype=np.uint64)
    mean = s / n
    std = np.sqrt(np.maximum(ss / n - mean * mean, 0.0))
    return np.stack([mean, std, flat.min(1), flat.max(1)], axis=1).astype(np.float32)


def _bincount_rows(masks: np.ndarray) -> np.ndarray:
    """(B, H, W) uint8 -> (B, 256) counts in one bincount."""
    b = len(masks)
    offs = (np.arange(b, dtype=np.int64) * 256)[:, None]
    return np.bincount((masks.reshape(b, -1) + offs).ravel(), minlength=b * 256).reshape(b, 256)


def _stats_npz_fast(ds: NpzDataset, progress: Progress | None) -> tuple | None:
    """Whole-array pass for .npz datasets whose masks decode without surprises."""
    arrays = ds.labeled_arrays()
    lab_ids = ds.labeled_ids
    if arrays is None or len(lab_ids) != len(arrays[0]):
        return None
    images, raw = arrays
    n = len(images)
    counts = np.zeros((n, 256), np.int64)
    inten = np.zeros((n, 4), np.float32)
    tick = Ticker(progress, len(ds))
    for a in range(0, n, CHUNK):
        imgs = to_uint8(np.asarray(images[a : a + CHUNK]))
        m = np.asarray(raw[a : a + CHUNK])
        if m.dtype != np.uint8:
            if not (np.issubdtype(m.dtype, np.integer) or np.all(np.mod(m, 1) == 0)) or m.min() < 0 or m.max() > 255:
                return None  # odd values: let the per-image path attribute them
            m = m.astype(np.uint8)
        mask, unknown = ds.decoder.decode(m)
        if unknown:
            return None
        counts[a : a + len(m)] = _bincount_rows(mask)
        inten[a : a + len(m)] = _intensity(imgs)
        tick(min(a + CHUNK, n))
    ch = 1 if images.ndim == 3 else images.shape[-1]
    shape = np.tile(np.array([images.shape[1], images.shape[2], ch], np.int32), (n, 1))
    return lab_ids, counts, inten, shape


def _one(ds: SegDataset, image_id: str):
    img, counts, unknown, problems = ds.load_counts(image_id)
    if img is None:
        return image_id, None, None, None, problems, unknown
    if counts is None:
        counts = np.zeros(256, np.int64)
    shape = (img.shape[0], img.shape[1], 1 if img.ndim == 2 else img.shape[2])
    return image_id, counts, _intensity(img[None])[0], shape, problems, unknown


def _stats_per_image(ds: SegDataset, ids: list[str], progress: Progress | None, done0: int = 0):
    """Every image once, in a few threads (decoding releases the GIL). Memory: the per-image
    features below and a bounded window of images in flight, whatever the number of images."""
    n = len(ids)
    counts = np.zeros((n, 256), np.int64)
    inten = np.zeros((n, 4), np.float32)
    shapes = np.zeros((n, 3), np.int32)
    keep = np.zeros(n, bool)
    problems: list[Problem] = []
    unknown: dict[str, dict] = {}  # image id -> unknown values or colours (only images that have some)
    workers = min(8, (os.cpu_count() or 2) * 2)
    window = 4 * workers
    _ = ds.decoder  # made once here, not raced for by the threads
    tick = Ticker(progress, len(ds), done0)
    with ThreadPoolExecutor(workers) as pool:
        pending: deque = deque()
        nxt = 0
        for k in range(n):
            while nxt < n and len(pending) < window:
                pending.append(pool.submit(_one, ds, ids[nxt]))
                nxt += 1
            image_id, c, it, sh, probs, unk = pending.popleft().result()
            problems.extend(probs)
            if c is not None:
                keep[k] = True
                counts[k], inten[k], shapes[k] = c, it, sh
                if unk:
                    unknown[image_id] = unk
            tick(k + 1)
    if keep.all():
        return list(ids), counts, inten, shapes, problems, unknown
    kept = [i for i, kp in zip(ids, keep, strict=True) if kp]
    return kept, counts[keep], inten[keep], shapes[keep], problems, unknown


class Ticker:
    """Calls ``progress(done, total)`` at most every 0.1 s, and always for the last image, so a
    bar's time left follows the real rate without a call per image of a large dataset."""

    every = 0.1  # seconds

    def __init__(self, progress: Progress | None, total: int, done0: int = 0):
        self.progress, self.total, self.done0 = progress, total, done0
        self.last = -float("inf")

    def __call__(self, done: int) -> None:
        if self.progress is None:
            return
        done += self.done0
        now = time.monotonic()
        if now - self.last >= self.every or done >= self.total:
            self.last = now
            self.progress(done, self.total)


def _compute(ds: SegDataset, progress: Progress | None) -> DatasetStats:
    fast = _stats_npz_fast(ds, progress) if isinstance(ds, NpzDataset) else None
    if fast is not None:
        lab_ids, c1, i1, s1 = fast
        rest = ds.unlabeled_ids
        ids2, c2, i2, s2, problems, unknown = _stats_per_image(ds, rest, progress, len(lab_ids))
        ids = lab_ids + ids2
        counts, inten, shape = np.concatenate([c1, c2]), np.concatenate([i1, i2]), np.concatenate([s1, s2])
    else:
        ids, counts, inten, shape, problems, unknown = _stats_per_image(ds, ds.ids, progress)
    labeled = np.array([ds.is_labeled(i) for i in ids], bool)
    class_map = ds.class_map
    totals = _unknown_totals(unknown)
    if class_map.inferred and ds.encoding in ("index", "palette", "binary"):
        seen = np.flatnonzero(counts[labeled].sum(0)[:UNKNOWN_INDEX])
        class_map = class_map.extended(seen.tolist())
    elif class_map.inferred and ds.encoding == "rgb" and unknown:
        class_map, problems = _learn_colours(class_map, ids, counts, unknown, problems)
        if class_map is not ds.class_map:
            totals = []  # every colour became a class
    elif ds.encoding == "rgb":
        problems = problems + _colours_disagree(ds, class_map, counts[labeled], totals)
    return DatasetStats(ids, labeled, counts, inten, shape, class_map, problems,
                        unknown_values=totals[:UNKNOWN_KEPT], n_unknown_values=len(totals))


def _unknown_totals(unknown: dict[str, dict]) -> list[tuple]:
    """[(value or colour, pixels, masks)] over every image's unknown values, most pixels first."""
    total: dict = {}
    for unk in unknown.values():
        for key, px in unk.items():
            t = total.setdefault(key, [0, 0])
            t[0] += int(px)
            t[1] += 1
    return sorted(((k, px, m) for k, (px, m) in total.items()), key=lambda t: (-t[1], str(t[0])))


def _compute_corrected(ds: SegDataset, progress: Progress | None, use_cache: bool, cache_root) -> DatasetStats:
    """Statistics of a corrected view: the files' statistics (cached: computed once), with the
    rows of the corrected images measured again, so a correction costs one image, not a pass."""
    files = compute_stats(ds.original(), use_cache, progress, cache_root)
    ids, counts, labeled = list(files.ids), files.counts.copy(), files.labeled.copy()
    row = {image_id: k for k, image_id in enumerate(ids)}
    problems = [p for p in files.problems if not (p.image_id in ds.corrections.versions and p.code == "unknown_class")]
    for image_id in ds.corrected_ids:
        if image_id not in row:
            continue  # left out by a problem with its image
        _, c, _, _, probs, _ = _one(ds, image_id)
        problems += probs
        if c is not None:
            counts[row[image_id]], labeled[row[image_id]] = c, True
    class_map = files.class_map
    if class_map.inferred and ds.encoding in ("index", "palette", "binary"):
        class_map = class_map.extended(np.flatnonzero(counts[labeled].sum(0)[:UNKNOWN_INDEX]).tolist())
    # The files' unknown values: what a class file describes (corrected masks hold class ids, never unknown ones).
    return DatasetStats(ids, labeled, counts, files.intensity, files.shape, class_map, problems,
                        unknown_values=files.unknown_values, n_unknown_values=files.n_unknown_values)


def _learn_colours(class_map: ClassMap, ids, counts, unknown: dict, problems: list[Problem]):
    """An inferred colour map was made from a sample of masks: colours that only other masks
    use become classes too (ids after the sample's, by pixel count), their pixels counted
    under them. Fills ``counts`` in place; drops the then-wrong unknown-colour warnings."""
    total: dict[str, int] = {}
    for unk in unknown.values():
        for colour, px in unk.items():
            total[colour] = total.get(colour, 0) + px
    free = UNKNOWN_INDEX - (max(class_map.ids) + 1 if len(class_map) else 0)
    if len(total) > free:
        return class_map, problems  # more colours than ids (e.g. JPEG-compressed masks): stay unknown
    first = max(class_map.ids) + 1 if len(class_map) else 0
    new_id = {c: first + k for k, c in enumerate(sorted(total, key=lambda c: (-total[c], c)))}
    row = {image_id: k for k, image_id in enumerate(ids)}
    for image_id, unk in unknown.items():
        for colour, px in unk.items():
            counts[row[image_id], new_id[colour]] += px
            counts[row[image_id], UNKNOWN_INDEX] -= px
    learned = ClassMap(class_map.classes + [ClassInfo(i, f"class_{i}", c) for c, i in new_id.items()], True)
    return learned, [p for p in problems if not (p.code == "unknown_class" and p.image_id in unknown)]


def _colours_disagree(ds: SegDataset, class_map: ClassMap, lab_counts: np.ndarray,
                      totals: list[tuple]) -> list[Problem]:
    """Where a class file's colours and the masks' colours disagree (public sets ship such files):
    one warning for colours in the masks that the file lacks (with pixels), one for the file's
    colours that no mask uses. Neither side is trusted silently."""
    source = getattr(ds, "class_map_file", None)
    if source is None:
        return []
    name = os.path.basename(source)
    out = []
    if totals:
        items = totals
        shown = ", ".join(f"{c} ({px:,} px in {m} mask{'s' * (m != 1)})" for c, px, m in items[:12])
        more = f" and {len(items) - 12} more" if len(items) > 12 else ""
        out.append(Problem(source, f"{len(items)} colour{'s' * (len(items) != 1)} in the masks "
                           f"{'are' if len(items) != 1 else 'is'} not in {name}: {shown}{more}; "
                           "their pixels count as unknown (fix the colours in the class file; "
                           f"`seglib classes {shlex.quote(str(ds.source))} --write-from-masks` writes one from "
                           "the masks' colours)",
                           "class_file_colours_missing", None, excluded=False, severity="warning"))
    px = lab_counts.sum(0)
    unseen = [c for c in class_map if not px[c.id]]
    if unseen:
        shown = ", ".join(f"{c.name} {c.color}" for c in unseen[:12])
        more = f" and {len(unseen) - 12} more" if len(unseen) > 12 else ""
        out.append(Problem(source, f"{len(unseen)} class colour{'s' * (len(unseen) != 1)} of {name} "
                           f"never appear{'s' * (len(unseen) == 1)} in the masks: {shown}{more}",
                           "class_file_colours_unseen", None, excluded=False, severity="warning"))
    return out


def compute_stats(ds: SegDataset, use_cache: bool = True, progress: Progress | None = None,
                  cache_root=None) -> DatasetStats:
    """Statistics of every image of ``ds``; records the problems found on ``ds``.

    Cached on disk under the dataset's content fingerprint: a second call on an unchanged
    dataset reads a few arrays instead of every image. ``progress(done, total)`` is called as
    images are read (at most every 0.1 s, and for the last one); a cache hit does not call it.
    """
    key = f"{ds.fingerprint()}-v{STATS_VERSION}"
    hit = cache.load("stats", key, cache_root) if use_cache else None
    if hit is not None:
        meta = hit["meta"]
        counts = np.zeros((len(meta["ids"]), 256), np.int64)
        counts[:, meta["count_columns"]] = hit["counts"]
        stats = DatasetStats(meta["ids"], hit["labeled"], counts, hit["intensity"], hit["shape"],
                          ClassMap.from_list(meta["class_map"]) if meta["class_map"] else ds.class_map,
                          [Problem(**p) for p in meta["problems"]], from_cache=True,
                          unknown_values=[tuple(v) for v in meta["unknown_values"]],
                          n_unknown_values=meta["n_unknown_values"])
        stats.class_map.inferred = meta["inferred"]
    else:
        stats = _compute_corrected(ds, progress, use_cache, cache_root) if ds.corrected_ids else _compute(ds, progress)
        used = np.flatnonzero(stats.counts.any(0))  # a handful of the 256 id columns: store only those
        cache.save("stats", key, {"labeled": stats.labeled, "counts": stats.counts[:, used],
                                  "intensity": stats.intensity, "shape": stats.shape},
                   meta={"ids": stats.ids, "count_columns": used.tolist(),
                         "problems": [p.to_dict() for p in stats.problems],
                         "unknown_values": [list(v) for v in stats.unknown_values],
                         "n_unknown_values": stats.n_unknown_values,
                         "class_map": stats.class_map.to_list(), "inferred": stats.class_map.inferred},
                   root=cache_root)
    ds.record_problems(stats.problems)
    if stats.class_map is not ds.class_map:
        if stats.class_map.to_list() == ds.class_map.to_list() and stats.class_map.inferred == ds.class_map.inferred:
            stats.class_map = ds.class_map  # the same map: keep the dataset's (and its decoder's tables)
        else:
            ds.set_class_map(stats.class_map)
            ds.remember_classes()  # the next open starts from every mask's classes, not a sample's
    return stats

