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
    st = compute_stats(ds)
    proj = projection(ds, st)
    assert list(proj.index) == st.ids and list(proj.columns) == ["pc1", "pc2"]
    assert np.isfinite(proj.to_numpy()).all()
    np.testing.assert_array_equal(projection(ds, st).to_numpy(), proj.to_numpy())  # cached, same
    truth = json.loads(truth_path(demo_npz).read_text())
    xy = proj.loc[truth["duplicate"]].to_numpy()  # pairs of identical image + mask
    nearest = np.sort(np.linalg.norm(xy[:, None] - xy[None], axis=2), axis=1)[:, 1]
    spread = np.linalg.norm(proj.to_numpy() - proj.to_numpy().mean(0), axis=1).mean()
    assert (nearest < 1e-3 * spread).all()


def test_unlabeled_images_are_placed_by_how_they_look(demo_npz):
    ds = open_dataset(demo_npz)
    st = compute_stats(ds)
    xy = projection(ds, st).to_numpy()
    lab, unl = xy[st.labeled], xy[~st.labeled]
    # The unlabeled test split is ordinary terrain: it sits inside the labeled cloud, not on a
    # line of its own (as it would if missing class fractions counted as zeros).
    lo, hi = np.percentile(lab, 2, axis=0), np.percentile(lab, 98, axis=0)
    inside = ((unl >= lo) & (unl <= hi)).all(1).mean()
    assert inside > 0.8
