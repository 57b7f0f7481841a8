"""Cached access to the current dataset and its statistics (the only place pages get them)."""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import pandas as pd
import streamlit as st

from seglib import paths
from seglib.data import DatasetError, SegDataset, open_dataset
from seglib.data.demo import write_demo
from seglib.review import ReviewStore, default_url
from seglib.stats import DatasetStats, compute_stats

from . import roots, state


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
    stats = compute_stats(ds)
    return Loaded(path, ds, stats, ds.fingerprint())


@st.cache_resource(show_spinner=False)
def _review_store(url: str) -> ReviewStore:
    return ReviewStore(url)


def review_store() -> ReviewStore:
    """The review store of the current data folder: one per database URL in the process (one
    SQLAlchemy engine and its pool), shared by every page and session."""
    return _review_store(default_url())


def current_path() -> str:
    return st.session_state.get(state.DATASET) or ensure_demo()


def open_problem(path: str) -> str | None:
    """Why ``path`` cannot be the app's dataset (one line), or None when it opens with images in
    it (then it is loaded and cached, so switching to it costs nothing more). The sidebar asks
    before it switches: a path that does not open leaves the open dataset as it was."""
    resolved = roots.allowed(path)
    if resolved is None:
        return "refused"   # roots.allowed has shown why, naming the dataset roots
    if not resolved.exists():
        return f"{path}: no such file or folder"
    try:
        loaded = _load(str(resolved), st.session_state.get(state.RELOAD, 0))
    except DatasetError as e:
        return str(e)
    return None if loaded.ds.all_ids else loaded.ds.empty_reason()


def current() -> Loaded | None:
    """The dataset chosen in the sidebar, or None after showing why it cannot be opened.

    The path may come from the URL (``?dataset=``), so it is checked against the dataset roots
    first; the resolved path (no links or ``..`` left in it) is what opens."""
    path = roots.allowed(current_path())
    if path is None:
        return None
    try:
        loaded = _load(str(path), st.session_state.get(state.RELOAD, 0))
    except DatasetError as e:
        st.error(str(e))
        return None
    if not loaded.ds.all_ids:  # no image file at all: no page has anything to show (unreadable ones: Home's report)
        st.error(loaded.ds.empty_reason(), icon=":material/folder_off:")
        return None
    return loaded
