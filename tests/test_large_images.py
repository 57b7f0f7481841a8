"""Big photos: the detectors' pixel pass keeps only fixed-size features per image (memory flat in
the number of images), decodes JPEGs reduced, reports progress, and measures a folder exactly as
it measures the same images in an .npz; thumbnails decode JPEGs reduced."""
from __future__ import annotations

import io
import tracemalloc

import cv2
import numpy as np
import pytest
from PIL import Image

from seglib import viz
from seglib.data import open_dataset
from seglib.outliers import detect, features
from seglib.stats import compute_stats

W, H = 1500, 1200


def photo(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A smooth RGB scene (H, W, 3) and its 3-class mask, different for every seed."""
    rng = np.random.default_rng(seed)
    field = cv2.resize(rng.uniform(0, 1, (5, 7)).astype(np.float32), (W, H), interpolation=cv2.INTER_CUBIC)
    mask = np.digitize(field, [0.4, 0.7]).astype(np.uint8)
    img = rng.uniform(30, 220, (3, 3)).astype(np.float32)[mask] * (0.8 + 0.4 * field[..., None])
    return np.clip(img, 0, 255).astype(np.uint8), mask


def photo_folder(root, n: int, first: int = 0):
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(parents=True, exist_ok=True)
    for k in range(first, first + n):
        img, mask = photo(k)
        Image.fromarray(img).save(root / "images" / f"p{k:03d}.jpg", quality=90)
        Image.fromarray(mask).save(root / "masks" / f"p{k:03d}.png")
    return root


@pytest.fixture(scope="module")
def photos40(tmp_path_factory):
    return photo_folder(tmp_path_factory.mktemp("photos40"), 40)


def _peak_of_features(root, n: int) -> float:
    ds = open_dataset(root)
    ids = ds.ids[:n]
    features.MEMO.clear()
    tracemalloc.start()
    try:
        f = features.compute_features(ds, ids)
        return tracemalloc.get_traced_memory()[1] / 2**20, len(f)
    finally:
        tracemalloc.stop()


def test_memory_of_the_pixel_pass_does_not_grow_with_the_images(photos40, monkeypatch):
    monkeypatch.setattr(features, "WORKERS", 2)  # as many images in flight in both runs
    features.compute_features(open_dataset(photos40), open_dataset(photos40).ids[:2])  # imports, first calls
    peak20, n20 = _peak_of_features(photos40, 20)
    peak40, n40 = _peak_of_features(photos40, 40)
    assert (n20, n40) == (20, 40)
    # 20 more 1500x1200 photos held whole would add ~140 MB (image + mask); their features add ~60 KB.
    assert peak40 - peak20 < 4, (peak20, peak40)
    assert peak40 < 120, peak40  # a few images in flight, never the dataset


def test_progress_is_monotonic_and_reaches_the_total(photos40):
    ds = open_dataset(photos40)
    stats = compute_stats(ds, use_cache=False)
    features.MEMO.clear()
    calls = []
    detect(ds, stats, use_cache=False, progress=lambda done, total: calls.append((done, total)))
    assert calls[0] == (0, 40) and calls[-1] == (40, 40)
    assert all(t == 40 for _, t in calls)
    done = [d for d, _ in calls]
    assert done == sorted(done) and len(set(done)) == len(done)


def test_a_jpeg_is_decoded_reduced_for_thumbnails_and_features(photos40, monkeypatch):
    ds = open_dataset(photos40)
    image_id = ds.ids[0]
    img, mask, full, factor = ds.load_pair_reduced(image_id, longer=256)
    assert (factor, full, img.shape, mask.shape) == (4, (H, W), (300, 375, 3), (H, W))  # 1/8 would be < 256
    _, _, _, factor = ds.load_pair_reduced(image_id, shorter=features.FEATURE_SIDE)
    assert factor == 4  # shorter side 300 >= 256

    def no_full_decode(path):
        raise AssertionError(f"{path} decoded in full")
    monkeypatch.setattr("seglib.data.folder.read_image", no_full_decode)
    data, mime = viz.thumbnail(ds, image_id, viz.View(), size=256)
    assert Image.open(io.BytesIO(data)).size == (256, 205)
    features.MEMO.clear()
    f = features.compute_features(ds, ds.ids[:6])  # distinct photos: no exact-copy check needs full pixels
    assert len(f) == 6 and f.thumb.shape == (6, 32, 32)


def test_small_images_still_grow_by_whole_factors():
    img, mask = np.zeros((64, 128), np.uint8), np.ones((64, 128), np.uint8)
    big, big_mask = viz.thumbnail_pair(img, mask, 256)
    assert big.shape == (128, 256) and big_mask.shape == (128, 256)


def test_exact_copies_are_confirmed_on_full_pixels_across_formats(tmp_path, monkeypatch):
    root = photo_folder(tmp_path / "ds", 6)
    src = root / "images" / "p002.jpg"
    (root / "images" / "p100.jpg").write_bytes(src.read_bytes())                  # a byte copy
    Image.open(src).save(root / "images" / "p101.png")                              # same pixels as a PNG
    img = np.asarray(Image.open(src)).copy()
    img[600, 700] ^= 1                                                               # one pixel differs
    Image.fromarray(img).save(root / "images" / "p102.png")
    for name in ("p100", "p101", "p102"):
        (root / "masks" / f"{name}.png").write_bytes((root / "masks" / "p002.png").read_bytes())
    import seglib.data.folder as folder
    full_reads = []
    real = folder.read_image
    monkeypatch.setattr(folder, "read_image", lambda p: full_reads.append(p) or real(p))
    ds = open_dataset(root)
    stats = compute_stats(ds, use_cache=False)
    full_reads.clear()
    flags = detect(ds, stats, use_cache=False)
    exact = flags[flags.detector == "exact_duplicate"]
    assert set(exact.image_id) == {"p002", "p100", "p101"}
    assert exact.group.nunique() == 1
    near = flags[flags.detector == "near_duplicate"]
    assert "p102" in set(near.image_id)  # one pixel off: a near copy, not an exact one
    # The detectors decode in full only the reduced JPEGs that could be copies (PNGs are read in full once).
    assert sorted(p.name for p in full_reads) == ["p002.jpg", "p100.jpg"]


def test_a_folder_is_measured_like_the_same_images_in_an_npz(tmp_path, demo_npz):
    npz = open_dataset(demo_npz)
    ids = npz.labeled_ids[:120]
    root = tmp_path / "demo-folder"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i in ids:
        Image.fromarray(npz.image(i)).save(root / "images" / f"{i}.png")
        Image.fromarray(npz.mask(i)).save(root / "masks" / f"{i}.png")
    folder = open_dataset(root)
    folder.set_class_map(npz.class_map)
    features.MEMO.clear()
    a = features.compute_features(npz, ids)
    b = features.compute_features(folder, ids)
    assert a.ids == b.ids == ids
    for name in features._FIELDS:
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
