"""A small on-disk cache for arrays and tables keyed by dataset content.

Entries are ``<cache_dir>/<namespace>/<key>.npz`` written atomically; a damaged entry is
treated as a miss and recomputed, never an error.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np

from .paths import cache_dir


def _entry(namespace: str, key: str, root: Path | None) -> Path:
    d = (root or cache_dir()) / namespace
    d.mkdir(parents=True, exist_ok=True)
    return d / f"{key}.npz"


def load(namespace: str, key: str, root: Path | None = None) -> dict | None:
    """The stored arrays (and ``meta`` JSON as a dict), or None on a miss."""
    path = _entry(namespace, key, root)
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            out = {k: z[k] for k in z.files}
        if "__meta__" in out:
            out["meta"] = json.loads(str(out.pop("__meta__")))
        return out
    except Exception:
        path.unlink(missing_ok=True)  # damaged: recompute
        return None


def save(namespace: str, key: str, arrays: dict, meta: dict | None = None, root: Path | None = None) -> Path:
    path = _entry(namespace, key, root)
    payload = dict(arrays)
    if meta is not None:
        payload["__meta__"] = np.array(json.dumps(meta))
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **payload)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
