"""Cached access to the current dataset and its statistics (the only place pages get them)."""
from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import pandas as pd
import streamlit as st

from seglib import paths
from seglib.data import DatasetError, SegDataset, open_dataset
from seglib.data.classmap import class_files_state
from seglib.data.demo import write_demo
from seglib.review import ReviewStore, dataset_key, default_url
from seglib.review.corrections import apply_corrections
from seglib.review.versions import MaskVersions
from seglib.stats import DatasetStats, compute_stats

from . import roots, state
from .progress import eta_text


@dataclass(frozen=True)
class Loaded:
    """A dataset with its statistics. Shared across sessions: read it, never change it.

    ``fingerprint`` is read once here (a folder stats every file for it), so pages key their
    caches on it without touching the disk on every rerun."""

    path: str
    ds: SegDataset
    stats: DatasetStats
    fingerprint: str
    files_fingerprint: str = ""   # the files' alone (no corrections); "" = the same as fingerprint

    def image_key(self, image_id: str) -> str:
        """What one image's pictures depend on: the files, and its corrected mask's version. A
        correction changes the key of its image only (thumbnails of the others stay cached)."""
        overlay = self.ds.corrections
        version = overlay.versions.get(image_id, 0) if overlay is not None else 0
        return f"{self.files_fingerprint or self.fingerprint}|{version}"

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


# --- long first passes: a progress bar, and a pass that survives reruns ------------------------
@dataclass
class _Pass:
    """A computation running in a background thread: its progress, result or error."""

    done: int = 0
    total: int = 0
    started: float | None = None   # when the first (done, total) came: the rate is measured from there
    done0: int = 0
    result: object = None
    error: BaseException | None = None
    thread: threading.Thread | None = field(default=None, repr=False)

    def update(self, done: int, total: int) -> None:
        if self.started is None:
            self.started, self.done0 = time.monotonic(), done
        self.done, self.total = done, total


class Memo:
    """At most ``size`` values by key, least recently used dropped first; thread-safe."""

    def __init__(self, size: int):
        self.size, self._data, self._lock = size, OrderedDict(), threading.Lock()

    def get(self, key: Hashable) -> tuple[bool, object]:
        with self._lock:
            if key not in self._data:
                return False, None
            self._data.move_to_end(key)
            return True, self._data[key]

    def put(self, key: Hashable, value) -> None:
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self.size:
                self._data.popitem(last=False)


@st.cache_resource(show_spinner=False)
def _passes() -> tuple[dict, threading.Lock]:
    return {}, threading.Lock()


def background_pass(memo: Memo, key: Hashable, compute: Callable, label: str, after: str = "") -> object:
    """``memo``'s value under ``key``, else ``compute(progress)`` run once in a background thread
    while this script run draws a bar: "label: 300 / 2,000 images · about 40 s left" (then
    ``after`` once every image is done). The thread is shared: a rerun (any click, another page,
    another session) attaches to the running pass instead of starting it over, which a pass run
    inside the script would do. Nothing is drawn when the value is at hand."""
    found, value = memo.get(key)
    if found:
        return value
    passes, lock = _passes()
    with lock:
        found, value = memo.get(key)  # finished while this run waited for the lock
        if found:
            return value
        run = passes.get(key)
        if run is None:
            run = passes[key] = _Pass()

            def work() -> None:
                try:
                    run.result = compute(run.update)
                    memo.put(key, run.result)
                except BaseException as e:  # handed to the script run that waits for it
                    run.error = e
            run.thread = threading.Thread(target=work, name=f"seglib-pass-{label}", daemon=True)
            run.thread.start()
    bar, waited = None, time.monotonic()
    while run.thread.is_alive():
        run.thread.join(0.25)
        if not run.thread.is_alive() or not run.total and time.monotonic() - waited < 0.5:
            continue
        if bar is None:
            bar = st.progress(0.0, text=f"{label}…")
        if run.total and run.done >= run.total and after:
            bar.progress(1.0, text=after)
        elif run.total:
            bar.progress(min(run.done / run.total, 1.0), text=f"{label}: {run.done:,} / {run.total:,} images"
                         + eta_text(time.monotonic() - run.started, run.done - run.done0, run.total - run.done))
    if bar is not None:
        bar.empty()
    with lock:
        if passes.get(key) is run:
            del passes[key]  # done: the memo holds the value (an error is tried again next time)
    if run.error is not None:
        raise run.error
    return run.result


@st.cache_resource(show_spinner=False)
def _datasets() -> Memo:
    """Loaded datasets, shared by the sessions: a few (the app switches between them)."""
    return Memo(4)


def _open_and_measure(path: str, unlabeled: str, progress) -> Loaded:
    ds = open_dataset(path, [unlabeled] if unlabeled else ())
    stats = compute_stats(ds, progress=progress)  # from the on-disk cache when the files did not change
    return Loaded(path, ds, stats, ds.fingerprint())


def _load_files(path: str, reload: int, class_files: str, unlabeled: str = "") -> Loaded:
    """Keyed on the class files' state too: an edited classes.json shows on the next rerun or reload
    (the images' own changes wait for "Rescan files": stating every file on each rerun costs too much)."""
    return background_pass(_datasets(), (path, reload, class_files, unlabeled),
                           lambda progress: _open_and_measure(path, unlabeled, progress),
                           "Reading the images for the statistics")


@st.cache_resource(show_spinner=False)
def _corrected() -> Memo:
    """Corrected views of the loaded datasets, by their corrections: a save adds one."""
    return Memo(8)


def _with_corrections(files: Loaded, latest: dict[str, int]) -> Loaded:
    """The loaded dataset with its latest corrected masks laid over the files. The statistics
    measure the corrected images again and take the rest from the files' (one image per save)."""
    ds = apply_corrections(files.ds, review_store(), latest)
    return Loaded(files.path, ds, compute_stats(ds), ds.fingerprint(), files.fingerprint)


def _load(path: str, reload: int, unlabeled: str = "") -> Loaded:
    """The dataset at ``path`` (with the images of the folder ``unlabeled``) as the app shows it:
    with its corrections unless the sidebar's "Original masks" is on. The corrections are looked
    up on every run (one small query), so a mask saved in another tab or by the CLI shows on the
    next click."""
    class_files = class_files_state(path)
    files = _load_files(path, reload, class_files, unlabeled)
    if st.session_state.get(state.ORIGINAL_MASKS) or not files.ds.all_ids:
        return files
    latest = {i: n for i, n in MaskVersions(review_store()).latest(dataset_key(files.ds)).items() if i in files.ds}
    if not latest:
        return files
    key = (path, reload, class_files, unlabeled, tuple(sorted(latest.items())))
    found, loaded = _corrected().get(key)
    if not found:
        loaded = _with_corrections(files, latest)
        _corrected().put(key, loaded)
    return loaded


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


def unlabeled_problem(folder: str) -> str | None:
    """Why ``folder`` cannot join the current dataset as its new unlabeled images (one line), or
    None when it opens with it (then loaded and cached)."""
    path, resolved = roots.allowed(current_path()), roots.allowed(folder)
    if path is None or resolved is None:
        return "refused"   # roots.allowed has shown why
    try:
        loaded = _load(str(path), st.session_state.get(state.RELOAD, 0), str(resolved))
    except DatasetError as e:
        return str(e)
    if not any(i.startswith(resolved.name + "/") for i in loaded.ds.all_ids):
        return f"{folder}: no image in it joined the dataset (see the sidebar's report)"
    return None


def current_unlabeled() -> str:
    """The folder of new unlabeled images joining the dataset (resolved), or "" for none."""
    folder = st.session_state.get(state.UNLABELED, "")
    resolved = roots.allowed(folder) if folder else None
    return str(resolved) if resolved is not None else ""


def current() -> Loaded | None:
    """The dataset chosen in the sidebar, or None after showing why it cannot be opened.

    The path may come from the URL (``?dataset=``), so it is checked against the dataset roots
    first; the resolved path (no links or ``..`` left in it) is what opens. A folder of new
    unlabeled images (``?unlabeled=``, the Label page's Label next) joins it."""
    path = roots.allowed(current_path())
    if path is None:
        return None
    try:
        loaded = _load(str(path), st.session_state.get(state.RELOAD, 0), current_unlabeled())
    except DatasetError as e:
        st.error(str(e))
        return None
    if not loaded.ds.all_ids:  # no image file at all: no page has anything to show (unreadable ones: Home's report)
        st.error(loaded.ds.empty_reason(), icon=":material/folder_off:")
        return None
    return loaded


def with_images() -> Loaded:
    """The current dataset when it has a readable image; otherwise says why and stops the page
    (images found but none readable: Home's report says which and why)."""
    loaded = current()
    if loaded is None:
        st.stop()
    if not loaded.ds.ids:
        st.error(loaded.ds.empty_reason(), icon=":material/image_not_supported:")
        st.stop()
    return loaded
