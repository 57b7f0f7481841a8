"""Disagreement regions between a label and a prediction, and accepting them."""
from __future__ import annotations

import numpy as np

from seglib.data.classmap import ClassInfo, ClassMap
from seglib.edit.regions import accept_prediction, accept_region, disagreement_regions

CLASSES = ClassMap([ClassInfo(0, "background", "#000000"), ClassInfo(1, "road", "#ff0000"),
                    ClassInfo(2, "building", "#00ff00"), ClassInfo(255, "void", "#ffffff", ignore=True)])


def _fixture():
    label = np.zeros((40, 50), np.uint8)
    pred = label.copy()
    pred[5:15, 5:25] = 2        # 200 px: background -> building
    pred[30:33, 40:43] = 1      # 9 px: background -> road
    label[20:24, 0:4] = 1       # 16 px: road -> background (prediction misses it)
    label[35:40, 0:5] = 255     # ignored: the model may say anything there
    pred[35:40, 0:5] = 2
    pred[0, 49] = 1             # 1 px: below min_px
    return label, pred


def test_regions_largest_first_with_their_classes():
    label, pred = _fixture()
    regions = disagreement_regions(label, pred, CLASSES)
    assert [(r.area, r.label_class, r.pred_class) for r in regions] == [(200, 0, 2), (16, 1, 0), (9, 0, 1)]
    assert regions[0].bbox == (5, 5, 15, 25)
    assert regions[0].describe(CLASSES) == "200 px: label background → model building"
    assert regions[1].pixels.sum() == 16 and regions[1].pixels[20:24, 0:4].all()


def test_one_region_per_pair_of_classes_even_when_touching():
    label = np.zeros((10, 10), np.uint8)
    pred = label.copy()
    pred[2:5, 2:5] = 1
    pred[2:5, 5:8] = 2          # touches the first block, another class
    regions = disagreement_regions(label, pred, CLASSES, min_px=1)
    assert sorted((r.pred_class, r.area) for r in regions) == [(1, 9), (2, 9)]


def test_accept_a_region_and_the_whole_prediction():
    label, pred = _fixture()
    regions = disagreement_regions(label, pred, CLASSES)
    fixed = accept_region(label, pred, regions[0])
    assert (fixed[5:15, 5:25] == 2).all() and (fixed != label).sum() == 200
    assert (label[5:15, 5:25] == 0).all()  # the input is not changed
    whole = accept_prediction(label, pred, CLASSES)
    assert (whole[35:40, 0:5] == 255).all()  # ignore pixels kept
    assert (whole[5:15, 5:25] == 2).all() and whole[0, 49] == 1
    assert np.array_equal(accept_prediction(None, pred, CLASSES), pred)


def test_predict_one_with_a_run_and_an_ensemble(trained_runs, demo_npz):
    import pytest

    from seglib.data import open_dataset
    from seglib.edit.assist import AssistError, predict_one

    ds = open_dataset(demo_npz)
    i = ds.labeled_ids[0]
    one = predict_one(ds, [str(trained_runs["unet"])], i)
    assert one.shape == ds.mask(i).shape and one.dtype == np.uint8
    assert set(np.unique(one)) <= set(ds.class_map.ids)
    both = predict_one(ds, [str(trained_runs["unet"]), str(trained_runs["segformer"])], i, ensemble="mean")
    assert both.shape == one.shape
    u = ds.unlabeled_ids[0]
    assert predict_one(ds, [str(trained_runs["unet"])], u).shape == ds.image(u).shape[:2]
    with pytest.raises(AssistError):
        predict_one(ds, [str(demo_npz.parent / "no-such-run")], i)


def test_label_next_ranks_by_uncertainty_and_spreads_near_copies():
    from seglib.edit.label_next import rank

    ids = ["calm", "twin_a", "twin_b", "twin_c", "odd"]
    entropy = np.array([0.05, 0.60, 0.58, 0.57, 0.40])
    disagreement = np.array([0.00, 0.30, 0.31, 0.29, 0.20])
    rng = np.random.default_rng(0)
    base, other, calm = rng.normal(size=(3, 256))
    z = lambda v: (v - v.mean()) / v.std()  # noqa: E731
    thumbs = np.stack([z(calm), z(base), z(base + 0.05 * other), z(base + 0.05 * other[::-1]), z(other)])
    plain = rank(ids, entropy, disagreement)
    assert list(plain["image_id"]) == ["twin_a", "twin_b", "twin_c", "odd", "calm"]
    diverse = rank(ids, entropy, disagreement, thumbs)
    # one of the near-identical frames first, then a different scene, the twins after
    assert list(diverse["image_id"]) == ["twin_a", "odd", "calm", "twin_b", "twin_c"]
    assert diverse.set_index("image_id").loc["twin_b", "similar_to"] == "twin_a"
    assert "looks like twin_a" in diverse.set_index("image_id").loc["twin_c", "why"]


def test_label_next_on_trained_runs(trained_runs, demo_npz):
    from seglib.data import open_dataset
    from seglib.edit.label_next import label_next

    ds = open_dataset(demo_npz)
    queue = label_next(ds, [str(trained_runs["unet"]), str(trained_runs["segformer"])], ds.unlabeled_ids[:8])
    assert sorted(queue["image_id"]) == sorted(ds.unlabeled_ids[:8])
    assert queue["score"].between(0, 1).all() and (queue["disagreement"] > 0).any()
