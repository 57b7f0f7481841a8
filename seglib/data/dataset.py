"""One interface over every dataset format: ids, lazy images and masks, class map, report.

>>> ds = open_dataset("data/mars.npz")
>>> ds.image(ds.ids[0]).shape, ds.mask(ds.ids[0]).dtype
((64, 128), dtype('uint8'))

Opening is structural and cheap (no pixel is read for folders beyond a small sample used to
recognise the mask encoding). Reading every pixel happens once, in ``seglib.stats``, which
finds the pixel-level problems (unreadable files, size mismatches, unknown colours) and hands
them back through :meth:`SegDataset.record_problems`.
"""
from __future__ import annotations

import abc
import hashlib
import json
import os
from pathlib import Path

import numpy as np

from .classmap import ClassMap
from .folder import Sample, scan_folder
from .io import MaskDecoder, ReadError, describe_unknown, read_image, read_mask_file, to_uint8
from .report import Problem, Report

CLASS_MAP_FILE = "classes.json"


class DatasetError(Exception):
    """The dataset cannot be opened at all (path missing, not a folder or .npz)."""


class SegDataset(abc.ABC):
    """Base class. Subclasses fill ``_ids``, ``_labeled``, ``class_map``, ``encoding``, ``report``."""

    kind = "base"

    def __init__(self, source: Path):
        self.source = Path(source)
        self.report = Report()
        self.class_map = ClassMap()
        self.encoding = "index"
        self._ids: list[str] = []
        self._labeled: dict[str, bool] = {}
        self._decoder: MaskDecoder | None = None

    # --- what is in it ------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.source.stem if self.source.suffix else self.source.name

    @property
    def ids(self) -> list[str]:
        """The ids of the usable images (those left out by a problem are not here)."""
        return list(self._ids)

    @property
    def all_ids(self) -> list[str]:
        """Every image id found in the files, those left out by a problem included."""
        return list(self._labeled)

    @property
    def labeled_ids(self) -> list[str]:
        return [i for i in self._ids if self._labeled[i]]

    @property
    def unlabeled_ids(self) -> list[str]:
        return [i for i in self._ids if not self._labeled[i]]

    def is_labeled(self, image_id: str) -> bool:
        return self._labeled[image_id]

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, image_id: str) -> bool:
        return image_id in self._labeled

    @property
    def decoder(self) -> MaskDecoder:
        if self._decoder is None or self._decoder.class_map is not self.class_map:
            self._decoder = MaskDecoder(self.class_map, self.encoding)
        return self._decoder

    # --- pixels -------------------------------------------------------------------------
    @abc.abstractmethod
    def file_of(self, image_id: str, what: str = "image") -> str:
        """The file a person should look at for this image or mask (used in messages)."""
        ...

    @abc.abstractmethod
    def image(self, image_id: str) -> np.ndarray:
        """uint8 (H, W) or (H, W, 3). Raises ReadError naming the file."""
        ...

    @abc.abstractmethod
    def raw_mask(self, image_id: str) -> tuple[np.ndarray, str]:
        """Mask pixels as stored and the PIL-like mode ("L", "P" or "RGB")."""

    def mask(self, image_id: str) -> np.ndarray | None:
        """uint8 (H, W) class indices, unknown pixels = UNKNOWN_INDEX; None if unlabeled."""
        if not self._labeled[image_id]:
            return None
        raw, mode = self.raw_mask(image_id)
        return self.decoder.decode(raw, mode)[0]

    def load_pair(self, image_id: str) -> tuple[np.ndarray, np.ndarray | None, list[Problem]]:
        """Image, decoded mask and the problems found in them; an excluded pair returns
        (None, None, problems). Never raises for a bad file."""
        problems: list[Problem] = []
        try:
            img = self.image(image_id)
        except ReadError as e:
            return None, None, [Problem(self.file_of(image_id), str(e).split(": ", 1)[-1], "unreadable_image", image_id)]
        if not self._labeled[image_id]:
            return img, None, problems
        try:
            raw, mode = self.raw_mask(image_id)
        except ReadError as e:
            return None, None, [Problem(self.file_of(image_id, "mask"), str(e).split(": ", 1)[-1], "unreadable_mask", image_id)]
        if raw.shape[:2] != img.shape[:2]:
            return None, None, [Problem(self.file_of(image_id, "mask"),
                                        f"mask is {raw.shape[1]}x{raw.shape[0]} but its image is "
                                        f"{img.shape[1]}x{img.shape[0]} (WxH)", "mask_size", image_id)]
        mask, unknown = self.decoder.decode(raw, mode)
        if unknown:
            problems.append(Problem(self.file_of(image_id, "mask"), describe_unknown(unknown, self.encoding),
                                    "unknown_class", image_id, excluded=False, severity="warning"))
        return img, mask, problems

    # --- bookkeeping --------------------------------------------------------------------
    def record_problems(self, problems: list[Problem]) -> None:
        """Add pixel-level problems found by a full pass; excluded images leave ``ids``."""
        known = {(p.file, p.code) for p in self.report.problems}
        fresh = [p for p in problems if (p.file, p.code) not in known]
        self.report.extend(fresh)
        drop = {p.image_id for p in fresh if p.excluded}
        if drop:
            self._ids = [i for i in self._ids if i not in drop]

    def set_class_map(self, class_map: ClassMap) -> None:
        self.class_map = class_map
        self._decoder = None

    @abc.abstractmethod
    def fingerprint(self) -> str:
        """Changes whenever any file of the dataset changes (path, size, mtime)."""
        ...


def npz_image_id(index: int, n: int) -> str:
    """Zero-padded index, at least 5 digits: 12 -> '00012'."""
    return str(index).zfill(max(5, len(str(max(n - 1, 0)))))


def _digest(parts) -> str:
    h = hashlib.sha1()
    for p in parts:
        h.update(str(p).encode())
        h.update(b"\0")
    return h.hexdigest()[:16]


def _stat_key(path: Path) -> str:
    try:
        info = path.stat()
        return f"{path}|{info.st_size}|{info.st_mtime_ns}"
    except OSError:
        return f"{path}|missing"


# =========================================================================================
class FolderDataset(SegDataset):
    kind = "folder"

    def __init__(self, root: Path, class_map_path: Path | None = None):
        super().__init__(root)
        self.samples: dict[str, Sample] = {}
        for s in scan_folder(root, self.report):
            self.samples[s.image_id] = s
        self._ids = list(self.samples)
        self._labeled = {i: s.labeled for i, s in self.samples.items()}
        self.class_map_path = class_map_path or root / CLASS_MAP_FILE
        self._init_classes()

    def file_of(self, image_id: str, what: str = "image") -> str:
        s = self.samples[image_id]
        return str(s.mask_path if what == "mask" else s.image_path)

    def image(self, image_id: str) -> np.ndarray:
        return read_image(self.samples[image_id].image_path)

    def raw_mask(self, image_id: str) -> tuple[np.ndarray, str]:
        raw, mode, _ = read_mask_file(self.samples[image_id].mask_path)
        return raw, mode

    def fingerprint(self) -> str:
        parts = [self.kind, _stat_key(self.class_map_path)]
        for s in self.samples.values():
            parts.append(_stat_key(s.image_path))
            if s.mask_path:
                parts.append(_stat_key(s.mask_path))
        return _digest(parts)

    def _sample_masks(self, k: int = 16) -> list[tuple[np.ndarray, str, list | None]]:
        labeled = self.labeled_ids
        if not labeled:
            return []
        idx = np.unique(np.linspace(0, len(labeled) - 1, min(k, len(labeled))).round().astype(int))
        out = []
        for i in idx:
            try:
                out.append(read_mask_file(self.samples[labeled[i]].mask_path))
            except ReadError:
                continue  # reported by the full pass
        return out

    def _init_classes(self) -> None:
        """Recognise the mask encoding from a sample and set up the class map."""
        given = None
        if self.class_map_path.exists():
            try:
                given = ClassMap.load(self.class_map_path)
            except ValueError as e:
                self.report.add(self.class_map_path, f"{str(e).split(': ', 1)[-1]}; names and colours made up instead",
                                "bad_class_map", excluded=False)
        sample = self._sample_masks()
        modes = {m for _, m, _ in sample}
        if "RGB" in modes:
            self.encoding = "rgb"
        elif "P" in modes:
            self.encoding = "palette"
        else:
            values = set()
            for raw, _, _ in sample:
                values.update(np.unique(raw).tolist())
            is_binary = values <= {0, 255} and 255 in values
            if is_binary and (given is None or max(given.ids) <= 1):
                self.encoding = "binary"
        if given is not None:
            self.set_class_map(given)
            return
        self.set_class_map(_infer_class_map(sample, self.encoding))


def _infer_class_map(sample, encoding: str) -> ClassMap:
    if encoding == "binary":
        return ClassMap.default([0, 1], {0: "background", 1: "foreground"})
    if encoding == "rgb":
        from .classmap import ClassInfo, rgb_to_hex
        counts: dict[tuple, int] = {}
        for raw, mode, _ in sample:
            if mode != "RGB":
                continue
            cols, n = np.unique(raw.reshape(-1, 3), axis=0, return_counts=True)
            for c, k in zip(map(tuple, cols), n, strict=True):
                counts[c] = counts.get(c, 0) + int(k)
        # Black first (usually background), then by frequency: stable, readable ids.
        order = sorted(counts, key=lambda c: (c != (0, 0, 0), -counts[c], c))
        return ClassMap([ClassInfo(i, f"class_{i}", rgb_to_hex(c)) for i, c in enumerate(order[:254])], True)
    ids: set[int] = set()
    palette = None
    for raw, mode, pal in sample:
        ids.update(int(v) for v in np.unique(raw) if 0 <= v < 255)
        palette = palette or pal
    cm = ClassMap.default(ids or [0])
    if palette:
        from .classmap import ClassInfo, rgb_to_hex
        cm = ClassMap([ClassInfo(c.id, c.name, rgb_to_hex(palette[c.id]) if c.id < len(palette) else c.color)
                       for c in cm], True)
    return cm


# =========================================================================================
class NpzDataset(SegDataset):
    """Kaggle Mars layout (``training_set`` (N, 2, H, W) + optional ``test_set`` (M, H, W)) or
    ``images`` (N, H, W[, C]) + ``masks`` (N, H, W). A JSON class map may be embedded under
    ``class_map`` or sit beside the file as ``<name>.classes.json`` or ``classes.json``."""

    kind = "npz"
    KNOWN_KEYS = {"training_set", "test_set", "images", "masks", "class_map"}

    def __init__(self, path: Path):
        super().__init__(path)
        self._masks = None
        self._index: dict[str, int] = {}
        try:
            npz = np.load(path, allow_pickle=False)
            keys = list(npz.keys())
        except Exception as e:
            raise DatasetError(f"{path}: cannot read as .npz ({e})") from None
        self._load_arrays(npz, keys)
        self._init_classes(npz, keys)

    def _load_arrays(self, npz, keys) -> None:
        path = self.source
        for k in keys:
            if k not in self.KNOWN_KEYS:
                self.report.add(path, f"unknown array '{k}' ignored (known: training_set, test_set, images, masks)",
                                "npz_unknown_key", excluded=False)
        labeled_imgs = labeled_masks = unlabeled = None
        self._labeled_keys = ("training_set", "training_set") if "training_set" in keys else ("images", "masks")
        try:
            if "training_set" in keys:
                ts = npz["training_set"]
                if ts.ndim == 4 and ts.shape[1] == 2:
                    labeled_imgs, labeled_masks = ts[:, 0], ts[:, 1]
                else:
                    self.report.add(f"{path}[training_set]", f"shape {ts.shape} is not (N, 2, H, W); left out", "npz_shape")
            elif "images" in keys:
                imgs = npz["images"]
                if not (imgs.ndim == 3 or (imgs.ndim == 4 and imgs.shape[-1] in (1, 3, 4))):
                    self.report.add(f"{path}[images]", f"shape {imgs.shape} is not (N, H, W) or (N, H, W, C); left out", "npz_shape")
                elif "masks" in keys:
                    masks = npz["masks"]
                    if masks.ndim != 3 or masks.shape[0] != imgs.shape[0] or masks.shape[1:3] != imgs.shape[1:3]:
                        self.report.add(f"{path}[masks]", f"shape {masks.shape} does not match images {imgs.shape} "
                                        "(expected (N, H, W)); images kept as unlabeled", "npz_shape")
                        unlabeled = imgs
                    else:
                        labeled_imgs, labeled_masks = imgs, masks
                else:
                    unlabeled = imgs
            if "test_set" in keys:
                t = npz["test_set"]
                if t.ndim in (3, 4) and unlabeled is not None:
                    self.report.add(f"{path}[test_set]", "left out: the 'images' array is already the "
                                    "unlabeled split (no usable 'masks')", "npz_shape", excluded=False)
                elif t.ndim in (3, 4):
                    unlabeled = t
                else:
                    self.report.add(f"{path}[test_set]", f"shape {t.shape} is not (M, H, W); left out", "npz_shape")
        except Exception as e:  # a damaged member of the zip
            self.report.add(path, f"cannot read arrays ({e})", "unreadable_npz")
        if labeled_imgs is None and unlabeled is None and not self.report.problems:
            self.report.add(path, f"no image arrays: expected 'training_set' or 'images' (+ 'masks'); found {keys}", "npz_keys")
        n_lab = 0 if labeled_imgs is None else len(labeled_imgs)
        width = len(npz_image_id(0, n_lab))
        for i in range(n_lab):
            self._index[npz_image_id(i, n_lab)] = i
        n_un = 0 if unlabeled is None else len(unlabeled)
        for j in range(n_un):
            self._index[f"test/{str(j).zfill(width)}"] = n_lab + j
        self._ids = list(self._index)
        self._labeled = {k: v < n_lab for k, v in self._index.items()}
        self._lab_imgs, self._masks, self._unlab_imgs = labeled_imgs, labeled_masks, unlabeled
        # Where the unlabeled rows came from: 'images' without usable masks, else 'test_set'.
        self._unlabeled_key = "images" if labeled_imgs is None and "images" in keys else "test_set"
        self._n_lab = n_lab

    def _init_classes(self, npz, keys) -> None:
        path = self.source
        given = None
        try:
            if "class_map" in keys:
                given = ClassMap.from_list(json.loads(str(npz["class_map"])), source=f"{path}[class_map]")
            else:
                for cand in (path.with_suffix(".classes.json"), path.parent / CLASS_MAP_FILE):
                    if cand.exists():
                        given = ClassMap.load(cand)
                        break
        except (ValueError, json.JSONDecodeError) as e:
            self.report.add(path, f"{e}; names and colours made up instead", "bad_class_map", excluded=False)
        if given is not None:
            self.set_class_map(given)
            return
        ids = [0]
        if self._masks is not None and len(self._masks):
            m = self._masks
            vals = np.unique(m[:: max(1, len(m) // 256)])  # a sample is enough to start with
            ids = [int(v) for v in vals if float(v).is_integer() and 0 <= v < 255] or [0]
        self.set_class_map(ClassMap.default(ids))

    def _row(self, image_id: str) -> int:
        return self._index[image_id]

    def rows_of(self, image_id: str) -> dict[str, int]:
        """Where an image and its mask are stored in the file: ``{array name: row}``, e.g.
        ``{"training_set": 12}`` (Kaggle layout), ``{"images": 12, "masks": 12}`` or
        ``{"test_set": 3}`` (unlabeled). Any id of ``all_ids`` works."""
        i = self._row(image_id)
        if i < self._n_lab:
            return dict.fromkeys(self._labeled_keys, i)
        return {self._unlabeled_key: i - self._n_lab}

    def file_of(self, image_id: str, what: str = "image") -> str:
        i = self._row(image_id)
        if i < self._n_lab:
            key = self._labeled_keys[0 if what == "image" else 1]
            return f"{self.source}[{key}][{i}]"
        return f"{self.source}[{self._unlabeled_key}][{i - self._n_lab}]"

    def image(self, image_id: str) -> np.ndarray:
        i = self._row(image_id)
        a = self._lab_imgs[i] if i < self._n_lab else self._unlab_imgs[i - self._n_lab]
        if a.ndim == 3 and a.shape[-1] == 1:
            a = a[..., 0]
        elif a.ndim == 3 and a.shape[-1] == 4:
            a = a[..., :3]
        return to_uint8(np.asarray(a))

    def raw_mask(self, image_id: str) -> tuple[np.ndarray, str]:
        m = np.asarray(self._masks[self._row(image_id)])
        if m.dtype != np.uint8:
            if np.issubdtype(m.dtype, np.floating):
                if not np.all(np.isfinite(m)) or not np.all(np.mod(m, 1) == 0):
                    raise ReadError(f"{self.file_of(image_id, 'mask')}: mask holds non-integer values")
            m = m.astype(np.int64)
        return m, "L"

    def fingerprint(self) -> str:
        return _digest([self.kind, _stat_key(self.source), _stat_key(self.source.with_suffix(".classes.json")),
                        _stat_key(self.source.parent / CLASS_MAP_FILE)])

    # Fast paths for whole-array statistics.
    def labeled_arrays(self) -> tuple[np.ndarray, np.ndarray] | None:
        """(images, raw masks) of the labeled split as stored, or None."""
        if self._lab_imgs is None:
            return None
        return self._lab_imgs, self._masks


# =========================================================================================
def open_dataset(path: str | os.PathLike) -> SegDataset:
    """Open a folder or .npz dataset. Raises DatasetError only when nothing can be opened;
    every other problem lands in ``dataset.report``."""
    p = Path(path).expanduser()
    if not p.exists():
        raise DatasetError(f"{p}: no such file or folder")
    if p.is_dir():
        return FolderDataset(p)
    if p.suffix.lower() == ".npz":
        return NpzDataset(p)
    raise DatasetError(f"{p}: not a dataset (expected a folder of images and masks, or an .npz file)")
