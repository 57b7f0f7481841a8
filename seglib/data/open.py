"""Open a dataset by path: a folder of images and masks, or an .npz file."""
from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from .dataset import DatasetError, SegDataset
from .folder import FolderDataset
from .npz import NpzDataset


def open_dataset(path: str | os.PathLike, unlabeled: Sequence[str | os.PathLike] = ()) -> SegDataset:
    """Open a folder or .npz dataset, with the images of the ``unlabeled`` folders joining it as
    unlabeled ones (a new batch received elsewhere; folder datasets only). Raises DatasetError
    only when nothing can be opened; every other problem lands in ``dataset.report``."""
    p = Path(path).expanduser()
    if not p.exists():
        raise DatasetError(f"{p}: no such file or folder")
    for folder in unlabeled:
        if not Path(folder).expanduser().is_dir():
            raise DatasetError(f"{folder}: not a folder of unlabeled images")
    if p.is_dir():
        return FolderDataset(p, unlabeled=unlabeled)
    if unlabeled:
        raise DatasetError(f"{p}: unlabeled images from another folder join a folder dataset, not an .npz file "
                           "(write the .npz out as images/ + masks/ first)")
    if p.suffix.lower() == ".npz":
        return NpzDataset(p)
    raise DatasetError(f"{p}: not a dataset (expected a folder of images and masks, or an .npz file)")
