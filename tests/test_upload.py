"""Uploaded datasets are stored under the data folder; unsafe or unknown uploads are refused."""
from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest
from PIL import Image

from seglib.data import DatasetError, open_dataset
from seglib.data.upload import save_upload


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
