"""Caches keyed by dataset content: on disk for arrays and tables, and a small in-process LRU.

Disk entries are ``<cache_dir>/<namespace>/<key>.npz`` written atomically; a damaged entry is
treated as a miss and recomputed, never an error. :class:`LRU` holds a few large results in
memory, shared safely by every browser session and training thread of a process.
"""
from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Generic, TypeVar

import numpy as np

from .atomic import atomic_write
from .paths import cache_dir

V = TypeVar("V")


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
    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:  # a file object: np.savez would append ".npz" to a name
            np.savez(f, **payload)

    atomic_write(path, write)
    return path


class LRU(Generic[V]):
    """At most ``size`` values by key, the least recently used dropped first; thread-safe.

    ``get_or_compute(key, fn)`` runs ``fn`` once per key even when several threads ask at
    once (the others wait for its result); different keys compute in parallel."""

    def __init__(self, size: int):
        if size < 1:
            raise ValueError("an LRU holds at least one value")
        self.size = size
        self._data: OrderedDict[Hashable, V] = OrderedDict()
        self._computing: dict[Hashable, threading.Lock] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._data)

    def __contains__(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._data

    def _hit(self, key: Hashable) -> tuple[bool, V | None]:
        with self._lock:
            if key in self._data:
                self._data.move_to_end(key)
                return True, self._data[key]
            return False, None

    def get_or_compute(self, key: Hashable, compute: Callable[[], V]) -> V:
        found, value = self._hit(key)
        if found:
            return value
        with self._lock:
            key_lock = self._computing.setdefault(key, threading.Lock())
        with key_lock:
            found, value = self._hit(key)  # computed by another thread while this one waited
            if found:
                return value
            try:
                value = compute()
                with self._lock:
                    self._data[key] = value
                    self._data.move_to_end(key)
                    while len(self._data) > self.size:
                        self._data.popitem(last=False)
            finally:
                with self._lock:
                    self._computing.pop(key, None)
            return value

    def clear(self) -> None:
        with self._lock:
            self._data.clear()

