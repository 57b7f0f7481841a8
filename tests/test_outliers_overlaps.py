"""The overlap detector: crops of one source grouped by source, never across sources, offsets right;
copies, unrelated pictures and a burned-in overlay not taken for crops; the groups of images that
share pixels; progress over both pixel passes; the command line."""
from __future__ import annotations

import itertools
import json

import cv2
import numpy as np
import pandas as pd
import pytest
from crop_datasets import aerial, true_share, write_crops
from PIL import Image

from seglib.cli import main
from seglib.data import open_dataset
from seglib.outliers import DETECTORS, detect, shared_pixel_groups
from seglib.outliers.features import aligned, features_for
from seglib.outliers.keypoints import compute_keypoints
from seglib.outliers.overlaps import MIN_INLIERS, candidate_matches, find_overlaps, translations
from seglib.stats import compute_stats


@pytest.fixture(scope="module")
def crops(tmp_path_factory):
    """30 crops of 300x200 cut at random offsets from 3 scenes of 600x400: (path, placements)."""
    root = tmp_path_factory.mktemp("crops") / "aerial"
    return root, write_crops(root)


def test_crops_are_grouped_by_source_with_their_offsets(crops):
    root, placed = crops
    ds = open_dataset(root)
    stats = compute_stats(ds)
    o = find_overlaps(ds, stats)
    pairs = [(o.ids[a], o.ids[b]) for a, b in zip(o.a, o.b, strict=True)]
    assert pairs and all(placed[a][0] == placed[b][0] for a, b in pairs)  # no pair across sources
    for k, (a, b) in enumerate(pairs):  # a's corner in b, in full-size px
        assert abs(o.dx[k] - (placed[a][1] - placed[b][1])) <= 2 and abs(o.dy[k] - (placed[a][2] - placed[b][2])) <= 2
        assert abs(min(o.share_a[k], o.share_b[k]) - true_share(placed, a, b)) < 0.03
    found = set(pairs)
    half = [(a, b) for a, b in itertools.combinations(o.ids, 2) if true_share(placed, a, b) >= 0.5]
    assert half and all(p in found for p in half)  # every pair sharing half its pixels

    flags = detect(ds, stats, detectors=["overlap"], use_cache=False)
    assert set(flags.image_id) == set(placed)  # here every crop shares a fifth with another
    by_group = flags.groupby("group").image_id.apply(lambda s: {placed[i][0] for i in s})
    assert sorted(by_group.index) == ["o1", "o2", "o3"] and sorted(min(v) for v in by_group) == [0, 1, 2]
    assert all(len(v) == 1 for v in by_group)
    row = flags.iloc[0]
    assert row.reason.startswith("shares ~") and "10 images cut from one source" in row.reason
    assert f"(group {row.group})" in row.reason and 0.4 <= row.score <= 0.8
    fewer = detect(ds, stats, detectors=["overlap"], use_cache=False, options={"overlap": {"min_share": 0.9}})
    assert set(fewer.image_id) < set(flags.image_id)
    with pytest.raises(ValueError, match="outside"):
        detect(ds, stats, detectors=["overlap"], use_cache=False, options={"overlap": {"min_share": 0.01}})


def test_copies_unrelated_scenes_and_an_overlay_are_not_overlaps(tmp_path):
    """Exact copies are exact_duplicate's. A timestamp and a logo burned into every frame at one
    place match at one offset in every pair (the keypoint steps find them), but the pictures around
    them do not: the pixel check turns them down."""
    root = tmp_path / "photos"
    root.mkdir()
    for k in range(8):
        img = aerial(500 + k, 320, 240)
        cv2.putText(img, "2024-05-03 10:41", (40, 190), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 2)
        cv2.rectangle(img, (170, 40), (285, 80), (250, 250, 250), -1)
        cv2.putText(img, "CAM 7", (180, 68), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (0, 0, 0), 2)
        Image.fromarray(img).save(root / f"frame_{k}.png")
    Image.open(root / "frame_3.png").save(root / "copy_of_3.png")
    ds = open_dataset(root)
    stats = compute_stats(ds)
    f = features_for(ds, stats)
    kp = compute_keypoints(ds, f.ids, aligned(stats, f, "shape"))
    _, _, dx, dy, inliers = translations(kp, *candidate_matches(kp))
    matched = inliers >= MIN_INLIERS
    assert matched.sum() >= 20 and np.abs(dx[matched]).max() < 1 and np.abs(dy[matched]).max() < 1
    flags = detect(ds, stats, use_cache=False)
    assert "overlap" not in set(flags.detector)
    assert set(flags[flags.detector == "exact_duplicate"].image_id) == {"frame_3", "copy_of_3"}


def test_matches_voted_in_blocks_give_the_same_offsets(crops, monkeypatch):
    from seglib.outliers import overlaps

    root, _ = crops
    ds = open_dataset(root)
    stats = compute_stats(ds)
    f = features_for(ds, stats)
    kp = compute_keypoints(ds, f.ids, aligned(stats, f, "shape"))
    matches = candidate_matches(kp)
    whole = translations(kp, *matches, min_inliers=2)
    monkeypatch.setattr(overlaps, "MATCH_BLOCK", 64)  # dozens of blocks, each holding whole image pairs
    blocks = translations(kp, *matches, min_inliers=2)
    assert len(whole[0]) > 30 and all(np.array_equal(x, y) for x, y in zip(whole, blocks, strict=True))


def test_shared_pixel_groups_merge_the_detectors_groups():
    flags = pd.DataFrame([
        ("a", "exact_duplicate", "d1"), ("b", "exact_duplicate", "d1"),
        ("b", "overlap", "o1"), ("c", "overlap", "o1"), ("d", "overlap", "o1"),
        ("x", "near_duplicate", "s1"), ("y", "near_duplicate", "s1"),
        ("m", "shared_mask", "m1"), ("n", "shared_mask", "m1"),  # one mask on two pictures: no shared pixels
        ("z", "image_stats", None)], columns=["image_id", "detector", "group"])
    groups = shared_pixel_groups(flags)
    assert groups == {"a": "g1", "b": "g1", "c": "g1", "d": "g1", "x": "g2", "y": "g2"}
    assert shared_pixel_groups(flags[flags.detector == "image_stats"]) == {}


def test_progress_counts_both_passes_as_one_bar(crops):
    root, placed = crops
    ds = open_dataset(root)
    calls = []
    detect(ds, compute_stats(ds), detectors=["overlap", "near_duplicate"], use_cache=False,
           progress=lambda done, total: calls.append((done, total)))
    assert {t for _, t in calls} == {len(placed)}
    done = [d for d, _ in calls]
    assert done == sorted(done) and done[-1] == len(placed) and done.count(len(placed)) == 1
    assert DETECTORS["overlap"].reads_pixels and not DETECTORS["near_duplicate"].reads_pixels


def test_cli_lists_overlap_groups(crops, capsys):
    root, placed = crops
    assert main(["outliers", str(root), "--detectors", "overlap", "--json", "--no-cache"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["detectors"] == ["overlap"] and {f["image_id"] for f in doc["flags"]} == set(placed)
    assert {f["group"] for f in doc["flags"]} == {"o1", "o2", "o3"}


def test_small_and_flat_images_do_not_crash(tmp_path):
    root = tmp_path / "tiny"
    root.mkdir()
    Image.fromarray(np.full((20, 30), 90, np.uint8)).save(root / "flat.png")
    Image.fromarray(aerial(1, 40, 16)).save(root / "strip.png")
    Image.fromarray(aerial(2, 64, 64)).save(root / "square.png")
    ds = open_dataset(root)
    assert detect(ds, compute_stats(ds), detectors=["overlap"], use_cache=False).empty
