"""Datasets that arrive as bytes (the app's upload box): an .npz is stored, a .zip of a dataset
folder is unpacked, both under the data folder and named by their content.

>>> path = save_upload("cells.zip", data)        # <data_dir>/uploads/cells-<sha1>/cells
>>> ds = open_dataset(path)

Uploads come from whoever can reach the app, so an archive (a .zip, and an .npz, which is a zip
too) is checked before anything is written, against :class:`ZipLimits`: its unpacked size, its
number of files and its compression ratio (a zip bomb is refused, not half unpacked). Member
paths must stay inside the target folder (real path containment, not a string prefix), and
links inside a zip are refused. A zip is unpacked into a temporary folder that is renamed when
complete, or removed on any error: a failed upload leaves nothing behind.
"""
from __future__ import annotations

import hashlib
import io
import os
import shutil
import stat
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from .. import paths
from .dataset import DatasetError

MIB = 1 << 20
RATIO_FREE_BYTES = 16 * MIB  # archives unpacking to less than this are not ratio-checked: too small to hurt


def _env_number(name: str, default: float) -> float:
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        return float(value.replace("_", ""))
    except ValueError:
        raise ValueError(f"{name}={value!r} is not a number") from None


@dataclass(frozen=True)
class ZipLimits:
    """What an uploaded archive may unpack to. Defaults from the environment:

    ``SEGLIB_UPLOAD_MAX_UNPACKED_MB`` (4096): total size of the unpacked files;
    ``SEGLIB_UPLOAD_MAX_FILES`` (100,000): number of members;
    ``SEGLIB_UPLOAD_MAX_RATIO`` (100): unpacked size / archive size. Images and PNG masks are
    compressed already and barely shrink in a zip; a 1000:1 member is a bomb, not a dataset."""

    max_unpacked_bytes: int = 4096 * MIB
    max_files: int = 100_000
    max_ratio: float = 100.0

    @classmethod
    def from_env(cls) -> ZipLimits:
        return cls(int(_env_number("SEGLIB_UPLOAD_MAX_UNPACKED_MB", 4096) * MIB),
                   int(_env_number("SEGLIB_UPLOAD_MAX_FILES", 100_000)),
                   _env_number("SEGLIB_UPLOAD_MAX_RATIO", 100.0))


def _size(n: float) -> str:
    return f"{n / MIB:,.1f} MB" if n >= MIB else f"{int(n):,} bytes"


def _is_link(info: zipfile.ZipInfo) -> bool:
    # Unix zips keep the file mode in the high 16 bits of external_attr.
    return stat.S_ISLNK(info.external_attr >> 16)


def check_archive(name: str, zf: zipfile.ZipFile, archive_bytes: int, limits: ZipLimits) -> None:
    """Raise DatasetError if the archive is too big unpacked, has too many files, or expands
    suspiciously. Reads the central directory only: nothing is decompressed."""
    infos = zf.infolist()
    total = sum(i.file_size for i in infos)
    if len(infos) > limits.max_files:
        raise DatasetError(f"{name}: {len(infos):,} files in the zip, more than the limit of "
                           f"{limits.max_files:,} (SEGLIB_UPLOAD_MAX_FILES)")
    if total > limits.max_unpacked_bytes:
        raise DatasetError(f"{name}: unpacks to {_size(total)}, more than the limit of "
                           f"{_size(limits.max_unpacked_bytes)} (SEGLIB_UPLOAD_MAX_UNPACKED_MB)")
    ratio = total / max(archive_bytes, 1)
    if total > RATIO_FREE_BYTES and ratio > limits.max_ratio:
        raise DatasetError(f"{name}: unpacks to {ratio:,.0f} times its size (limit {limits.max_ratio:g}, "
                           "SEGLIB_UPLOAD_MAX_RATIO); this looks like a zip bomb, not a dataset")


def check_members(name: str, zf: zipfile.ZipFile, target: Path) -> None:
    """Raise DatasetError for a member that is a link or would land outside ``target``."""
    inside = target.resolve()
    for info in zf.infolist():
        if _is_link(info):
            raise DatasetError(f"{name}: links are not allowed inside the zip: {info.filename}")
        # Real containment: a string prefix check would accept "../<target>-other/x".
        if not (inside / info.filename).resolve().is_relative_to(inside):
            raise DatasetError(f"{name}: unsafe path inside the zip: {info.filename}")


def _unpack(zf: zipfile.ZipFile, target: Path) -> None:
    """Write every member under ``target`` (already checked by :func:`check_members`)."""
    for info in zf.infolist():
        dest = target / info.filename
        if info.is_dir():
            dest.mkdir(parents=True, exist_ok=True)
            continue
        dest.parent.mkdir(parents=True, exist_ok=True)
        # zipfile stops at the declared size and checks the CRC: a member cannot outgrow its header.
        with zf.open(info) as src, open(dest, "wb") as out:
            shutil.copyfileobj(src, out, MIB)


def _open_zip(name: str, data: bytes) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as e:
        raise DatasetError(f"{name}: not a readable zip file ({e})") from None


def _save_npz(name: str, data: bytes, out: Path, limits: ZipLimits) -> None:
    with _open_zip(name, data) as zf:  # an .npz is a zip of .npy arrays: the same bomb checks apply
        check_archive(name, zf, len(data), limits)
    if not out.exists():
        tmp = out.with_suffix(".tmp")
        tmp.write_bytes(data)
        tmp.replace(out)


def _save_zip(name: str, data: bytes, out: Path, limits: ZipLimits) -> None:
    with _open_zip(name, data) as zf:
        check_archive(name, zf, len(data), limits)
        if out.exists():
            return
        tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}."))
        try:
            check_members(name, zf, tmp)
            _unpack(zf, tmp)
        except DatasetError:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        except (zipfile.BadZipFile, OSError, RuntimeError, NotImplementedError, EOFError) as e:
            # what zipfile raises on damaged data (BadZipFile, EOFError), a bad CRC or an encrypted
            # member (RuntimeError), a compression method it lacks (NotImplementedError), a full disk
            shutil.rmtree(tmp, ignore_errors=True)
            raise DatasetError(f"{name}: cannot unpack ({e})") from None
    try:
        tmp.replace(out)
    except OSError:  # another session unpacked the same bytes first
        shutil.rmtree(tmp, ignore_errors=True)
        if not out.exists():
            raise


def save_upload(name: str, data: bytes, root: str | Path | None = None, limits: ZipLimits | None = None) -> str:
    """Store an uploaded .npz, or unpack an uploaded .zip, under ``root`` (default
    ``<data_dir>/uploads``); return the path to open. The same bytes land in the same place, once.
    Raises DatasetError (naming the upload) for an unsafe or unknown upload; nothing is left behind."""
    limits = limits or ZipLimits.from_env()
    digest = hashlib.sha1(data).hexdigest()[:12]
    root = Path(root) if root is not None else paths.data_dir() / "uploads"
    root.mkdir(parents=True, exist_ok=True)
    lower = name.lower()
    if lower.endswith(".npz"):
        out = root / f"{Path(name).stem}-{digest}.npz"
        _save_npz(name, data, out, limits)
        return str(out)
    if lower.endswith(".zip"):
        out = root / f"{Path(name).stem}-{digest}"
        _save_zip(name, data, out, limits)
        # A zip usually holds one top folder: open that.
        entries = [p for p in out.iterdir() if not p.name.startswith((".", "__MACOSX"))]
        return str(entries[0] if len(entries) == 1 and entries[0].is_dir() else out)
    raise DatasetError(f"{name}: upload a .npz file or a .zip of a dataset folder")
