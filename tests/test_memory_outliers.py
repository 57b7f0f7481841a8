"""The detectors' memory after the pixel pass follows their fixed-size per-image features, not
N full-width copies of them (issue 16: RSS grew ~60 KB an image between 300 and 2,000 photos).

NumPy reports its allocations to tracemalloc, so a traced peak is what the arrays cost."""
from __future__ import annotations

import tracemalloc

import numpy as np

from seglib.data.classmap import UNKNOWN_INDEX
from seglib.outliers import base, duplicates, quality
from seglib.outliers.features import THUMB, Features


def _features(n: int, seed: int = 0) -> Features:
    """n rows of made-up features: masks with a layout (class 0 on top, 1 below, 2 at the
    bottom), a few upside-down ones and some unknown pixels; random thumbnails and hashes."""
    rng = np.random.default_rng(seed)
    rows = np.arange(THUMB)[:, None].repeat(THUMB, 1)
    layout = np.digitize(rows, [12, 24]).astype(np.uint8)
    masks = np.repeat(layout[None], n, 0)
    masks[:, :, :2] = rng.integers(0, 3, (n, THUMB, 2))  # a noisy border column
    masks[::97] = layout[::-1]  # classes where they never are
    masks[5::50, :3, :3] = UNKNOWN_INDEX
    return Features(
        ids=[f"i{k:05d}" for k in range(n)], img_hash=rng.integers(1, 2**63, n, dtype=np.uint64),
        phash=rng.integers(0, 2**63, n, dtype=np.uint64), thumb=rng.integers(0, 256, (n, THUMB, THUMB), np.uint8),
        grad=np.ones(n, np.float32), low=np.zeros(n, np.float32), high=np.zeros(n, np.float32),
        mode_frac=np.full(n, 0.1, np.float32), mode_value=np.zeros(n, np.uint8), labeled=np.ones(n, bool),
        mask_hash=np.arange(1, n + 1, dtype=np.uint64), mask_small=masks, n_values=np.full(n, 3, np.int16),
        fragments=np.zeros((n, 256), np.int32))


def _peak(fn) -> tuple[object, int]:
    tracemalloc.start()
    try:
        out = fn()
        return out, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _layout_rare_reference(f: Features, lab: np.ndarray, names: dict) -> dict:
    """The former whole-array version (int64/float64 (N, 32, 32) arrays), for equality."""
    m = f.mask_small[lab].astype(np.int64)
    classes = np.unique(m[m != UNKNOWN_INDEX])
    lut = np.full(256, -1)
    lut[classes] = np.arange(len(classes))
    idx = lut[m]
    cells = m.shape[1] * m.shape[2]
    slot = (idx.reshape(len(m), -1) + 1) * cells + np.arange(cells)
    prior = np.bincount(slot.ravel(), minlength=(len(classes) + 1) * cells) / len(m)
    prior[:cells] = 1.0
    rare = prior[slot].reshape(m.shape) < quality.LAYOUT_RARE_P
    share = rare.mean((1, 2))
    q1, q3 = np.percentile(share, [25, 75])
    cut = max(quality.LAYOUT_FLAG, q3 + 6 * (q3 - q1))
    return {int(np.flatnonzero(lab)[k]): float(share[k]) for k in np.flatnonzero(share >= cut)}


def test_layout_rare_is_chunked_and_unchanged(monkeypatch):
    f = _features(600)
    lab = f.labeled.copy()
    lab[::7] = False
    names = {0: "sky", 1: "land", 2: "sea"}
    monkeypatch.setattr(quality, "LAYOUT_CHUNK", 64)  # several chunks, the last one partial
    found = quality._layout_rare(f, lab, names)
    assert {k: s for k, (s, _) in found.items()} == _layout_rare_reference(f, lab, names)
    assert found and all("sky in the bottom part" in words for _, words in found.values())


def test_layout_rare_memory_does_not_scale_with_n(monkeypatch):
    n = 4000
    f = _features(n)
    monkeypatch.setattr(quality, "LAYOUT_CHUNK", 128)
    found, peak = _peak(lambda: quality._layout_rare(f, f.labeled, {}))
    assert len(found) == len(range(0, n, 97))
    # before: int64/float64 (N, 32, 32) arrays, ~33 bytes a mask cell (135 MB here)
    assert peak < n * THUMB * THUMB, f"{peak / 2**20:.1f} MB for {n} masks"


def test_near_candidates_memory_follows_pairs_not_n():
    n = 8000
    f = _features(n, seed=1)
    f.phash[100] = f.phash[99]
    f.thumb[100] = np.clip(f.thumb[99].astype(np.int16) + 3, 0, 255)  # one near copy
    (a, b, r, _), peak = _peak(lambda: duplicates.near_candidates(f))
    assert list(zip(a, b, strict=True)) == [(99, 100)] and r[0] > 0.99
    # before: every thumbnail normalised as float32, twice (64 MB here)
    assert peak < 2 * n * THUMB * THUMB, f"{peak / 2**20:.1f} MB for {n} thumbnails"


def test_hash_pairs_memory_is_flat_in_n():
    rng = np.random.default_rng(0)
    h = rng.integers(0, 2**63, 20_000, dtype=np.uint64)
    h[7] = h[19_000] ^ np.uint64(1)
    (a, b, bits), peak = _peak(lambda: base.hash_pairs(h, 3))
    assert (7, 19_000, 1) in set(zip(a.tolist(), b.tolist(), bits.tolist(), strict=True))
    # before: a (1024, N) uint64 XOR table per step (160 MB for 20,000 hashes)
    assert peak < 12 * base.XOR_CELLS, f"{peak / 2**20:.1f} MB for {len(h)} hashes"
