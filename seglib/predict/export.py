"""Predicted masks on disk: one index PNG per image id (ids with '/' become subfolders),
optional coloured previews, and for an npz dataset one npz of masks in input order. The CLI's
``predict`` and the Compare page's export both write through here."""
from __future__ import annotations

import io
import zipfile
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image

from ..atomic import atomic_write_bytes
from .column import Column

COLOUR_DIR = "colour"
NPZ_NAME = "masks.npz"


def id_path(root: Path, image_id: str, suffix: str = ".png") -> Path:
    """``root/<id><suffix>``; ValueError for an id that would leave ``root`` (absolute, '..')."""
    parts = PurePosixPath(image_id).parts
    if not parts or PurePosixPath(image_id).is_absolute() or ".." in parts:
        raise ValueError(f"image id {image_id!r} cannot be used as a file name")
    return Path(root).joinpath(*parts).with_name(parts[-1] + suffix)


def _png(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, "PNG", compress_level=3)
    return buf.getvalue()


def write_masks(column: Column, out: str | Path, ids: Sequence[str] | None = None, class_map=None,
                colour: bool = False, npz: bool = False) -> dict:
    """Write ``column``'s masks under ``out``: ``<id>.png`` (uint8 class ids), with ``colour``
    also ``colour/<id>.png`` (class colours of ``class_map``), with ``npz`` also ``masks.npz``
    (``masks`` (N, H, W) and ``ids`` (N,), in the order of ``ids``). Every file is written to a
    temporary name and renamed. Returns {"out", "written", "colour", "npz"}."""
    from ..viz import colorize

    out = Path(out)
    ids = list(column.ids if ids is None else ids)
    for image_id in ids:
        mask = column.mask(image_id)
        atomic_write_bytes(id_path(out, image_id), _png(mask))
        if colour:
            atomic_write_bytes(id_path(out / COLOUR_DIR, image_id), _png(colorize(mask, class_map)))
    npz_path = None
    if npz and ids:
        payload = _npz_bytes(column, ids)
        npz_path = out / NPZ_NAME
        atomic_write_bytes(npz_path, payload)
    return {"out": str(out), "written": len(ids), "colour": str(out / COLOUR_DIR) if colour else None,
            "npz": str(npz_path) if npz_path else None}


def _npz_bytes(column: Column, ids: Sequence[str]) -> bytes:
    masks = [column.mask(i) for i in ids]
    if len({m.shape for m in masks}) > 1:
        raise ValueError("masks of different sizes cannot share one npz array; use the PNG files")
    buf = io.BytesIO()
    np.savez_compressed(buf, masks=np.stack(masks), ids=np.array(ids))
    return buf.getvalue()


def masks_zip(column: Column, ids: Sequence[str] | None = None, class_map=None, colour: bool = False,
              npz: bool = False) -> bytes:
    """The same files as :func:`write_masks` in one zip, for a browser download (``masks.npz``
    with ``npz``, when the masks share one size)."""
    from ..viz import colorize

    ids = list(column.ids if ids is None else ids)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for image_id in ids:
            mask = column.mask(image_id)
            z.writestr(id_path(Path(""), image_id).as_posix(), _png(mask))
            if colour:
                z.writestr(id_path(Path(COLOUR_DIR), image_id).as_posix(), _png(colorize(mask, class_map)))
        if npz and ids:
            z.writestr(NPZ_NAME, _npz_bytes(column, ids), compress_type=zipfile.ZIP_STORED)  # already compressed
    return buf.getvalue()
