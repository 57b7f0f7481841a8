"""Whole-image (and resized) training on mixed sizes: batches of one size, never padded (issue 16)."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from seglib.train.data import EpochSampler, SizeBatchSampler, training_sizes

SIZES = [(64, 96)] * 7 + [(128, 128)] * 5 + [(40, 200)] * 2


def _sampler(weights=None, drop_last=False, batch=3):
    weights = np.ones(len(SIZES)) if weights is None else weights
    return SizeBatchSampler(EpochSampler(weights, seed=3), SIZES, batch, drop_last)


def test_batches_share_one_size_and_cover_the_epoch():
    sampler = _sampler()
    for epoch in (1, 2):
        sampler.set_epoch(epoch)
        batches = list(sampler)
        assert all(len({SIZES[k] for k in b}) == 1 for b in batches)
        assert sorted(k for b in batches for k in b) == list(range(len(SIZES)))   # a permutation: each once
        assert all(1 <= len(b) <= 3 for b in batches)
    assert len(sampler) == 5   # the plain sampler's count of batches (14 images, 3 a batch)


def test_weighted_draws_and_drop_last_leave_no_batch_of_one():
    weights = np.array([1.0] * 7 + [4.0] * 5 + [1.0] * 2)
    sampler = _sampler(weights, drop_last=True, batch=4)
    for epoch in range(5):
        sampler.set_epoch(epoch)
        batches = list(sampler)
        assert batches and all(len(b) >= 2 and len({SIZES[k] for k in b}) == 1 for b in batches)


def test_training_sizes_follow_the_input_policy():
    stats = SimpleNamespace(ids=["a", "b", "c"], shape=np.array([[64, 96, 3], [128, 128, 3], [64, 96, 3]]))
    assert training_sizes(["a", "b", "c"], stats, {"mode": "full"}) == [(64, 96), (128, 128), (64, 96)]
    assert training_sizes(["a", "b", "c"], stats, None) == [(64, 96), (128, 128), (64, 96)]
    assert training_sizes(["a", "b", "c"], stats, {"mode": "resize", "size": 64}) == [(43, 64), (64, 64), (43, 64)]
    assert training_sizes(["a", "b", "c"], stats, {"mode": "crop", "size": 64}) is None
    assert training_sizes(["a", "c"], stats, {"mode": "full"}) is None   # one size: plain batches
