"""The statistics pass at scale, on small synthetic images: exact intensity without float64 copies,
progress as images are read, a warm open that reads no pixel, memory that does not grow with the
number of images, and the CLI's progress bar."""
from __future__ import annotations

import json
import tracemalloc

import numpy as np
import pytest
from PIL import Image

import seglib.data.folder as folder_mod
import seglib.stats as stats_mod
from seglib.cli import main
from seglib.data import open_dataset
from seglib.stats import _intensity, compute_stats


def _folder(root, n, h=32, w=48, colour=True):
    rng = np.random.default_rng(n)
    colours = np.array([[0, 0, 0], [0x3C, 0x10, 0x98], [0xFE, 0xDD, 0x3A]], np.uint8)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(root / "images" / f"{i:04d}.png")
        labels = (np.arange(w)[None, :] * 3 // w + np.zeros((h, 1), int)) % 3
        mask = colours[labels] if colour else labels.astype(np.uint8)
        Image.fromarray(mask).save(root / "masks" / f"{i:04d}.png")
    return root


@pytest.mark.parametrize("shape", [(3, 7, 5), (2, 130, 170, 3), (1, 300, 200, 3), (4, 1, 1)])
def test_intensity_is_exact(shape):
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, shape, dtype=np.uint8)
    imgs[0].flat[0] = 255  # extremes present
    flat = imgs.reshape(len(imgs), -1).astype(np.float64)
    got = _intensity(imgs)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got[:, 0], flat.mean(1), rtol=1e-6)
    np.testing.assert_allclose(got[:, 1], flat.std(1), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(got[:, 2], flat.min(1))
    np.testing.assert_array_equal(got[:, 3], flat.max(1))


def test_intensity_of_a_flat_image_has_zero_std():
    got = _intensity(np.full((1, 500, 700, 3), 200, np.uint8))
    assert got[0].tolist() == [200.0, 0.0, 200.0, 200.0]


def test_progress_reports_every_image_read_and_ends_at_the_total(tmp_path, monkeypatch):
    ds = open_dataset(_folder(tmp_path / "d", 12))
    calls = []
    compute_stats(ds, use_cache=False, progress=lambda done, total: calls.append((done, total)))
    assert calls[0] == (1, 12) and calls[-1] == (12, 12)  # at most every 0.1 s, always the first and last
    monkeypatch.setattr(stats_mod.Ticker, "every", 0.0)
    calls.clear()
    compute_stats(ds, use_cache=False, progress=lambda done, total: calls.append((done, total)))
    assert calls == [(k, 12) for k in range(1, 13)]
    calls.clear()
    compute_stats(open_dataset(tmp_path / "d"), progress=lambda d, t: calls.append((d, t)))
    assert calls == []  # a cache hit reads no image


def test_warm_open_of_a_colour_folder_reads_no_pixel(tmp_path, monkeypatch):
    root = _folder(tmp_path / "d", 10)
    (root / "classes.json").write_text(json.dumps({"classes": [
        {"title": "bg", "color": "#000000"}, {"title": "building", "color": "#3C1098"},
        {"title": "vegetation", "color": "#FEDD3A"}]}))
    cold = compute_stats(open_dataset(root))
    reads = []
    monkeypatch.setattr(folder_mod, "read_mask_file", lambda p: reads.append(p))
    monkeypatch.setattr(folder_mod, "read_image", lambda p: reads.append(p))
    ds = open_dataset(root)
    warm = compute_stats(ds)
    assert reads == [] and warm.from_cache and ds.encoding == "rgb"
    assert ds.class_map.names == ["bg", "building", "vegetation"]
    np.testing.assert_array_equal(warm.counts, cold.counts)


def test_memory_does_not_grow_with_the_number_of_images(tmp_path):
    """Peak traced memory of a cold pass: 3x the images may add their per-image features
    (about 2.1 kB each) and nothing like an image each (64x96x3 = 18 kB). Both sizes exceed the
    window of images in flight (at most 32), so a loaded machine decoding further ahead adds the
    same to both."""
    peaks = {}
    for n in (32, 96):
        ds = open_dataset(_folder(tmp_path / f"d{n}", n, h=64, w=96, colour=False))
        tracemalloc.start()
        compute_stats(ds, use_cache=False)
        peaks[n] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert peaks[96] - peaks[32] < 64 * 6_000


def test_cli_stats_shows_a_progress_bar_on_stderr(tmp_path, capsys):
    root = _folder(tmp_path / "d", 5)
    assert main(["stats", str(root), "--no-cache"]) == 0
    out = capsys.readouterr()
    assert "stats" in out.err and "5/5" in out.err
    assert "5 images" in out.out and "rgb masks" in out.out
