"""seglib.cache: the on-disk cache treats damage as a miss; the in-process LRU is bounded and
computes each key once however many threads ask."""
from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from seglib import cache
from seglib.cache import LRU


def test_disk_entry_round_trip_and_damage_is_a_miss(tmp_path):
    cache.save("ns", "k", {"a": np.arange(3)}, meta={"ids": ["x"]}, root=tmp_path)
    hit = cache.load("ns", "k", tmp_path)
    assert hit["a"].tolist() == [0, 1, 2] and hit["meta"] == {"ids": ["x"]}
    (tmp_path / "ns" / "k.npz").write_bytes(b"damaged")
    assert cache.load("ns", "k", tmp_path) is None and not (tmp_path / "ns" / "k.npz").exists()


def test_lru_keeps_the_most_recently_used():
    lru = LRU(2)
    lru.get_or_compute("a", lambda: 1)
    lru.get_or_compute("b", lambda: 2)
    assert lru.get_or_compute("a", lambda: 99) == 1  # a hit makes "a" the most recent
    lru.get_or_compute("c", lambda: 3)               # ... so "b" goes
    assert "a" in lru and "c" in lru and "b" not in lru and len(lru) == 2
    with pytest.raises(ValueError):
        LRU(0)


def test_lru_computes_a_key_once_across_threads_and_survives_errors():
    lru = LRU(4)
    calls = []

    def slow():
        calls.append(1)
        time.sleep(0.05)
        return object()

    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(lambda _: lru.get_or_compute("k", slow), range(8)))
    assert len(calls) == 1 and all(g is got[0] for g in got)

    def boom():
        raise RuntimeError("no")
    with pytest.raises(RuntimeError):
        lru.get_or_compute("bad", boom)
    assert lru.get_or_compute("bad", lambda: 5) == 5  # a failure is not remembered


def test_detectors_in_parallel_sessions_agree(demo_npz):
    """Two sessions running the detectors at once share one feature pass and get one answer."""
    from seglib.data import open_dataset
    from seglib.outliers import detect, features
    from seglib.stats import compute_stats

    ds = open_dataset(demo_npz)
    stats = compute_stats(ds)
    features.MEMO.clear()
    start = threading.Barrier(3)

    def session(_):
        start.wait()
        return detect(ds, stats, use_cache=False)

    with ThreadPoolExecutor(3) as pool:
        results = list(pool.map(session, range(3)))
    assert len(features.MEMO) == 1
    for r in results[1:]:
        assert r.equals(results[0])
