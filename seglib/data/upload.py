"""Datasets that arrive as bytes (the app's upload box): an .npz is stored, a .zip of a dataset
folder is unpacked, both under the data folder and named by their content.

>>> path = save_upload("cells.zip", data)        # <data_dir>/uploads/cells-<sha1>/cells
>>> ds = open_dataset(path)

A .zip whose members would land outside its folder (``../`` paths) is refused.
"""
from __future__ import annotations

import hashlib
import io
import shutil
import zipfile
from pathlib import Path

from .. import paths
from .dataset import DatasetError


def save_upload(name: str, data: bytes, root: str | Path | None = None) -> str:
    """Store an uploaded .npz, or unpack an uploaded .zip, under ``root`` (default
    ``<data_dir>/uploads``); return the path to open. The same bytes land in the same place, once."""
    digest = hashlib.sha1(data).hexdigest()[:12]
    root = Path(root) if root is not None else paths.data_dir() / "uploads"
    root.mkdir(parents=True, exist_ok=True)
    if name.lower().endswith(".npz"):
        out = root / f"{Path(name).stem}-{digest}.npz"
        if not out.exists():
            tmp = out.with_suffix(".tmp")
            tmp.write_bytes(data)
            tmp.replace(out)
        return str(out)
    if name.lower().endswith(".zip"):
        out = root / f"{Path(name).stem}-{digest}"
        if not out.exists():
            tmp = root / f".{out.name}.tmp"
            shutil.rmtree(tmp, ignore_errors=True)  # left by an earlier failed upload
            try:
                with zipfile.ZipFile(io.BytesIO(data)) as zf:
                    inside = tmp.resolve()
                    for member in zf.namelist():
                        if not (tmp / member).resolve().is_relative_to(inside):
                            raise DatasetError(f"{name}: unsafe path inside the zip: {member}")
                    zf.extractall(tmp)
            except zipfile.BadZipFile as e:
                raise DatasetError(f"{name}: not a readable zip file ({e})") from None
            tmp.replace(out)
        # A zip usually holds one top folder: open that.
        entries = [p for p in out.iterdir() if not p.name.startswith((".", "__MACOSX"))]
        return str(entries[0] if len(entries) == 1 and entries[0].is_dir() else out)
    raise DatasetError(f"{name}: upload a .npz file or a .zip of a dataset folder")
