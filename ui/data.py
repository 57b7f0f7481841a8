"""Cached access to the current dataset and its statistics (the only place pages get them)."""
from __future__ import annotations

import hashlib
import io
import shutil
import zipfile
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import pandas as pd
import streamlit as st

from seglib import paths
from seglib.data import DatasetError, SegDataset, open_dataset
from seglib.data.demo import write_demo
from seglib.stats import DatasetStats, compute_stats

from . import state


@dataclass(frozen=True)
class Loaded:
    """A dataset with its statistics. Shared across sessions: read it, never change it.

    ``fingerprint`` is read once here (a folder stats every file for it), so pages key their
    caches on it without touching the disk on every rerun."""

    path: str
    ds: SegDataset
    stats: DatasetStats
    fingerprint: str

    @cached_property
    def per_image(self) -> pd.DataFrame:
        """``stats.per_image``, built once per loaded dataset."""
        return self.stats.per_image


@st.cache_resource(show_spinner="Generating the demo dataset (once)…")
def _ensure_demo(path: str) -> str:
    if not Path(path).exists():
        write_demo(path)
    return path


def ensure_demo() -> str:
    # Keyed by the path: the data folder may differ between runs in one process (tests).
    path = paths.demo_path()
    if not path.exists():
        _ensure_demo.clear()  # deleted since: make it again
    return _ensure_demo(str(path))


@st.cache_resource(max_entries=4, show_spinner="Reading the dataset and computing statistics…")
def _load(path: str, reload: int) -> Loaded:
    ds = open_dataset(path)
    st_ = compute_stats(ds)
    return Loaded(path, ds, st_, ds.fingerprint())


def current_path() -> str:
    return st.session_state.get(state.DATASET) or ensure_demo()


def current() -> Loaded | None:
    """The dataset chosen in the sidebar, or None after showing why it cannot be opened."""
    path = current_path()
    try:
        return _load(path, st.session_state.get(state.RELOAD, 0))
    except DatasetError as e:
        st.error(str(e))
        return None


def save_upload(name: str, data: bytes) -> str:
    """Store an uploaded .npz, or unpack an uploaded .zip, under the data folder; return its path."""
    digest = hashlib.sha1(data).hexdigest()[:12]
    root = paths.data_dir() / "uploads"
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
                    for member in zf.namelist():
                        target = (tmp / member).resolve()
                        if not str(target).startswith(str(tmp.resolve())):
                            raise DatasetError(f"{name}: unsafe path inside the zip: {member}")
                    zf.extractall(tmp)
            except zipfile.BadZipFile as e:
                raise DatasetError(f"{name}: not a readable zip file ({e})") from None
            tmp.replace(out)
        # A zip usually holds one top folder: open that.
        entries = [p for p in out.iterdir() if not p.name.startswith((".", "__MACOSX"))]
        return str(entries[0] if len(entries) == 1 and entries[0].is_dir() else out)
    raise DatasetError(f"{name}: upload a .npz file or a .zip of a dataset folder")
