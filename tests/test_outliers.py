"""Outlier and duplicate detectors: hand-made cases per detector, the demo's truth file, CLI."""
from __future__ import annotations

import json

import cv2
import imagehash
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from seglib.cli import main
from seglib.data import open_dataset
from seglib.data.demo import generate, truth_path
from seglib.outliers import COLUMNS, DETECTORS, detect, detector, label_quality_from_predictions
from seglib.outliers.features import phash_batch
from seglib.stats import compute_stats

FOUND_KINDS = ("alien", "duplicate", "near_duplicate", "blank", "saturated")


def terrain(seed: int, shape=(64, 128)) -> np.ndarray:
    """A textured uint8 picture, different for every seed."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0, 255, (6, 10)).astype(np.float32)
    img = cv2.resize(coarse, shape[::-1], interpolation=cv2.INTER_CUBIC) + rng.normal(0, 6, shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def two_class_mask(seed: int, shape=(64, 128)) -> np.ndarray:
    """Class 0 above a horizon near mid-height, class 1 below; varies with the seed."""
    h = 28 + (seed * 7) % 9
    m = np.zeros(shape, np.uint8)
    m[h:] = 1
    m[h + 10 : h + 14, (seed * 13) % 100 : (seed * 13) % 100 + 20] = 2 if seed % 3 == 0 else 1
    return m


def npz_dataset(tmp_path, images, masks=None, name="tiny.npz"):
    arrays = {"images": np.asarray(images)}
    if masks is not None:
        arrays["masks"] = np.asarray(masks)
    np.savez(tmp_path / name, **arrays)
    return open_dataset(tmp_path / name)


def run(ds, *names):
    flags = detect(ds, compute_stats(ds), detectors=list(names) or None, use_cache=False)
    assert list(flags.columns) == COLUMNS
    assert flags["score"].between(0, 1).all()
    assert flags["score"].is_monotonic_decreasing
    assert not flags.duplicated(["image_id", "detector"]).any()
    return flags


# --- one test per detector on tiny hand-made data ---------------------------------------
def test_exact_duplicate_groups_identical_images(tmp_path):
    imgs = [terrain(i) for i in range(6)]
    imgs[4] = imgs[1].copy()
    flags = run(npz_dataset(tmp_path, imgs, [two_class_mask(i) for i in range(6)]), "exact_duplicate")
    assert sorted(flags.image_id) == ["00001", "00004"]
    assert flags.group.nunique() == 1 and flags.group.iloc[0] == "d1"
    assert "identical pixels to 00004" in flags.set_index("image_id").reason["00001"]


def test_near_duplicate_finds_reexposed_copy_not_similar_picture(tmp_path):
    rng = np.random.default_rng(0)
    imgs = [terrain(i) for i in range(8)]
    imgs[5] = np.clip(imgs[2].astype(np.float32) + 10 + rng.normal(0, 2.5, imgs[2].shape), 0, 255).astype(np.uint8)
    # same layout, different pixels: a blurred, re-textured version must not count as a copy
    imgs[6] = np.clip(cv2.GaussianBlur(imgs[2], (0, 0), 3).astype(np.float32) + rng.normal(0, 25, imgs[2].shape),
                      0, 255).astype(np.uint8)
    imgs[7] = imgs[3].copy()  # exact copy: exact_duplicate's business, not near_duplicate's
    ds = npz_dataset(tmp_path, imgs)  # no masks: an unlabeled split, ids "test/0000k"
    flags = run(ds, "near_duplicate")
    assert sorted(flags.image_id) == [ds.ids[2], ds.ids[5]]
    assert flags.group.nunique() == 1
    assert f"near copy of {ds.ids[5]}" in flags.set_index("image_id").reason[ds.ids[2]]


def test_shared_mask_flags_unrelated_images_only(tmp_path):
    imgs = [terrain(i) for i in range(9)]
    masks = [two_class_mask(i) for i in range(9)]
    for k in (0, 3, 6):
        masks[k] = masks[0]             # one mask on three unrelated pictures
    imgs[8], masks[8] = imgs[7].copy(), masks[7]  # a copied pair shares its mask: not this detector
    masks[1] = masks[2] = np.zeros_like(masks[1])  # single-class masks are often legitimately equal
    flags = run(npz_dataset(tmp_path, imgs, masks), "shared_mask")
    assert sorted(flags.image_id) == ["00000", "00003", "00006"]
    assert set(flags.group) == {"m1"}
    assert flags.reason.iloc[0] == "identical mask shared by 3 unrelated images (group m1)"


def test_image_stats_blank_saturated_and_texture(tmp_path):
    imgs = [terrain(i) for i in range(30)]
    imgs[3] = np.full_like(imgs[3], 12)
    imgs[7] = np.where(imgs[7] > 40, 255, imgs[7]).astype(np.uint8)  # clipped to white
    imgs[9] = np.where(np.indices(imgs[9].shape).sum(0) % 2 == 0, 240, 15).astype(np.uint8)  # pixel checkerboard
    ds = npz_dataset(tmp_path, imgs)
    flags = run(ds, "image_stats").set_index("image_id")
    blank, clipped, busy = ds.ids[3], ds.ids[7], ds.ids[9]
    assert sorted(flags.index) == [blank, clipped, busy]
    assert flags.reason[blank] == "std 0.0, image is blank (constant value 12)"
    assert "clipped to white" in flags.reason[clipped]
    assert flags.reason[busy].startswith("texture")
    assert flags.score[blank] == 1.0


def test_label_stats_single_class_and_misplaced_class(tmp_path):
    n = 80
    imgs = [terrain(i) for i in range(n)]
    masks = [two_class_mask(i) for i in range(n)]
    masks[10] = np.ones_like(masks[10])   # one class covers everything
    masks[20] = masks[20][::-1].copy()    # upside down: ground where the sky always is
    flags = run(npz_dataset(tmp_path, imgs, masks), "label_stats").set_index("image_id")
    assert sorted(flags.index) == ["00010", "00020"]
    assert flags.reason["00010"].startswith("mask is 100% class")
    assert "where their class almost never is" in flags.reason["00020"]


def test_label_quality_from_predictions_finds_corrupted_labels():
    rng = np.random.default_rng(1)
    n, k, h, w = 40, 3, 16, 16
    labels = rng.integers(0, k, (n, 1, 1)).repeat(h, 1).repeat(w, 2)
    labels[:, h // 2 :] = (labels[:, h // 2 :] + 1) % k
    logits = np.eye(k)[labels].transpose(0, 3, 1, 2) * 4 + rng.normal(0, 0.5, (n, k, h, w))
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    noisy = labels.copy()
    bad = [3, 17, 29]
    for i in bad:
        noisy[i, : h // 2] = (noisy[i, : h // 2] + 1) % k  # half the image relabeled
    ids = [f"img{i:02d}" for i in range(n)]
    flags = label_quality_from_predictions(noisy, probs.astype(np.float32), ids)
    assert sorted(flags.image_id) == [ids[i] for i in bad]
    assert set(flags.detector) == {"label_quality"} and flags.group.isna().all()
    assert "disagrees with 50%" in flags.reason.iloc[0]
    with pytest.raises(ValueError, match="do not match"):
        label_quality_from_predictions(noisy[:, :8], probs, ids)


def test_phash_batch_matches_imagehash():
    thumbs = np.stack([cv2.resize(terrain(i), (32, 32), interpolation=cv2.INTER_AREA) for i in range(20)])
    ours = phash_batch(thumbs)
    for t, h in zip(thumbs, ours, strict=True):
        ref = imagehash.phash(Image.fromarray(t)).hash.ravel()
        assert int(np.packbits(ref).view(">u8")[0]) == int(h)


# --- datasets of every shape ------------------------------------------------------------
def test_folder_of_sizes_rgb_and_unlabeled(tmp_path):
    root = tmp_path / "set"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    shapes = [(64, 128), (100, 80), (48, 48)]
    for i in range(9):
        img = terrain(i, shapes[i % 3])
        if i % 2:
            img = np.dstack([img, img // 2, 255 - img])  # RGB
        Image.fromarray(img).save(root / "images" / f"p{i}.png")
        if i < 6:  # the rest are unlabeled
            Image.fromarray(two_class_mask(0, shapes[i % 3])).save(root / "masks" / f"p{i}.png")
    Image.open(root / "images" / "p1.png").save(root / "images" / "p7.png")  # exact copy, unlabeled
    ds = open_dataset(root)
    flags = run(ds)
    unlabeled = set(ds.unlabeled_ids)
    mask_flags = flags[flags.detector.isin(["shared_mask", "label_stats"])]
    assert not set(mask_flags.image_id) & unlabeled
    assert sorted(flags[flags.detector == "exact_duplicate"].image_id) == ["p1", "p7"]
    # the same drawn mask on two different pictures of each size: three groups of two
    shared = flags[flags.detector == "shared_mask"]
    assert sorted(sorted(g.image_id) for _, g in shared.groupby("group")) == [["p0", "p3"], ["p1", "p4"], ["p2", "p5"]]


def test_two_images_do_not_crash(tmp_path):
    ds = npz_dataset(tmp_path, [terrain(0), terrain(0)], [two_class_mask(0), two_class_mask(0)])
    flags = run(ds)
    assert set(flags.detector) == {"exact_duplicate"}
    assert run(npz_dataset(tmp_path, [terrain(1)], name="one.npz")).empty


def test_cache_and_registry(tmp_path, monkeypatch):
    ds = npz_dataset(tmp_path, [terrain(i) for i in range(5)] + [terrain(2)])
    stats = compute_stats(ds)
    first = detect(ds, stats, detectors=["exact_duplicate"])
    assert len(first) == 2

    def boom(ds, stats):
        raise AssertionError("a cached result was recomputed")
    monkeypatch.setitem(DETECTORS, "exact_duplicate", boom)
    assert detect(ds, stats, detectors=["exact_duplicate"]).equals(first)

    @detector("always_first")
    def always_first(ds, stats):
        return pd.DataFrame([{"image_id": stats.ids[0], "detector": "always_first", "reason": "test",
                              "score": 0.99, "group": None}])
    try:
        flags = detect(ds, stats, detectors=["always_first"], use_cache=False)
        assert flags.iloc[0].image_id == ds.ids[0] and flags.iloc[0].group is None
        with pytest.raises(ValueError, match="unknown detector 'nope'"):
            detect(ds, stats, detectors=["nope"])
    finally:
        DETECTORS.pop("always_first")


# --- the demo and its truth file ---------------------------------------------------------
def score_against_truth(flags: pd.DataFrame, truth: dict) -> tuple[float, float]:
    want = {i for k in FOUND_KINDS for i in truth[k]}
    every = {i for ids in truth.values() for i in ids}
    flagged = set(flags.image_id)
    return len(want & flagged) / len(want), len(flagged & every) / max(1, len(flagged))


def test_demo_truth_recall_and_precision(demo_npz_large):
    ds = open_dataset(demo_npz_large)
    flags = detect(ds, compute_stats(ds))
    truth = json.loads(truth_path(demo_npz_large).read_text())
    recall, precision = score_against_truth(flags, truth)
    assert recall >= 0.95 and precision >= 0.90, (recall, precision)
    aliens = flags[flags.detector == "shared_mask"]
    assert set(truth["alien"]) <= set(aliens.image_id) and aliens.group.nunique() == 1
    near = set(flags[flags.detector == "near_duplicate"].image_id)
    assert set(truth["near_duplicate"]) <= near and near <= set(truth["near_duplicate"]) | set(truth["alien"])


def test_demo_second_seed(tmp_path):
    images, masks, _, truth = generate(800, seed=3, n_test=0)
    ds = npz_dataset(tmp_path, images, masks, name="seed3.npz")
    truth = {k: [str(int(i)).zfill(5) for i in v] for k, v in truth.items()}
    recall, precision = score_against_truth(run(ds), truth)
    assert recall >= 0.95 and precision >= 0.90, (recall, precision)


# --- command line -------------------------------------------------------------------------
def test_cli_json_contract_and_errors(demo_npz, capsys):
    assert main(["outliers", str(demo_npz), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["flags"] and set(doc["flags"][0]) >= {"image_id", "detector", "reason", "score", "group"}
    scores = [f["score"] for f in doc["flags"]]
    assert scores == sorted(scores, reverse=True)
    assert main(["outliers", str(demo_npz), "--detectors", "shared_mask"]) == 0
    out = capsys.readouterr().out
    assert "shared_mask" in out and "image_stats" not in out
    assert main(["outliers", str(demo_npz), "--detectors", "bogus"]) == 1
    assert "unknown detector bogus" in capsys.readouterr().err
    assert main(["outliers", "/no/such/dataset"]) == 1
    assert "no such file" in capsys.readouterr().err


def test_fragments_counted_per_mask_in_a_batch():
    from seglib.outliers.features import _fragments, _pieces_per_mask
    masks = np.zeros((3, 20, 30), np.uint8)
    masks[0, 2:5, 2:5] = masks[0, 10:12, 20:25] = masks[0, 15:18, 5:8] = 1  # three pieces of class 1
    masks[1, :, 15:] = 2                                                  # one piece of class 2
    masks[2, 0, 0] = masks[2, 19, 29] = 1                                 # two corner specks
    out = _fragments(masks)
    assert out[:, 1].tolist() == [3, 0, 2] and out[:, 2].tolist() == [0, 1, 0] and out[:, 0].tolist() == [1, 1, 1]
    # the pixel-by-pixel fallback gives the same counts when labels are not in scan order
    labels = np.array([[0, 2], [1, 0]], np.int32)  # two 1x2 "masks", labels out of order
    assert _pieces_per_mask(labels, 3, 2).tolist() == [1, 1]
