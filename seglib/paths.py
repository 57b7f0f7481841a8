"""Where seglib keeps its files: the data folder (demo data, review database, saved
pipelines) and the cache (statistics and other results keyed by dataset content)."""
from __future__ import annotations

import os
from pathlib import Path


def data_dir() -> Path:
    """``$SEGLIB_DATA_DIR``, else ``~/.seglib``. The app sets it to ``<repo>/data``."""
    d = Path(os.environ.get("SEGLIB_DATA_DIR") or Path.home() / ".seglib").expanduser()
    d.mkdir(parents=True, exist_ok=True)
    return d


def cache_dir() -> Path:
    """``$SEGLIB_CACHE_DIR``, else ``<data_dir>/cache``."""
    env = os.environ.get("SEGLIB_CACHE_DIR")
    d = Path(env).expanduser() if env else data_dir() / "cache"
    d.mkdir(parents=True, exist_ok=True)
    return d


def demo_path() -> Path:
    """The demo dataset the app opens when no dataset is chosen."""
    return data_dir() / "demo" / "mars_demo.npz"
