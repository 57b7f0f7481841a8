"""seglib.sampling: weights, expected class distribution, and the torch sampler agreeing with it."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from seglib.data import open_dataset
from seglib.sampling import (
    class_distribution,
    compare_distributions,
    make_sampler,
    rarest_classes,
    sample_weights,
    sampler_code,
)
from seglib.stats import compute_stats
from seglib.viz.plots import distribution_figure


@pytest.fixture(scope="module")
def demo(demo_npz, tmp_path_factory):
    ds = open_dataset(demo_npz)
    stats = compute_stats(ds, cache_root=tmp_path_factory.mktemp("cache"))
    return ds, stats


def _present(stats, ids, cls):
    row = {i: k for k, i in enumerate(stats.ids)}
    return np.array([stats.counts[row[i], cls] > 0 for i in ids])


def test_oversample_weights_exactly_the_images_with_the_class(demo):
    ds, stats = demo
    ids = ds.labeled_ids
    w = sample_weights(stats, ids, "oversample", classes=[4], factor=5)
    has = _present(stats, ids, 4)
    assert 0 < has.sum() < len(ids)
    assert np.all(w[has] == 5) and np.all(w[~has] == 1)


def test_rebalancing_raises_the_rare_class_share(demo):
    ds, stats = demo
    ids = ds.labeled_ids
    before = class_distribution(stats, ids).set_index("id")
    for w in (sample_weights(stats, ids, "oversample", classes=[4], factor=5),
              sample_weights(stats, ids, "presence", power=1.0)):
        after = class_distribution(stats, ids, w).set_index("id")
        assert after.loc[4, "pixel_share"] > before.loc[4, "pixel_share"]
        assert after.loc[4, "image_share"] > before.loc[4, "image_share"]
        assert after["pixel_share"].sum() == pytest.approx(1.0)
    uniform = class_distribution(stats, ids, sample_weights(stats, ids, "uniform"))
    per_class = stats.per_class().set_index("id")
    assert np.allclose(uniform.set_index("id")["pixel_share"], per_class["pixel_fraction"])


def test_the_sampler_draws_what_the_preview_promises(demo):
    """Seeded draws from the sampler reproduce the expected pixel and image shares."""
    ds, stats = demo
    ids = ds.labeled_ids
    kw = dict(mode="oversample", classes=[4], factor=6)
    expected = class_distribution(stats, ids, sample_weights(stats, ids, **kw)).set_index("id")
    sampler = make_sampler(stats, ids, num_samples=40_000, seed=0, **kw)
    drawn = np.fromiter(iter(sampler), int)
    row = {i: k for k, i in enumerate(stats.ids)}
    counts = stats.counts[[row[ids[j]] for j in drawn]][:, stats.class_map.ids]
    pixel_share = counts.sum(0) / counts.sum()
    image_share = (counts > 0).mean(0)
    assert np.allclose(pixel_share, expected["pixel_share"], atol=0.01)
    assert np.allclose(image_share, expected["image_share"], atol=0.015)
    again = np.fromiter(iter(make_sampler(stats, ids, num_samples=100, seed=0, **kw)), int)
    assert np.array_equal(again, np.fromiter(iter(make_sampler(stats, ids, num_samples=100, seed=0, **kw)), int))


def test_sampler_is_a_torch_weighted_sampler(demo):
    ds, stats = demo
    s = make_sampler(stats, ds.labeled_ids[:50], "presence", seed=1)
    assert isinstance(s, torch.utils.data.WeightedRandomSampler) and len(s) == 50


def test_bad_arguments_are_named(demo):
    ds, stats = demo
    with pytest.raises(ValueError, match="unknown mode"):
        sample_weights(stats, ds.labeled_ids, "magic")
    with pytest.raises(ValueError, match=r"\[42\]"):
        sample_weights(stats, ds.labeled_ids, "oversample", classes=[42])
    with pytest.raises(KeyError, match="not in the statistics"):
        sample_weights(stats, ["nope"], "uniform")


def test_figure_has_before_and_after(demo):
    ds, stats = demo
    ids = ds.labeled_ids
    table = compare_distributions(stats, ids, sample_weights(stats, ids, "oversample", classes=[4], factor=3))
    fig = distribution_figure(table, "image_share")
    assert [t.name for t in fig.data] == ["before", "after"]
    assert len(fig.data[0].x) == len(stats.class_map)


def test_rarest_class_and_sampler_code(demo):
    ds, stats = demo
    per_class = stats.per_class()
    assert rarest_classes(stats) == [4]  # big rock: under 1% of the demo's pixels
    assert rarest_classes(stats, 2)[1] == int(per_class.sort_values("pixel_fraction")["id"].iloc[1])
    code = sampler_code("oversample", [4], 3.0)
    assert code.endswith("make_sampler(stats, ids, mode='oversample', classes=[4], factor=3.0, seed=0)")
    namespace = {"stats": stats, "ids": ds.labeled_ids}
    exec(code, namespace)  # the snippet the page shows runs as written
    assert len(namespace["sampler"]) == len(ds.labeled_ids)
    assert "power=0.25" in sampler_code("presence", power=0.25) and "classes" not in sampler_code("uniform")
    with pytest.raises(ValueError, match="unknown mode"):
        sampler_code("sideways")

