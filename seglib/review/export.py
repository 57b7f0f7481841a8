"""Export review results: the flags as CSV, and a cleaned copy of a dataset.

>>> export_flags_csv(store, key, "flags.csv")
>>> export_clean(ds, "mars_clean.npz", excluded_ids(store, key))
{'path': '.../mars_clean.npz', 'kind': 'npz', 'n_images': 2590, 'n_excluded': 10, ...}

A cleaned copy has the format the dataset came in, minus the images whose review state is
"exclude": a folder keeps its relative layout and every other file (classes.json included);
an .npz keeps its arrays (``training_set``/``images``+``masks``/``test_set``/``class_map``)
minus the excluded rows, so its zero-padded ids are renumbered. Everything is written under a
temporary name next to the destination and renamed at the end: a copy is whole or absent.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from ..atomic import atomic_write_bytes
from ..data.dataset import CLASS_MAP_FILE, SegDataset
from ..data.folder import FolderDataset
from ..data.npz import NpzDataset
from .store import COLUMNS, ReviewStore


def flags_frame(store: ReviewStore, key: str):
    """The current decisions as a DataFrame with the CSV's columns."""
    return store.decisions(key)[COLUMNS]


def export_flags_csv(store: ReviewStore, key: str, path: str | Path) -> Path:
    """Write the current decision of every reviewed image (columns of ``store.decisions``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = flags_frame(store, key).to_csv(index=False)
    atomic_write_bytes(path, text.encode("utf-8"))
    return path


def excluded_ids(store: ReviewStore, key: str) -> list[str]:
    """Ids whose current state is "exclude"."""
    return [i for i, s in store.states(key).items() if s == "exclude"]


def default_clean_path(ds: SegDataset, root: str | Path) -> Path:
    """``<root>/<name>-clean`` (folder) or ``<root>/<name>-clean.npz``."""
    return Path(root) / (f"{ds.name}-clean.npz" if ds.kind == "npz" else f"{ds.name}-clean")


def export_clean(ds: SegDataset, out: str | Path, exclude: Iterable[str], overwrite: bool = False) -> dict:
    """Write a copy of ``ds`` without the images in ``exclude``.

    Returns {"path", "kind", "n_images", "n_excluded", "excluded", "unknown"}: ``unknown`` lists
    ids the dataset does not have (skipped). Raises FileExistsError when ``out`` exists and
    ``overwrite`` is False, ValueError for a dataset kind it cannot copy.
    """
    out = Path(out).expanduser().resolve()
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out}: already exists; choose another path or overwrite it")
    if out == Path(ds.source).resolve():
        raise ValueError(f"{out}: the cleaned copy cannot replace the dataset it is made from")
    wanted = list(dict.fromkeys(str(i) for i in exclude))
    known = set(ds.all_ids)
    drop = [i for i in wanted if i in known]
    unknown = [i for i in wanted if i not in known]
    out.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(ds, NpzDataset):
        n_kept = _clean_npz(ds, out, drop, overwrite)
    elif isinstance(ds, FolderDataset):
        n_kept = _clean_folder(ds, out, drop, overwrite)
    else:
        raise ValueError(f"{ds.source}: cannot export a {ds.kind} dataset")
    return {"path": str(out), "kind": ds.kind, "n_images": n_kept, "n_excluded": len(drop),
            "excluded": drop, "unknown": unknown}


# --- folders -------------------------------------------------------------------------------
def _clean_folder(ds: FolderDataset, out: Path, drop: list[str], overwrite: bool) -> int:
    skip = set()
    for image_id in drop:
        s = ds.samples[image_id]
        skip.add(Path(s.image_path).resolve())
        if s.mask_path:
            skip.add(Path(s.mask_path).resolve())
    src = Path(ds.source).resolve()
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        for dirpath, dirnames, filenames in os.walk(src):
            dirnames.sort()
            rel = Path(dirpath).relative_to(src)
            (tmp / rel).mkdir(parents=True, exist_ok=True)
            for name in sorted(filenames):
                f = Path(dirpath) / name
                if f.resolve() not in skip:
                    shutil.copy2(f, tmp / rel / name)
        _swap_in(tmp, out, overwrite)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return len(set(ds.all_ids) - set(drop))


# --- npz -----------------------------------------------------------------------------------
def _rows_to_drop(ds: NpzDataset, drop: list[str]) -> dict[str, set[int]]:
    """{array name: row indices} of the excluded images and their masks."""
    rows: dict[str, set[int]] = {}
    for image_id in drop:
        for key, row in ds.rows_of(image_id).items():
            rows.setdefault(key, set()).add(row)
    return rows


def _clean_npz(ds: NpzDataset, out: Path, drop: list[str], overwrite: bool) -> int:
    with np.load(ds.source, allow_pickle=False) as z:
        keys = list(z.files)
        rows = _rows_to_drop(ds, drop)
        arrays = {}
        for k in keys:
            a = z[k]
            if k in rows and a.ndim >= 1:
                keep = np.ones(len(a), bool)
                keep[sorted(r for r in rows[k] if r < len(a))] = False
                a = a[keep]
            arrays[k] = a
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez_compressed(f, **arrays)
        _swap_in(Path(tmp), out, overwrite)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _copy_class_map(ds, out)
    return len(ds.all_ids) - len(drop)


def _copy_class_map(ds: NpzDataset, out: Path) -> None:
    """A class map kept beside the .npz travels with the copy as ``<copy>.classes.json``."""
    src = Path(ds.source)
    for cand in (src.with_suffix(".classes.json"), src.parent / CLASS_MAP_FILE):
        if cand.exists():
            target = out.with_suffix(".classes.json")
            if cand.resolve() != target.resolve():
                atomic_write_bytes(target, cand.read_bytes())
            return


# --- helpers -------------------------------------------------------------------------------
def _swap_in(tmp: Path, out: Path, overwrite: bool) -> None:
    """Rename the finished copy into place; an old copy is moved aside first and removed after."""
    old = None
    if out.exists():
        if not overwrite:
            raise FileExistsError(f"{out}: already exists")
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        os.replace(out, old)
    os.replace(tmp, out)
    if old is not None and old.is_dir():
        shutil.rmtree(old, ignore_errors=True)
    elif old is not None:
        old.unlink(missing_ok=True)
