"""Class probabilities of recent prediction passes, kept in memory (float16, bounded in bytes).

A comparison stores per column only what it shows (masks, small confidence maps, confusions);
probabilities are too big to keep on disk. But a person who adds an ensemble, switches weights
or fits a weighted ensemble asks again for the probabilities the same models just computed:
kept here, those passes need no model. Every pass rounds probabilities to float16 whether or not
they come from here, so a column is the same bit for bit either way.

A pass over more than the budget holds keeps its first images, not its last: entries a pass
put or read are never pushed out by that same pass (it puts nothing more once they fill the
budget). Least-recently-used alone would keep the last images, and the next pass over the same
images, which asks for the first ones first, would push each out just before asking for it:
the whole budget held, never one hit (issue 22).
"""
from __future__ import annotations

import os
import threading
from collections import OrderedDict

import torch

DEFAULT_MB = 512


def _nbytes(t: torch.Tensor) -> int:
    return t.numel() * t.element_size()


class ProbabilityCache:
    """(model identity, TTA, image id) -> float16 (K, H, W) CPU tensor; least recently used out
    first, except the entries of the pass asking (``owner``: any object a pass holds, such as
    a fresh ``object()``; None: plain LRU)."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self._data: OrderedDict[tuple, tuple[torch.Tensor, object]] = OrderedDict()   # key -> (probs, owner)
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, identity: str, tta: bool, ids: list[str], owner: object = None) -> torch.Tensor | None:
        """float16 (B, K, H, W) of every id, or None unless all are held. The entries read
        become ``owner``'s: that pass will not push them out."""
        with self._lock:
            keys = [(identity, tta, i) for i in ids]
            if not all(k in self._data for k in keys):
                return None
            for k in keys:
                self._data[k] = (self._data[k][0], owner)
                self._data.move_to_end(k)
            return torch.stack([self._data[k][0] for k in keys])

    def put(self, identity: str, tta: bool, ids: list[str], probs: torch.Tensor, owner: object = None) -> None:
        """Keep float16 (B, K, H, W) ``probs``; a batch over a quarter of the budget is not kept,
        nor one that would only fit by pushing out entries of ``owner`` (see the module)."""
        size = _nbytes(probs)
        if size > self.max_bytes // 4:
            return
        cpu = probs.to("cpu", torch.float16)
        with self._lock:
            for i in ids:
                old = self._data.pop((identity, tta, i), None)
                if old is not None:
                    self._bytes -= _nbytes(old[0])
            others = [k for k, (_, o) in self._data.items() if owner is None or o is not owner]
            while self._bytes + size > self.max_bytes and others:
                dropped, _ = self._data.pop(others.pop(0))
                self._bytes -= _nbytes(dropped)
            if self._bytes + size > self.max_bytes:
                return
            for i, p in zip(ids, cpu, strict=True):
                self._data[(identity, tta, i)] = (p.clone(), owner)    # not a view into the whole batch's storage
                self._bytes += _nbytes(p)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()
            self._bytes = 0

    @property
    def nbytes(self) -> int:
        return self._bytes


# One per process, shared by the app's sessions; SEGLIB_PROB_CACHE_MB sets its size (0: off).
PROBS = ProbabilityCache(int(float(os.environ.get("SEGLIB_PROB_CACHE_MB", DEFAULT_MB)) * 2**20))
