"""Shared fixtures: every test gets its own data folder; small demo datasets are made once."""
from __future__ import annotations

import os

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest  # noqa: E402

from seglib.data.demo import write_demo  # noqa: E402


@pytest.fixture(autouse=True)
def _isolated_data_dir(tmp_path, monkeypatch):
    """No test touches ~/.seglib or the repo's data/."""
    monkeypatch.setenv("SEGLIB_DATA_DIR", str(tmp_path / "seglib-data"))
    monkeypatch.delenv("SEGLIB_CACHE_DIR", raising=False)


@pytest.fixture(scope="session")
def demo_npz(tmp_path_factory):
    """A small demo dataset (300 labeled + 40 test images, seed 0) and its truth file."""
    out = tmp_path_factory.mktemp("demo") / "mars_demo.npz"
    write_demo(out, n=300, seed=0, n_test=40)
    return out


@pytest.fixture(scope="session")
def demo_npz_large(tmp_path_factory):
    """The default-size demo (2600 + 1040), for tests that score detectors against truth."""
    out = tmp_path_factory.mktemp("demo-large") / "mars_demo.npz"
    write_demo(out, seed=0)
    return out
