"""Uploaded datasets are stored under the data folder; unsafe or unknown uploads are refused."""
from __future__ import annotations

import io
import stat
import zipfile

import numpy as np
import pytest
from PIL import Image

from seglib.data import DatasetError, open_dataset
from seglib.data.upload import ZipLimits, check_members, save_upload


def _png(a) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="PNG")
    return buf.getvalue()


def test_zip_of_a_dataset_folder_opens(tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("cells/images/a.png", _png(np.zeros((8, 8), np.uint8)))
        zf.writestr("cells/masks/a.png", _png(np.full((8, 8), 255, np.uint8)))
        zf.writestr("__MACOSX/._junk", b"")
    path = save_upload("cells.zip", buf.getvalue())
    assert path.endswith("/cells")
    ds = open_dataset(path)
    assert ds.labeled_ids == ["a"] and ds.encoding == "binary"
    assert save_upload("cells.zip", buf.getvalue()) == path  # same bytes: same place, no second copy


def test_npz_upload(tmp_path, demo_npz):
    path = save_upload("mars.npz", demo_npz.read_bytes())
    assert len(open_dataset(path)) == 340


def test_zip_slip_and_unknown_types_are_refused():
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("../../evil.png", b"x")
    with pytest.raises(DatasetError, match="unsafe path"):
        save_upload("evil.zip", buf.getvalue())
    with pytest.raises(DatasetError, match="broken.zip: not a readable zip"):
        save_upload("broken.zip", b"PK\x03\x04 truncated")
    with pytest.raises(DatasetError, match="upload a .npz"):
        save_upload("notes.txt", b"hello")


# --- what an upload from anyone on the network may not do --------------------------------
def _zip(members: dict[str, bytes], compression=zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _uploads(tmp_path) -> list:
    """Everything in the uploads folder, hidden temporary folders included."""
    root = tmp_path / "seglib-data" / "uploads"
    return sorted(p.name for p in root.iterdir()) if root.exists() else []


def test_zip_bomb_is_refused_before_unpacking_and_leaves_nothing(tmp_path):
    bomb = _zip({"set/images/a.png": _png(np.zeros((8, 8), np.uint8)),
                 "set/images/huge.bin": bytes(64 << 20)})  # 64 MiB of zeros: ~64 KiB deflated
    assert len(bomb) < 1 << 20
    with pytest.raises(DatasetError, match=r"bomb.zip: unpacks to \d[\d,]* times its size .*zip bomb"):
        save_upload("bomb.zip", bomb)
    assert _uploads(tmp_path) == []
    # the same archive as an .npz is checked too (an .npz is a zip)
    with pytest.raises(DatasetError, match="times its size"):
        save_upload("bomb.npz", bomb)
    assert _uploads(tmp_path) == []


def test_zip_size_and_file_count_limits_are_configurable(tmp_path, monkeypatch):
    data = _zip({f"set/images/{i}.png": _png(np.full((8, 8), i, np.uint8)) for i in range(5)})
    with pytest.raises(DatasetError, match="5 files in the zip, more than the limit of 3"):
        save_upload("many.zip", data, limits=ZipLimits(max_files=3))
    with pytest.raises(DatasetError, match=r"unpacks to [\d,]+ bytes, more than the limit of 100 bytes"):
        save_upload("big.zip", data, limits=ZipLimits(max_unpacked_bytes=100))
    monkeypatch.setenv("SEGLIB_UPLOAD_MAX_FILES", "4")
    assert ZipLimits.from_env().max_files == 4
    with pytest.raises(DatasetError, match="limit of 4 .SEGLIB_UPLOAD_MAX_FILES"):
        save_upload("many.zip", data)
    assert _uploads(tmp_path) == []
    monkeypatch.setenv("SEGLIB_UPLOAD_MAX_FILES", "10")
    assert len(open_dataset(save_upload("many.zip", data))) == 5


def test_member_escaping_by_a_shared_name_prefix_is_refused(tmp_path):
    # "../cells-other/x.png" starts with the string "<parent>/cells": a prefix check lets it out.
    target = tmp_path / "cells"
    with zipfile.ZipFile(io.BytesIO(_zip({"../cells-other/x.png": b"x"}))) as zf:
        with pytest.raises(DatasetError, match="unsafe path inside the zip: ../cells-other/x.png"):
            check_members("evil.zip", zf, target)
    with zipfile.ZipFile(io.BytesIO(_zip({"/tmp/abs.png": b"x", "ok/../fine.png": b"y"}))) as zf:
        with pytest.raises(DatasetError, match="unsafe path inside the zip: /tmp/abs.png"):
            check_members("evil.zip", zf, target)
    # through save_upload: refused, nothing written beside or inside the uploads folder
    with pytest.raises(DatasetError, match="unsafe path"):
        save_upload("cells.zip", _zip({"cells/images/a.png": b"x", "../uploads-x/evil.png": b"x"}))
    assert _uploads(tmp_path) == [] and not (tmp_path / "seglib-data" / "uploads-x").exists()


def test_links_inside_a_zip_are_refused(tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("set/images/a.png", _png(np.zeros((8, 8), np.uint8)))
        link = zipfile.ZipInfo("set/images/passwd.png")
        link.create_system = 3  # unix
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(link, "/etc/passwd")
    with pytest.raises(DatasetError, match="links are not allowed inside the zip: set/images/passwd.png"):
        save_upload("links.zip", buf.getvalue())
    assert _uploads(tmp_path) == []


def test_a_zip_that_fails_half_way_leaves_no_partial_folder(tmp_path):
    good = _png(np.zeros((8, 8), np.uint8))
    data = bytearray(_zip({"set/images/a.png": good, "set/images/b.png": good * 50}))
    at = len(data) // 2  # inside the second member's data
    data[at] ^= 0xFF
    with pytest.raises(DatasetError, match="damaged.zip: cannot unpack"):
        save_upload("damaged.zip", bytes(data))
    assert _uploads(tmp_path) == []
