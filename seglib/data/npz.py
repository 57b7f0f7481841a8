"""Datasets in one .npz file: the Kaggle Mars layout or ``images`` + ``masks`` arrays."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .classmap import ClassMap
from .dataset import CLASS_MAP_FILE, DatasetError, SegDataset, digest, file_state, npz_image_id
from .io import ReadError, to_uint8


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
                    self.report.add(f"{path}[training_set]", f"shape {ts.shape} is not (N, 2, H, W); left out",
                                    "npz_shape")
            elif "images" in keys:
                imgs = npz["images"]
                if not (imgs.ndim == 3 or (imgs.ndim == 4 and imgs.shape[-1] in (1, 3, 4))):
                    self.report.add(f"{path}[images]", f"shape {imgs.shape} is not (N, H, W) or (N, H, W, C); "
                                    "left out", "npz_shape")
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
            self.report.add(path, f"no image arrays: expected 'training_set' or 'images' (+ 'masks'); found {keys}",
                            "npz_keys")
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

    def files_fingerprint(self) -> str:
        return digest([self.kind, file_state(self.source), file_state(self.source.with_suffix(".classes.json")),
                        file_state(self.source.parent / CLASS_MAP_FILE)])

    # Fast paths for whole-array statistics.
    def labeled_arrays(self) -> tuple[np.ndarray, np.ndarray] | None:
        """(images, raw masks) of the labeled split as stored, or None (also when corrected masks
        replace some of them: the per-image paths read those)."""
        if self._lab_imgs is None or self.corrected_ids:
            return None
        return self._lab_imgs, self._masks
