"""Every dataset format of DESIGN.md opens, with files the tests create."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from seglib.data import UNKNOWN_INDEX, DatasetError, open_dataset
from seglib.stats import compute_stats

RNG = np.random.default_rng(0)


def save_img(path, h=16, w=24, rgb=False, fmt=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    a = RNG.integers(0, 256, (h, w, 3) if rgb else (h, w), dtype=np.uint8)
    Image.fromarray(a).save(path, format=fmt)
    return a


def save_mask(path, values, h=16, w=24):
    path.parent.mkdir(parents=True, exist_ok=True)
    m = np.zeros((h, w), np.uint8)
    for k, v in enumerate(values):
        m[:, k * (w // len(values)) : (k + 1) * (w // len(values))] = v
    Image.fromarray(m).save(path)
    return m


def test_images_masks_layout_with_different_extensions(tmp_path):
    for i in range(3):
        save_img(tmp_path / "images" / f"im{i}.jpg", fmt="JPEG")
        save_mask(tmp_path / "masks" / f"im{i}.png", [0, 1, 2])
    ds = open_dataset(tmp_path)
    assert ds.kind == "folder"
    assert ds.ids == ["im0", "im1", "im2"]
    assert ds.labeled_ids == ds.ids
    assert ds.encoding == "index"
    m = ds.mask("im1")
    assert m.dtype == np.uint8 and set(np.unique(m)) == {0, 1, 2}
    assert ds.class_map.inferred and ds.class_map.ids == [0, 1, 2]
    assert not ds.report


def test_nested_tiles_and_image_label_layout(tmp_path):
    for t in (1, 3):
        for i in range(2):
            save_img(tmp_path / f"Tile {t}" / "images" / f"x{i}.jpg", fmt="JPEG")
            save_mask(tmp_path / f"Tile {t}" / "masks" / f"x{i}.png", [0, 1])
    save_img(tmp_path / "more" / "image" / "a.png")
    save_mask(tmp_path / "more" / "label" / "a.png", [0, 3])
    ds = open_dataset(tmp_path)
    assert sorted(ds.ids) == sorted(["Tile 1/x0", "Tile 1/x1", "Tile 3/x0", "Tile 3/x1", "more/a"])
    assert len(ds.labeled_ids) == 5
    assert ds.file_of("Tile 3/x1", "mask").endswith("Tile 3/masks/x1.png")


def test_camvid_layout_and_mask_suffix(tmp_path):
    for split in ("train", "test"):
        save_img(tmp_path / split / f"0001TP_{split}.png", rgb=True)
        save_mask(tmp_path / f"{split}annot" / f"0001TP_{split}.png", [0, 11])
    save_img(tmp_path / "val" / "f1.png", rgb=True)
    save_mask(tmp_path / "val_labels" / "f1_L.png", [0, 5])
    ds = open_dataset(tmp_path)
    assert sorted(ds.ids) == ["test/0001TP_test", "train/0001TP_train", "val/f1"]
    assert len(ds.labeled_ids) == 3
    assert ds.image("train/0001TP_train").shape == (16, 24, 3)


def test_binary_0_255_masks(tmp_path):
    save_img(tmp_path / "image" / "0.png")
    save_mask(tmp_path / "label" / "0.png", [0, 255])
    ds = open_dataset(tmp_path)
    assert ds.encoding == "binary"
    assert ds.class_map.names == ["background", "foreground"]
    assert set(np.unique(ds.mask("0"))) == {0, 1}


def test_palette_png_masks_take_palette_colours(tmp_path):
    save_img(tmp_path / "images" / "p.png")
    m = np.array([[0, 1, 2, 2]] * 4, np.uint8)
    pim = Image.fromarray(m, mode="P")
    pim.putpalette([0, 0, 0, 128, 0, 0, 0, 128, 0] + [0] * (256 * 3 - 9))
    (tmp_path / "masks").mkdir()
    pim.save(tmp_path / "masks" / "p.png")
    save_img(tmp_path / "images" / "p.png", h=4, w=4)
    ds = open_dataset(tmp_path)
    assert ds.encoding == "palette"
    assert ds.class_map.by_id(1).color == "#800000"
    np.testing.assert_array_equal(ds.mask("p"), m)


def _rgb_mask(path, colors, h=8, w=8):
    path.parent.mkdir(parents=True, exist_ok=True)
    a = np.zeros((h, w, 3), np.uint8)
    for k, c in enumerate(colors):
        a[:, k * (w // len(colors)) : (k + 1) * (w // len(colors))] = c
    Image.fromarray(a).save(path)


def test_rgb_masks_through_classes_json_and_unknown_colour_reported(tmp_path):
    (tmp_path / "classes.json").write_text(json.dumps([
        {"id": 0, "name": "sky", "color": "#0000FF"},
        {"id": 1, "name": "road", "color": "#FF0000"},
        {"id": 2, "name": "void", "color": "#000000", "ignore": True}]))
    save_img(tmp_path / "images" / "a.png", h=8, w=8, rgb=True)
    _rgb_mask(tmp_path / "masks" / "a.png", [(0, 0, 255), (255, 0, 0)])
    save_img(tmp_path / "images" / "b.png", h=8, w=8, rgb=True)
    _rgb_mask(tmp_path / "masks" / "b.png", [(0, 0, 255), (0, 255, 0)])  # green is unknown
    ds = open_dataset(tmp_path)
    assert ds.encoding == "rgb" and not ds.class_map.inferred
    assert ds.class_map.ignore_ids == [2]
    assert set(np.unique(ds.mask("a"))) == {0, 1}
    stats = compute_stats(ds)
    (problem,) = [p for p in ds.report.problems if p.code == "unknown_class"]
    assert problem.file.endswith("masks/b.png")
    assert "#00FF00 (32 px)" in problem.problem
    assert not problem.excluded and "b" in ds.ids  # reported, not silently mapped, image kept
    assert (ds.mask("b") == UNKNOWN_INDEX).sum() == 32
    assert stats.unknown_pixels == 32
    per_class = stats.per_class().set_index("name")
    assert bool(per_class.loc["void", "ignore"])


def test_grayscale_and_rgb_of_many_sizes_and_unlabeled(tmp_path):
    save_img(tmp_path / "images" / "small.png", 10, 12)
    save_mask(tmp_path / "masks" / "small.png", [0, 1], 10, 12)
    save_img(tmp_path / "images" / "big.png", 40, 30, rgb=True)
    save_mask(tmp_path / "masks" / "big.png", [0, 1], 40, 30)
    save_img(tmp_path / "images" / "nolabel.png", 20, 20)
    ds = open_dataset(tmp_path)
    assert ds.unlabeled_ids == ["nolabel"]
    assert ds.mask("nolabel") is None
    stats = compute_stats(ds)
    sizes = stats.size_histogram()
    assert len(sizes) == 3
    assert stats.per_image.loc["big", "channels"] == 3
    (p,) = ds.report.problems
    assert p.code == "image_without_mask" and not p.excluded


def test_flat_folder_is_unlabeled(tmp_path):
    for i in range(2):
        save_img(tmp_path / f"{i}.png")
    ds = open_dataset(tmp_path)
    assert ds.ids == ["0", "1"] and ds.labeled_ids == []


def test_kaggle_mars_npz_float_arrays(tmp_path):
    n = 4
    imgs = RNG.integers(0, 256, (n, 8, 16)).astype(np.float64)
    masks = RNG.integers(0, 5, (n, 8, 16)).astype(np.float64)
    np.savez(tmp_path / "mars.npz", training_set=np.stack([imgs, masks], 1), test_set=imgs[:2])
    ds = open_dataset(tmp_path / "mars.npz")
    assert ds.ids == ["00000", "00001", "00002", "00003", "test/00000", "test/00001"]
    assert ds.unlabeled_ids == ["test/00000", "test/00001"]
    np.testing.assert_array_equal(ds.image("00002"), imgs[2].astype(np.uint8))
    np.testing.assert_array_equal(ds.mask("00002"), masks[2].astype(np.uint8))
    stats = compute_stats(ds)
    assert int(stats.labeled.sum()) == 4 and len(stats.ids) == 6


def test_images_masks_npz_rgb_with_sidecar_class_map(tmp_path):
    imgs = RNG.integers(0, 256, (3, 8, 8, 3), dtype=np.uint8)
    masks = RNG.integers(0, 2, (3, 8, 8), dtype=np.uint8)
    np.savez(tmp_path / "set.npz", images=imgs, masks=masks)
    (tmp_path / "set.classes.json").write_text(json.dumps([{"id": 0, "name": "bg"}, {"id": 1, "name": "cell"}]))
    ds = open_dataset(tmp_path / "set.npz")
    assert ds.class_map.names == ["bg", "cell"] and not ds.class_map.inferred
    assert ds.image("00001").shape == (8, 8, 3)


def test_npz_rows_of_names_the_arrays_and_rows_of_every_layout(tmp_path):
    imgs = RNG.integers(0, 256, (3, 8, 8), dtype=np.uint8)
    masks = RNG.integers(0, 2, (3, 8, 8), dtype=np.uint8)
    np.savez(tmp_path / "k.npz", training_set=np.stack([imgs, masks], 1), test_set=imgs[:2])
    np.savez(tmp_path / "im.npz", images=imgs, masks=masks)
    np.savez(tmp_path / "un.npz", images=imgs)
    kaggle, im, un = (open_dataset(tmp_path / n) for n in ("k.npz", "im.npz", "un.npz"))
    assert kaggle.rows_of("00001") == {"training_set": 1} and kaggle.rows_of("test/00001") == {"test_set": 1}
    assert im.rows_of("00002") == {"images": 2, "masks": 2}
    assert un.rows_of("test/00002") == {"images": 2}


def test_all_ids_keeps_images_left_out_by_a_problem(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    for name in ("a", "b"):
        Image.fromarray(np.full((4, 4), 9, np.uint8)).save(tmp_path / "images" / f"{name}.png")
        Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "masks" / f"{name}.png")
    (tmp_path / "images" / "b.png").write_bytes(b"broken")
    ds = open_dataset(tmp_path)
    compute_stats(ds)
    assert ds.ids == ["a"] and ds.all_ids == ["a", "b"]


def test_classes_json_ignore_flag(tmp_path):
    (tmp_path / "classes.json").write_text(json.dumps([
        {"id": 0, "name": "road", "color": "#808080"}, {"id": 1, "name": "car", "color": "#FF0000"},
        {"id": 11, "name": "unlabelled", "color": "#000000", "ignore": True}]))
    save_img(tmp_path / "images" / "a.png")
    save_mask(tmp_path / "masks" / "a.png", [0, 1, 11])
    ds = open_dataset(tmp_path)
    stats = compute_stats(ds)
    pc = stats.per_class().set_index("name")
    assert pc.loc["unlabelled", "ignore"]
    # The ignore class is reported apart: the other shares sum to 1 without it.
    assert pc.loc[["road", "car"], "pixel_fraction"].sum() == pytest.approx(1.0)


def test_open_missing_and_wrong_kind(tmp_path):
    with pytest.raises(DatasetError, match="no such file"):
        open_dataset(tmp_path / "nope")
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(DatasetError, match="x.txt: not a dataset"):
        open_dataset(tmp_path / "x.txt")


def test_lazy_open_of_many_files_reads_few_pixels(tmp_path, monkeypatch):
    """Opening 10,000 files reads only a small sample of masks and no image."""
    img = Image.fromarray(np.zeros((4, 4), np.uint8))
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    for i in range(10_000):
        img.save(tmp_path / "images" / f"{i}.png")
        img.save(tmp_path / "masks" / f"{i}.png")
    import seglib.data.folder as dsmod
    reads = {"mask": 0, "image": 0}
    orig_mask = dsmod.read_mask_file
    monkeypatch.setattr(dsmod, "read_mask_file", lambda p: reads.__setitem__("mask", reads["mask"] + 1) or orig_mask(p))
    monkeypatch.setattr(dsmod, "read_image", lambda p: reads.__setitem__("image", reads["image"] + 1))
    ds = open_dataset(tmp_path)
    assert len(ds) == 10_000 and len(ds.labeled_ids) == 10_000
    assert reads["image"] == 0 and reads["mask"] <= 16
