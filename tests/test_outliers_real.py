"""Detectors on real-looking sets: a second camera is a population, not a fifth of outliers; video
frames are a sequence, not pairs of near copies; the near-copy threshold is the user's."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from PIL import Image

from seglib.cli import main
from seglib.data import open_dataset
from seglib.outliers import DETECTORS, detect, replace_detector
from seglib.outliers.duplicates import near_duplicate_summary
from seglib.outliers.sequences import frame_number, is_sequence, sequence_label
from seglib.stats import compute_stats


def terrain(seed: int, shape=(64, 128)) -> np.ndarray:
    """A smooth textured picture, different for every seed (float32, 0..255)."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0, 255, (6, 10)).astype(np.float32)
    return cv2.resize(coarse, shape[::-1], interpolation=cv2.INTER_CUBIC) + rng.normal(0, 6, shape)


def two_cameras(n: int = 300, seed: int = 0):
    """n images: a fifth from a second camera (brighter, half the contrast, more noise), clean;
    six faults injected among the first camera's. Returns (images, second-camera rows,
    {row: fault})."""
    rng = np.random.default_rng(seed)
    imgs = [terrain(1000 * seed + i) for i in range(n)]
    second = list(range(0, n, 5))  # interleaved, as sequences of two cameras often are
    for i in second:
        imgs[i] = 0.55 * imgs[i] + 95 + rng.normal(0, 14, imgs[i].shape)
    first = iter(rng.permutation(sorted(set(range(n)) - set(second))).tolist())
    faults = {}

    def inject(kind, make):
        k = next(first)
        imgs[k] = make(imgs[k]).astype(np.float32)
        faults[k] = kind
    inject("blank", lambda im: np.full_like(im, 30))
    inject("saturated", lambda im: np.where(im > 40, 255, im))
    inject("checkerboard", lambda im: np.where(np.indices(im.shape).sum(0) % 2 == 0, 220, 30))
    inject("dark", lambda im: im * 0.12 + 12)
    inject("noisy", lambda im: im + rng.normal(0, 70, im.shape))
    inject("flat ramp", lambda im: np.broadcast_to(np.linspace(0, 255, im.shape[1]), im.shape))
    return np.clip(np.rint(np.stack(imgs)), 0, 255).astype(np.uint8), second, faults


def test_second_camera_is_normal_and_the_faults_still_stand_out(tmp_path):
    images, second, faults = two_cameras()
    np.savez(tmp_path / "cams.npz", images=images)
    ds = open_dataset(tmp_path / "cams.npz")
    flags = detect(ds, compute_stats(ds), use_cache=False)
    flagged = set(flags.image_id)
    assert not flagged & {ds.ids[i] for i in second}, flags[flags.image_id.isin({ds.ids[i] for i in second})]
    assert flagged == {ds.ids[i] for i in faults}  # recall 1.0, precision 1.0
    reasons = flags.set_index("image_id").reason
    dark = ds.ids[next(k for k, v in faults.items() if v == "dark")]
    assert "below its 30 most similar images" in reasons[dark]


def test_a_small_odd_group_is_still_odd(tmp_path):
    # Three alike odd images (a handful, not a population) are flagged, each of them.
    images, _, _ = two_cameras(n=200, seed=1)
    odd = [7, 8, 9]
    images[odd] = np.clip(images[odd].astype(np.float32) * 0.1 + 3, 0, 255).astype(np.uint8)
    np.savez(tmp_path / "odd.npz", images=images)
    ds = open_dataset(tmp_path / "odd.npz")
    flags = detect(ds, compute_stats(ds), detectors=["image_stats"], use_cache=False)
    assert {ds.ids[i] for i in odd} <= set(flags.image_id)


# --- near copies in video ------------------------------------------------------------------
def video_folder(root, n: int = 30):
    """clip/frame_0000.png ...: unrelated frames, except frames 10-13 (a slow pan over one scene)
    and frame 25, a re-exposed copy of frame 3."""
    rng = np.random.default_rng(0)
    scene = terrain(99, (64, 160))
    frames = [terrain(i) for i in range(n)]
    for k in range(4):
        frames[10 + k] = scene[:, k : k + 128] + rng.normal(0, 2, (64, 128))
    frames[25] = frames[3] + 8 + rng.normal(0, 2.5, (64, 128))
    (root / "clip").mkdir(parents=True)
    for i, f in enumerate(frames):
        Image.fromarray(np.clip(f, 0, 255).astype(np.uint8)).save(root / "clip" / f"frame_{i:04d}.png")
    return open_dataset(root)


def test_consecutive_frames_are_one_sequence_and_copies_stay_copies(tmp_path):
    ds = video_folder(tmp_path / "video")
    near = detect(ds, compute_stats(ds), detectors=["near_duplicate"], use_cache=False).set_index("image_id")
    seq = [f"clip/frame_{i:04d}" for i in range(10, 14)]
    assert sorted(near.index) == sorted(seq + ["clip/frame_0003", "clip/frame_0025"])
    assert set(near.loc[seq, "group"]) == {"s1"} and near.loc[seq, "reason"].nunique() == 1
    assert near.loc[seq[0], "reason"].startswith("frames clip/frame_0010-0013 are a sequence: 4 consecutive images")
    assert (near.loc[seq, "score"] < near.loc["clip/frame_0003", "score"]).all()  # a video ranks below a copy
    assert near.loc["clip/frame_0003", "reason"].startswith("near copy of clip/frame_0025")
    assert near_duplicate_summary(near.reset_index()) == {"copies": 2, "copy_groups": 1, "sequences": 1,
                                                          "in_sequences": 4}


def test_sequence_rules():
    ids = ["a/f_0001", "a/f_0002", "a/f_0003", "b/f_0004", "x", "a/f_0009"]
    assert frame_number("a/f_0002") == ("a/f_", 2, "", "0002") and frame_number("x") is None
    assert is_sequence(ids, np.array([2, 0, 1])) and sequence_label(ids, np.array([1, 0])) == "a/f_0001-0002"
    assert not is_sequence(ids, np.array([0, 2]))       # not consecutive rows
    assert not is_sequence(ids, np.array([2, 3]))       # another sequence's name
    assert not is_sequence(ids, np.array([3, 4]))       # an id without a number
    assert not is_sequence(["f_2", "f_1"], np.array([0, 1]))  # numbers must rise
    assert is_sequence(["00012", "00013"], np.array([0, 1]))  # npz rows


def test_near_copy_threshold_is_an_option_with_a_live_count(tmp_path, capsys):
    ds = video_folder(tmp_path / "video")
    stats = compute_stats(ds)
    default = detect(ds, stats, use_cache=False)
    strict = detect(ds, stats, detectors=["near_duplicate"], options={"near_duplicate": {"min_corr": 0.999}})
    assert set(strict.image_id) < set(default[default.detector == "near_duplicate"].image_id)
    assert detect(ds, stats, detectors=["near_duplicate"], options={"near_duplicate": {"min_corr": 0.999}}).equals(
        strict)  # cached under its options
    merged = replace_detector(default, "near_duplicate", strict)
    assert set(merged.detector) == set(default.detector)
    assert merged[merged.detector == "near_duplicate"].reset_index(drop=True).equals(strict)
    with pytest.raises(ValueError, match="outside 0.9..1"):
        DETECTORS["near_duplicate"](ds, stats, min_corr=0.5)
    assert main(["outliers", str(ds.source), "--json", "--near-threshold", "0.999"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert {f["image_id"] for f in doc["flags"] if f["detector"] == "near_duplicate"} == set(strict.image_id)
    assert main(["outliers", str(ds.source), "--near-threshold", "2"]) == 1
    assert "outside 0.9..1" in capsys.readouterr().err
