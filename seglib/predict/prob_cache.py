"""Class probabilities of recent prediction passes, kept in memory (float16, bounded in bytes).

A comparison stores per column only what it shows (masks, small confidence maps, confusions);
probabilities are too big to keep on disk. But a person who adds an ensemble, switches weights
or fits a weighted ensemble asks again for the probabilities the same models just computed:
kept here, those passes need no model. Every pass rounds probabilities to float16 whether or not
they come from here, so a column is the same bit for bit either way.
"""
from __future__ import annotations

import os
import threading
from collections import OrderedDict

import torch

DEFAULT_MB = 512


class ProbabilityCache:
    """(model identity, TTA, image id) -> float16 (K, H, W) CPU tensor; least recently used out first."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self._data: OrderedDict[tuple, torch.Tensor] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, identity: str, tta: bool, ids: list[str]) -> torch.Tensor | None:
        """float16 (B, K, H, W) of every id, or None unless all are held."""
        with self._lock:
            keys = [(identity, tta, i) for i in ids]
            if not all(k in self._data for k in keys):
                return None
            for k in keys:
                self._data.move_to_end(k)
            return torch.stack([self._data[k] for k in keys])

    def put(self, identity: str, tta: bool, ids: list[str], probs: torch.Tensor) -> None:
        """Keep float16 (B, K, H, W) ``probs``; a batch over a quarter of the budget is not kept."""
        size = probs.numel() * probs.element_size()
        if size > self.max_bytes // 4:
            return
        cpu = probs.to("cpu", torch.float16)
        with self._lock:
            for i, p in zip(ids, cpu, strict=True):
                key = (identity, tta, i)
                old = self._data.pop(key, None)
                if old is not None:
                    self._bytes -= old.numel() * old.element_size()
                self._data[key] = p.clone()          # not a view into the whole batch's storage
                self._bytes += p.numel() * p.element_size()
            while self._bytes > self.max_bytes and self._data:
                _, dropped = self._data.popitem(last=False)
                self._bytes -= dropped.numel() * dropped.element_size()

    def clear(self) -> None:
        with self._lock:
            self._data.clear()
            self._bytes = 0

    @property
    def nbytes(self) -> int:
        return self._bytes


# One per process, shared by the app's sessions; SEGLIB_PROB_CACHE_MB sets its size (0: off).
PROBS = ProbabilityCache(int(float(os.environ.get("SEGLIB_PROB_CACHE_MB", DEFAULT_MB)) * 2**20))
