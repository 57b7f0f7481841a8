"""The 2-D map of the Review page: look-alikes together, odd ones apart, unlabeled by looks."""
from __future__ import annotations

import json

import numpy as np

from seglib.data import open_dataset
from seglib.data.demo import truth_path
from seglib.outliers.projection import projection
from seglib.stats import compute_stats


def test_map_shape_cache_and_duplicates_together(demo_npz):
    ds = open_dataset(demo_npz)
    stats = compute_stats(ds)
    proj = projection(ds, stats)
    assert list(proj.index) == stats.ids and list(proj.columns) == ["pc1", "pc2"]
    assert np.isfinite(proj.to_numpy()).all()
    np.testing.assert_array_equal(projection(ds, stats).to_numpy(), proj.to_numpy())  # cached, same
    truth = json.loads(truth_path(demo_npz).read_text())
    xy = proj.loc[truth["duplicate"]].to_numpy()  # pairs of identical image + mask
    nearest = np.sort(np.linalg.norm(xy[:, None] - xy[None], axis=2), axis=1)[:, 1]
    spread = np.linalg.norm(proj.to_numpy() - proj.to_numpy().mean(0), axis=1).mean()
    assert (nearest < 1e-3 * spread).all()


def test_unlabeled_images_are_placed_by_how_they_look(demo_npz):
    ds = open_dataset(demo_npz)
    stats = compute_stats(ds)
    xy = projection(ds, stats).to_numpy()
    lab, unl = xy[stats.labeled], xy[~stats.labeled]
    # The unlabeled test split is ordinary terrain: it sits inside the labeled cloud, not on a
    # line of its own (as it would if missing class fractions counted as zeros).
    lo, hi = np.percentile(lab, 2, axis=0), np.percentile(lab, 98, axis=0)
    inside = ((unl >= lo) & (unl <= hi)).all(1).mean()
    assert inside > 0.8


def test_an_image_unreadable_since_the_stats_is_reported_not_zeroed(tmp_path):
    from PIL import Image
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    rng = np.random.default_rng(0)
    for i in range(6):
        Image.fromarray(rng.integers(0, 255, (16, 16), dtype=np.uint8)).save(tmp_path / "images" / f"{i}.png")
        Image.fromarray((rng.random((16, 16)) > 0.5).astype(np.uint8)).save(tmp_path / "masks" / f"{i}.png")
    ds = open_dataset(tmp_path)
    stats = compute_stats(ds)
    (tmp_path / "images" / "3.png").write_bytes(b"damaged after the statistics pass")
    proj = projection(ds, stats)
    assert proj.loc["3"].isna().all()                          # not placed (no fake zeros)
    assert np.isfinite(proj.drop(index="3").to_numpy()).all()  # the others are
    problem = next(p for p in ds.report.problems if p.image_id == "3")
    assert problem.code == "unreadable_image" and problem.file.endswith("images/3.png")
    assert "3" not in ds.ids
