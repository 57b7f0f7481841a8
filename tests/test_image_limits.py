"""An image over the pixel limit is that file's problem, the rest of the dataset opens, and a
decompression bomb is refused from its header: its pixels are never decoded."""
from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
from PIL import Image, ImageFile

from seglib.data import open_dataset
from seglib.data.io import ReadError, read_image
from seglib.stats import compute_stats


def good_pair(root, name):
    for folder, value in (("images", 100), ("masks", 1)):
        (root / folder).mkdir(exist_ok=True)
        Image.fromarray(np.full((8, 8), value, np.uint8)).save(root / folder / f"{name}.png")


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bomb(path, width: int, height: int) -> int:
    """A valid grey PNG of width x height zeros: a few hundred KB on disk, width x height bytes
    decoded (deflate packs zeros ~1000:1). Returns the file size."""
    z = zlib.compressobj(9)
    row = bytes(width + 1)  # filter byte + pixels
    step = max(1, (1 << 22) // len(row))
    parts = [z.compress(row * min(step, height - y)) for y in range(0, height, step)]
    idat = b"".join(parts) + z.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grey
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b""))
    return path.stat().st_size


@pytest.fixture
def decoded(monkeypatch):
    """Sizes of every image PIL decodes."""
    sizes = []
    real = ImageFile.ImageFile.load

    def spy(self):
        sizes.append(self.size)
        return real(self)
    monkeypatch.setattr(ImageFile.ImageFile, "load", spy)
    return sizes


@pytest.mark.parametrize("side, limit, words", [
    # PIL refuses above twice its MAX_IMAGE_PIXELS (~179 million pixels) while reading the header
    (14_000, None, "image too large to open safely (Image size (196000000 pixels)"),
    # below that, seglib's own limit (SEGLIB_MAX_IMAGE_PIXELS) decides, from the header too
    (5_000, "10_000_000", "image is 5000x5000 = 25,000,000 pixels, more than the limit of 10,000,000"),
])
def test_a_png_bomb_is_that_files_problem_and_never_decoded(tmp_path, monkeypatch, decoded, side, limit, words):
    if limit:
        monkeypatch.setenv("SEGLIB_MAX_IMAGE_PIXELS", limit)
    good_pair(tmp_path, "a")
    good_pair(tmp_path, "b")
    good_pair(tmp_path, "bomb")
    assert png_bomb(tmp_path / "images" / "bomb.png", side, side) < 1 << 20  # a few hundred KB
    ds = open_dataset(tmp_path)
    stats = compute_stats(ds, use_cache=False)
    assert stats.ids == ["a", "b"] and ds.ids == ["a", "b"]
    (p,) = [p for p in ds.report.problems if p.code == "unreadable_image"]
    assert p.image_id == "bomb" and p.file.endswith("images/bomb.png") and p.excluded
    assert words in p.problem
    assert (side, side) not in decoded and decoded  # the good files were decoded, the bomb never


def test_the_pixel_limit_is_an_environment_setting(tmp_path, monkeypatch, decoded):
    png_bomb(tmp_path / "wide.png", 3000, 2000)
    monkeypatch.setenv("SEGLIB_MAX_IMAGE_PIXELS", "5_000_000")
    with pytest.raises(ReadError, match=r"wide.png: image is 3000x2000 = 6,000,000 pixels.*5,000,000"):
        read_image(tmp_path / "wide.png")
    assert decoded == []
    monkeypatch.setenv("SEGLIB_MAX_IMAGE_PIXELS", "6000000")
    assert read_image(tmp_path / "wide.png").shape == (2000, 3000)
    monkeypatch.setenv("SEGLIB_MAX_IMAGE_PIXELS", "lots")
    with pytest.raises(ValueError, match="SEGLIB_MAX_IMAGE_PIXELS='lots' is not a whole number"):
        read_image(tmp_path / "wide.png")
    assert set(decoded) == {(3000, 2000)}  # decoded only once the limit allowed it
