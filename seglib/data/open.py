"""Open a dataset by path: a folder of images and masks, or an .npz file."""
from __future__ import annotations

import os
from pathlib import Path

from .dataset import DatasetError, SegDataset
from .folder import FolderDataset
from .npz import NpzDataset


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
