"""Corrected masks of a dataset: save, list, revert, diff, export, and the dataset as corrected.

>>> ds = apply_corrections(open_dataset("data/demo.npz"))   # every reader now sees the latest versions
>>> v = save_correction(ds, "00012", fixed_mask, tool="brush", note="crater", expected=0)
>>> versions(ds, "00012")                                  # [Version(number=1, ...)]
>>> revert_correction(ds, "00012", 0)                       # back to the file's mask (version 2)
>>> export_corrections(ds, "fixed/")                        # fixed/00012.png (class ids)

The user's files are never written: versions live in the review store (:mod:`.versions`) and
:meth:`SegDataset.with_corrections` lays the latest ones over the files, so statistics,
detectors, pages, training and Compare read them by default (``original_masks=True`` or the
CLI's ``--original-masks`` read the files). An unlabeled image given a mask ("label next")
becomes a labeled one the same way.
"""
from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..atomic import atomic_write_bytes
from ..data import open_dataset
from ..data.dataset import MaskOverlay, SegDataset
from .store import ReviewStore, dataset_key, default_url
from .versions import ORIGINAL, MaskVersions, StaleVersion, Version, encode_mask

__all__ = ["ORIGINAL", "MaskDiff", "StaleVersion", "Version", "apply_corrections", "check_mask",
           "corrections_table", "export_corrections", "latest_number", "mask_diff", "open_corrected",
           "revert_correction", "save_correction", "version_mask", "versions"]


@functools.lru_cache(maxsize=8)
def _store(url: str) -> ReviewStore:
    return ReviewStore(url)


def _versions(store: ReviewStore | None) -> MaskVersions:
    """The versions of ``store``, else of the default store (one engine per URL in the process)."""
    return MaskVersions(store if store is not None else _store(default_url()))


def _key(ds) -> str:
    return dataset_key(ds)


# --- the dataset as corrected -----------------------------------------------------------------
def apply_corrections(ds: SegDataset, store: ReviewStore | None = None,
                      latest: dict[str, int] | None = None) -> SegDataset:
    """A view of ``ds`` that reads the latest corrected version of every corrected image (the
    files' view when there is none). Masks are read from the store when first needed.
    ``latest``: {image id: version} when the caller has looked them up already."""
    mv = _versions(store)
    key = _key(ds)
    latest = {i: n for i, n in (mv.latest(key) if latest is None else latest).items() if i in ds}
    if not latest:
        return ds.original()
    return ds.with_corrections(MaskOverlay(latest, lambda image_id: mv.mask(key, image_id, latest[image_id])))


def open_corrected(path: str | os.PathLike, original_masks: bool = False,
                   store: ReviewStore | None = None) -> SegDataset:
    """``open_dataset(path)`` with its corrections applied (unless ``original_masks``)."""
    ds = open_dataset(path)
    return ds if original_masks else apply_corrections(ds, store)


def check_mask(ds: SegDataset, image_id: str, mask) -> np.ndarray:
    """``mask`` as uint8 class ids if it fits the image and the class map; else ValueError in one
    line naming the image and what is wrong."""
    if image_id not in ds:
        raise ValueError(f"{ds.source}: no image {image_id!r}")
    arr = np.asarray(mask)
    if arr.ndim != 2:
        raise ValueError(f"{image_id}: a mask must be one channel of class ids, got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{image_id}: a mask must hold integer class ids, got {arr.dtype}")
    h, w = _image_size(ds, image_id)
    if arr.shape != (h, w):
        raise ValueError(f"{image_id}: the mask is {arr.shape[1]}x{arr.shape[0]} but the image is {w}x{h} (WxH)")
    known = set(ds.class_map.ids)
    present = np.unique(arr)
    unknown = [int(v) for v in present if int(v) not in known]
    if unknown:
        shown = ", ".join(map(str, unknown[:10])) + (" ..." if len(unknown) > 10 else "")
        raise ValueError(f"{image_id}: class id{'s' * (len(unknown) > 1)} {shown} not in the class map "
                         f"(known: {', '.join(map(str, sorted(known)))})")
    return arr.astype(np.uint8)


def _image_size(ds: SegDataset, image_id: str) -> tuple[int, int]:
    mask = ds.original_mask(image_id) if ds.original().is_labeled(image_id) else None
    return mask.shape[:2] if mask is not None else ds.image(image_id).shape[:2]


def version_mask(ds: SegDataset, image_id: str, number: int, store: ReviewStore | None = None) -> np.ndarray | None:
    """The class ids of version ``number`` (0: the file's mask; None for an unlabeled image)."""
    if number != ORIGINAL:
        mask = _versions(store).mask(_key(ds), image_id, number)
        if mask is not None:
            return mask
    return ds.original_mask(image_id)


def latest_number(ds: SegDataset, image_id: str, store: ReviewStore | None = None) -> int:
    """The number of the image's current version (0 when its file's mask is current)."""
    return _versions(store).latest_number(_key(ds), image_id)


def versions(ds: SegDataset, image_id: str | None = None, store: ReviewStore | None = None) -> list[Version]:
    """The saved versions of one image (or of every image), oldest first."""
    return _versions(store).history(_key(ds), image_id)


def _changed(before: np.ndarray | None, after: np.ndarray | None) -> int | None:
    if before is None or after is None or before.shape != after.shape:
        return None
    return int(np.count_nonzero(before != after))


def save_correction(ds: SegDataset, image_id: str, mask, *, store: ReviewStore | None = None, tool: str = "brush",
                    note: str = "", who: str = "", expected: int | None = None) -> Version:
    """Store ``mask`` (class ids) as the image's next version. ``expected``: the version the
    change started from (raises :class:`StaleVersion` when another save came since; None: no
    check). Raises ValueError (one line) for a mask of the wrong size or with unknown ids."""
    mask = check_mask(ds, image_id, mask)
    mv = _versions(store)
    key = _key(ds)
    current = mv.latest_number(key, image_id)
    before = version_mask(ds, image_id, current, store)
    return mv.save(key, image_id, mask, tool=tool, note=note, who=who, expected=expected,
                   changed_px=_changed(before, mask))


def revert_correction(ds: SegDataset, image_id: str, number: int, *, store: ReviewStore | None = None,
                      who: str = "", note: str = "", expected: int | None = None) -> Version:
    """Make version ``number`` current again (0: the file's mask) by saving it as a new version."""
    mv = _versions(store)
    key = _key(ds)
    target = None if number == ORIGINAL else mv.mask(key, image_id, number)  # KeyError: no such version
    current = mv.latest_number(key, image_id)
    before = version_mask(ds, image_id, current, store)
    after = target if target is not None else ds.original_mask(image_id)
    h, w = _image_size(ds, image_id)
    return mv.save(key, image_id, target, height=h, width=w, tool="revert", who=who, expected=expected,
                   note=note or f"back to {'the original' if number == ORIGINAL else f'version {number}'}",
                   changed_px=_changed(before, after), reverts_to=number)


def corrections_table(ds: SegDataset, store: ReviewStore | None = None) -> pd.DataFrame:
    """Every saved version of the dataset (see :meth:`MaskVersions.table`)."""
    return _versions(store).table(_key(ds))


def export_corrections(ds: SegDataset, out_dir: str | os.PathLike, store: ReviewStore | None = None) -> list[Path]:
    """Write the latest corrected mask of every corrected image as an index PNG of class ids,
    named by image id (``out_dir/<id>.png``), ready to merge into the dataset's files."""
    view = apply_corrections(ds.original(), store)
    out = Path(out_dir)
    written = []
    for image_id in sorted(view.corrected_ids):
        path = out / f"{image_id}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, encode_mask(view.mask(image_id)))
        written.append(path)
    return written


# --- what changed ---------------------------------------------------------------------------
@dataclass
class MaskDiff:
    """Where two masks differ (``changed``, (H, W) bool) and the pixels per class before and
    after (``table``: id, name, before_px, after_px, delta; only classes whose count changed)."""

    changed: np.ndarray
    table: pd.DataFrame

    @property
    def changed_px(self) -> int:
        return int(self.changed.sum())


def mask_diff(before: np.ndarray, after: np.ndarray, class_map) -> MaskDiff:
    if before.shape != after.shape:
        raise ValueError(f"cannot compare masks of {before.shape[1]}x{before.shape[0]} and "
                         f"{after.shape[1]}x{after.shape[0]} pixels")
    changed = before != after
    b = np.bincount(before[changed].ravel(), minlength=256)
    a = np.bincount(after[changed].ravel(), minlength=256)
    nb = np.bincount(before.ravel(), minlength=256)
    na = np.bincount(after.ravel(), minlength=256)
    rows = [{"id": int(c), "name": class_map.name_of(int(c)), "before_px": int(nb[c]), "after_px": int(na[c]),
             "delta": int(na[c]) - int(nb[c])} for c in np.flatnonzero((a + b) > 0)]
    return MaskDiff(changed, pd.DataFrame(rows, columns=["id", "name", "before_px", "after_px", "delta"]))
