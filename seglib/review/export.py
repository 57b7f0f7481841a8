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

import io
import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from PIL import Image

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
    """Write a copy of ``ds`` without the images in ``exclude``, with its corrected masks (when
    ``ds`` is a corrected view: ``seglib.review.corrections.apply_corrections``) written in the
    dataset's own encoding in place of the files' (a new label of an unlabeled image too).

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
    fixed = [i for i in ds.corrected_ids if i not in set(drop)]
    return {"path": str(out), "kind": ds.kind, "n_images": n_kept, "n_excluded": len(drop),
            "excluded": drop, "unknown": unknown, "corrected": fixed}


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
        for image_id in ds.corrected_ids:
            if image_id not in set(drop):
                _write_corrected_mask(ds, image_id, src, tmp)
        _swap_in(tmp, out, overwrite)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return len(set(ds.all_ids) - set(drop))


def _encoded(ds: SegDataset, ids: np.ndarray) -> Image.Image:
    """Class ids as the dataset stores masks: colours, a palette, {0, 255} or the ids."""
    cmap = ds.class_map
    if ds.encoding in ("rgb", "palette"):
        colours = np.zeros((256, 3), np.uint8)
        for c in cmap:
            colours[c.id] = c.rgb
        if ds.encoding == "rgb":
            return Image.fromarray(colours[ids])
        im = Image.fromarray(ids, "L").convert("P")
        im.putpalette(colours.ravel().tolist())
        return im
    if ds.encoding == "binary":
        return Image.fromarray(np.where(ids == 1, 255, ids).astype(np.uint8))
    return Image.fromarray(ids)


def _mask_target(ds: FolderDataset, image_id: str, src: Path) -> Path:
    """Where the copy holds the image's mask: its own file, as a PNG; for a new label, beside the
    masks of the other images of its folder, named as they are (else ``masks/`` beside it)."""
    s = ds.samples[image_id]
    if s.mask_path is not None:
        return Path(s.mask_path).resolve().relative_to(src).with_suffix(".png")
    image = Path(s.image_path).resolve()
    for other in ds.samples.values():
        if other.mask_path is not None and Path(other.image_path).resolve().parent == image.parent:
            mask, stem = Path(other.mask_path).resolve(), Path(other.image_path).stem
            extra = mask.stem[len(stem):] if mask.stem.startswith(stem) else ""
            return (mask.parent / f"{image.stem}{extra}.png").relative_to(src)
    return (image.parent.parent / "masks" / f"{image.stem}.png").relative_to(src)


def _write_corrected_mask(ds: FolderDataset, image_id: str, src: Path, tmp: Path) -> None:
    target = tmp / _mask_target(ds, image_id, src)
    old = ds.samples[image_id].mask_path
    if old is not None and Path(old).suffix.lower() != ".png":
        (tmp / Path(old).resolve().relative_to(src)).unlink(missing_ok=True)  # the PNG replaces it
    target.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    _encoded(ds, ds.mask(image_id)).save(buf, format="PNG")
    target.write_bytes(buf.getvalue())


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
    _corrections_into(ds, arrays, set(drop))
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


def _corrections_into(ds: NpzDataset, arrays: dict, drop: set[str]) -> None:
    """Corrected masks over their rows (after the excluded rows left); a new label moves its image
    from the unlabeled array to the end of the labeled ones."""
    fixed = [i for i in ds.corrected_ids if i not in drop]
    if not fixed:
        return
    img_key, mask_key = ds._labeled_keys
    kept_before = {}  # labeled row -> its row in the copy
    dropped = {r for i in drop for k, r in ds.rows_of(i).items() if k == mask_key}
    n = 0
    for row in range(ds._n_lab):
        if row not in dropped:
            kept_before[row] = n
            n += 1
    binary = ds.encoding == "binary" and mask_key in arrays and arrays[mask_key].size and arrays[mask_key].max() > 1
    new_rows: list[tuple[str, np.ndarray, np.ndarray]] = []
    for image_id in fixed:
        mask = ds.mask(image_id)
        raw = np.where(mask == 1, 255, mask) if binary else mask
        rows = ds.rows_of(image_id)
        if mask_key in rows:
            r = kept_before[rows[mask_key]]
            if img_key == mask_key:          # Kaggle layout: (N, 2, H, W)
                arrays[mask_key][r, 1] = raw
            else:
                arrays[mask_key][r] = raw
        else:
            new_rows.append((image_id, np.asarray(ds.image(image_id)), raw))
    if not new_rows or mask_key not in arrays:
        return
    unl = ds._unlabeled_key
    left_out = sorted(r for i in drop for k, r in ds.rows_of(i).items() if k == unl)
    gone = sorted(r - int(np.searchsorted(left_out, r)) for r in (ds.rows_of(i)[unl] for i, _, _ in new_rows))
    lab = arrays[mask_key]
    if img_key == mask_key:
        add = np.stack([np.stack([im.astype(lab.dtype), m.astype(lab.dtype)]) for _, im, m in new_rows])
        arrays[mask_key] = np.concatenate([lab, add])
    else:
        images = arrays[img_key]
        add_img = np.stack([im.reshape(images.shape[1:]).astype(images.dtype) for _, im, _ in new_rows])
        arrays[img_key] = np.concatenate([images, add_img])
        arrays[mask_key] = np.concatenate([lab, np.stack([m.astype(lab.dtype) for _, _, m in new_rows])])
    if unl in arrays and unl != img_key:
        arrays[unl] = np.delete(arrays[unl], gone, axis=0)


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
