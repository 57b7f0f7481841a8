"""The demo generator: deterministic, shaped like the Mars set, truth file complete."""
from __future__ import annotations

import hashlib
import json

import numpy as np

from seglib.data import open_dataset
from seglib.data.demo import PROBLEM_KINDS, generate, truth_path, write_demo


def _sha(p):
    return hashlib.sha256(p.read_bytes()).hexdigest()


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path):
    a = write_demo(tmp_path / "a" / "d.npz", n=120, seed=7)
    b = write_demo(tmp_path / "b" / "d.npz", n=120, seed=7)
    c = write_demo(tmp_path / "c" / "d.npz", n=120, seed=8)
    assert _sha(tmp_path / "a" / "d.npz") == _sha(tmp_path / "b" / "d.npz")
    assert _sha(tmp_path / "a" / "d.truth.json") == _sha(tmp_path / "b" / "d.truth.json")
    assert _sha(tmp_path / "a" / "d.npz") != _sha(tmp_path / "c" / "d.npz")
    assert a["truth"].endswith("d.truth.json") and a["problems"] == b["problems"]
    assert c["n_images"] == 120


def test_demo_opens_as_kaggle_mars_layout(demo_npz):
    ds = open_dataset(demo_npz)
    z = np.load(demo_npz)
    assert z["training_set"].shape == (300, 2, 64, 128)
    assert z["test_set"].shape == (40, 64, 128)
    assert ds.class_map.names == ["background", "soil", "bedrock", "sand", "big rock"]
    assert len(ds.labeled_ids) == 300 and len(ds.unlabeled_ids) == 40
    assert not ds.report


def test_class_balance_like_mars():
    _, masks, _, _ = generate(n=600, seed=3)
    share = np.bincount(masks.ravel(), minlength=5) / masks.size
    assert share.argmax() == 0            # background the largest
    assert 0 < share[4] < 0.01            # big rock under 1% of pixels
    assert (share[1:4] > 0.05).all()      # the ground classes are all substantial


def test_truth_file_lists_every_injected_problem(demo_npz):
    truth = json.loads(truth_path(demo_npz).read_text())
    assert set(truth) == set(PROBLEM_KINDS)
    images, masks, _, truth2 = generate(n=300, seed=0, n_test=40)
    assert truth == truth2
    idx = {k: [int(i) for i in v] for k, v in truth.items()}
    # ~4% aliens, all sharing one identical mask
    assert len(idx["alien"]) == 12
    alien_masks = masks[idx["alien"]]
    assert (alien_masks == alien_masks[0]).all()
    # duplicates come in pairs of identical images; near duplicates are close but not equal
    dup = images[idx["duplicate"]]
    assert any((dup[i] == dup[j]).all() for i in range(len(dup)) for j in range(i + 1, len(dup)))
    nd = images[idx["near_duplicate"]].astype(int)
    diffs = [np.abs(nd[i] - nd[j]).mean() for i in range(len(nd)) for j in range(i + 1, len(nd))]
    assert 0 < min(diffs) < 20
    # blank images are constant, saturated ones mostly white
    assert all(images[i].std() == 0 for i in idx["blank"])
    assert all((images[i] == 255).mean() > 0.9 for i in idx["saturated"])
    # no id is in two kinds
    flat = [i for v in truth.values() for i in v]
    assert len(flat) == len(set(flat))


def test_label_corruption_changes_the_mask_and_keeps_valid_classes():
    from seglib.data.demo import _corrupt_label, _terrain_masks
    rng = np.random.default_rng(0)
    masks = _terrain_masks(rng, 40)
    for m in masks:
        bad = _corrupt_label(rng, m)
        assert bad.shape == m.shape and bad.dtype == np.uint8
        assert (bad != m).mean() > 0.02          # a visible share of pixels changed
        assert set(np.unique(bad)) <= set(range(5))
