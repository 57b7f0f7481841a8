"""Every listed fault is reported with the file and the problem; the good pairs still open."""
from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from PIL import Image

from seglib.data import open_dataset
from seglib.stats import compute_stats


def good_pair(root, name, h=8, w=8, values=(0, 1)):
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((h, w), 100, np.uint8)).save(root / "images" / f"{name}.png")
    m = np.zeros((h, w), np.uint8)
    m[:, w // 2 :] = values[1]
    m[:, : w // 2] = values[0]
    Image.fromarray(m).save(root / "masks" / f"{name}.png")


def codes(ds):
    return {p.code: p for p in ds.report.problems}


def test_truncated_and_corrupt_images_are_left_out_with_the_file_named(tmp_path):
    good_pair(tmp_path, "ok")
    good_pair(tmp_path, "trunc", 64, 64)
    data = (tmp_path / "images" / "trunc.png").read_bytes()
    (tmp_path / "images" / "trunc.png").write_bytes(data[: len(data) // 2])
    good_pair(tmp_path, "garbage")
    (tmp_path / "images" / "garbage.png").write_bytes(b"not a png at all")
    ds = open_dataset(tmp_path)
    assert len(ds) == 3  # opening is lazy: pixels are checked by the stats pass
    stats = compute_stats(ds)
    c = codes(ds)
    bad = [p for p in ds.report.problems if p.code == "unreadable_image"]
    assert {p.image_id for p in bad} == {"trunc", "garbage"}
    assert all(p.file.endswith(f"images/{p.image_id}.png") and p.excluded for p in bad)
    assert "truncated" in next(p for p in bad if p.image_id == "trunc").problem
    assert ds.ids == ["ok"] and stats.ids == ["ok"]
    assert "unreadable_image" in c


def test_images_over_the_pixel_limit_are_refused_with_their_size(tmp_path, monkeypatch):
    good_pair(tmp_path, "small", 8, 8)
    good_pair(tmp_path, "big", 40, 50)
    monkeypatch.setenv("SEGLIB_MAX_IMAGE_PIXELS", "1000")
    ds = open_dataset(tmp_path)
    compute_stats(ds, use_cache=False)
    p = codes(ds)["unreadable_image"]
    assert p.image_id == "big" and p.file.endswith("images/big.png")
    assert "50x40 = 2,000 pixels" in p.problem and "1,000" in p.problem
    assert ds.ids == ["small"]


def test_pil_decompression_bomb_becomes_a_read_error(tmp_path, monkeypatch):
    from seglib.data.io import ReadError, read_image
    good_pair(tmp_path, "a", 40, 50)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 500)  # PIL refuses above twice this
    with pytest.raises(ReadError, match="a.png: image too large to open safely"):
        read_image(tmp_path / "images" / "a.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1500)  # only PIL's warning: the size check decides
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert read_image(tmp_path / "images" / "a.png").shape == (40, 50)


def test_unreadable_mask(tmp_path):
    good_pair(tmp_path, "a")
    good_pair(tmp_path, "b")
    (tmp_path / "masks" / "b.png").write_bytes(b"\x89PNG broken")
    ds = open_dataset(tmp_path)
    compute_stats(ds)
    p = codes(ds)["unreadable_mask"]
    assert p.file.endswith("masks/b.png") and p.image_id == "b"
    assert ds.ids == ["a"]


def test_mask_of_the_wrong_size(tmp_path):
    good_pair(tmp_path, "a")
    good_pair(tmp_path, "b")
    Image.fromarray(np.zeros((5, 7), np.uint8)).save(tmp_path / "masks" / "b.png")
    ds = open_dataset(tmp_path)
    compute_stats(ds)
    p = codes(ds)["mask_size"]
    assert p.file.endswith("masks/b.png")
    assert "7x5" in p.problem and "8x8" in p.problem
    assert ds.ids == ["a"]


def test_unknown_index_with_class_map_is_counted(tmp_path):
    (tmp_path / "classes.json").write_text(json.dumps([{"id": 0, "name": "bg"}, {"id": 1, "name": "fg"}]))
    good_pair(tmp_path, "a")
    good_pair(tmp_path, "b", values=(0, 7))
    ds = open_dataset(tmp_path)
    compute_stats(ds)
    p = codes(ds)["unknown_class"]
    assert p.file.endswith("masks/b.png") and "7 (32 px)" in p.problem
    assert p.severity == "warning" and "b" in ds.ids


def test_image_without_mask_and_mask_without_image(tmp_path):
    good_pair(tmp_path, "a")
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "images" / "lonely.png")
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "masks" / "orphan.png")
    ds = open_dataset(tmp_path)
    c = codes(ds)
    assert c["image_without_mask"].file.endswith("images/lonely.png")
    assert not c["image_without_mask"].excluded and ds.unlabeled_ids == ["lonely"]
    assert c["mask_without_image"].file.endswith("masks/orphan.png")
    assert ds.ids == ["a", "lonely"]


def test_empty_folder(tmp_path):
    (tmp_path / "images").mkdir()
    ds = open_dataset(tmp_path)
    assert len(ds) == 0
    p = codes(ds)["empty"]
    assert p.file == str(tmp_path) and "no image files" in p.problem


def test_same_stem_two_extensions(tmp_path):
    good_pair(tmp_path, "a")
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "images" / "a.jpg")
    ds = open_dataset(tmp_path)
    assert ds.ids == ["a"]
    assert "duplicate_id" in codes(ds)


def test_bad_classes_json_falls_back_with_a_message(tmp_path):
    good_pair(tmp_path, "a")
    (tmp_path / "classes.json").write_text("[{\"id\": 0, \"color\": \"blue\"}]")
    ds = open_dataset(tmp_path)
    p = codes(ds)["bad_class_map"]
    assert p.file.endswith("classes.json") and "colour" in p.problem
    assert ds.class_map.inferred


def test_npz_unknown_keys_and_wrong_shapes(tmp_path):
    imgs = np.zeros((3, 8, 8), np.uint8)
    np.savez(tmp_path / "a.npz", images=imgs, masks=np.zeros((2, 8, 8), np.uint8), extra=np.ones(3))
    ds = open_dataset(tmp_path / "a.npz")
    c = codes(ds)
    assert "extra" in c["npz_unknown_key"].problem
    assert "masks" in c["npz_shape"].file and "(2, 8, 8)" in c["npz_shape"].problem
    assert len(ds) == 3 and ds.labeled_ids == []  # images kept, as unlabeled
    assert ds.file_of(ds.ids[1]).endswith("a.npz[images][1]")

    np.savez(tmp_path / "b.npz", training_set=np.zeros((3, 3, 8, 8), np.uint8))
    ds = open_dataset(tmp_path / "b.npz")
    assert "(N, 2, H, W)" in codes(ds)["npz_shape"].problem and len(ds) == 0

    np.savez(tmp_path / "c.npz", foo=np.zeros(3))
    ds = open_dataset(tmp_path / "c.npz")
    assert "npz_keys" in codes(ds) or "npz_unknown_key" in codes(ds)
    assert len(ds) == 0


def test_npz_non_integer_mask_values(tmp_path):
    imgs = np.zeros((2, 4, 4))
    masks = np.zeros((2, 4, 4))
    masks[1, 0, 0] = 0.5
    np.savez(tmp_path / "m.npz", training_set=np.stack([imgs, masks], 1))
    ds = open_dataset(tmp_path / "m.npz")
    compute_stats(ds)
    p = codes(ds)["unreadable_mask"]
    assert "[training_set][1]" in p.file and "non-integer" in p.problem
    assert ds.ids == ["00000"]


def test_corrupt_npz_file_is_one_clear_error(tmp_path):
    from seglib.data import DatasetError
    (tmp_path / "bad.npz").write_bytes(b"PK\x03\x04 nope")
    with pytest.raises(DatasetError, match="bad.npz"):
        open_dataset(tmp_path / "bad.npz")


def test_stats_cache_is_invalidated_when_a_file_changes(tmp_path):
    good_pair(tmp_path, "a")
    ds = open_dataset(tmp_path)
    assert not compute_stats(ds).from_cache
    assert compute_stats(open_dataset(tmp_path)).from_cache
    import os
    import time
    m = tmp_path / "masks" / "a.png"
    Image.fromarray(np.ones((8, 8), np.uint8)).save(m)
    os.utime(m, ns=(time.time_ns() + 10**9, time.time_ns() + 10**9))
    stats = compute_stats(open_dataset(tmp_path))
    assert not stats.from_cache and stats.per_image.loc["a", "px_1"] == 64
