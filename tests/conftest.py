"""Shared fixtures: every test gets its own data folder; small demo datasets are made once."""
from __future__ import annotations

import os
import shutil

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest  # noqa: E402

from seglib.data.demo import write_demo  # noqa: E402


@pytest.fixture(autouse=True, scope="session")
def _error_details_shown():
    """Pages under AppTest raise their exceptions whole (``at.exception``), whatever the app's
    .streamlit/config.toml says for users (a short message with a reference: ui/errors.py)."""
    from streamlit import config

    config.set_option("client.showErrorDetails", "full")
    yield


@pytest.fixture(autouse=True)
def _isolated_data_dir(tmp_path, tmp_path_factory, monkeypatch):
    """No test touches ~/.seglib or the repo's data/ and checkpoints/. The app may open the tests' temporary
    folders (they lie outside the default dataset roots); tests of the roots set their own."""
    monkeypatch.setenv("SEGLIB_DATA_DIR", str(tmp_path / "seglib-data"))
    monkeypatch.delenv("SEGLIB_CACHE_DIR", raising=False)
    monkeypatch.setenv("SEGLIB_DATASET_ROOTS", str(tmp_path_factory.getbasetemp()))
    # app.py only sets a default: without this, runs of page tests would land in the repo's checkpoints/.
    monkeypatch.setenv("SEGLIB_CHECKPOINTS", str(tmp_path / "checkpoints"))


@pytest.fixture
def app_data_with_demo(tmp_path, monkeypatch, demo_npz):
    """make(n=None, n_test=None) -> an app data folder holding a demo where the app looks for
    it, set as SEGLIB_DATA_DIR: a copy of ``demo_npz`` (300 + 40), or a fresh demo of n images."""
    def make(n: int | None = None, n_test: int | None = None):
        d = tmp_path / "app-data"
        target = d / "demo" / "mars_demo.npz"
        target.parent.mkdir(parents=True, exist_ok=True)
        if n is None:
            shutil.copy(demo_npz, target)
        else:
            write_demo(target, n=n, seed=0, n_test=n_test)
        monkeypatch.setenv("SEGLIB_DATA_DIR", str(d))
        monkeypatch.delenv("SEGLIB_REVIEW_DB", raising=False)
        return d
    return make


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


@pytest.fixture(scope="session")
def trained_runs(tmp_path_factory, demo_npz):
    """Two tiny runs on ``demo_npz`` (a U-Net and a SegFormer, one short epoch each, same split):
    {"unet": Path, "segformer": Path}. Weights are barely trained: for plumbing, not quality."""
    from seglib.train import TrainConfig, train

    root = tmp_path_factory.mktemp("runs")
    old = os.environ.get("SEGLIB_DATA_DIR")
    os.environ["SEGLIB_DATA_DIR"] = str(root / "seglib-data")  # the review store these runs read
    try:
        runs = {}
        for name, arch, encoder in (("unet", "Unet", "mobilenet_v2"), ("segformer", "Segformer", "mit_b0")):
            cfg = TrainConfig(data=str(demo_npz), arch=arch, encoder=encoder, epochs=1, batch_size=8,
                              max_steps_per_epoch=3, patience=0, seed=0)
            runs[name] = root / name
            train(cfg, run_dir=runs[name])
    finally:
        if old is None:
            os.environ.pop("SEGLIB_DATA_DIR", None)
        else:
            os.environ["SEGLIB_DATA_DIR"] = old
    return runs


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    """An empty hub cache in tmp for this process and its children (the CLI), offline."""
    from huggingface_hub import constants

    cache = tmp_path / "hf" / "hub"
    cache.mkdir(parents=True)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    return cache


def _write_png(path, array) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


@pytest.fixture
def labeled_and_batch(tmp_path):
    """A folder dataset of 6 labeled 32x64 images and a batch folder of 3 new images (one in a
    sub-folder) beside a masks/ folder whose files are not images to rank."""
    import json

    import numpy as np

    rng = np.random.default_rng(0)
    root, batch = tmp_path / "fields", tmp_path / "batch-7"
    (root / "classes.json").parent.mkdir(parents=True)
    (root / "classes.json").write_text(json.dumps([{"id": 0, "name": "soil"}, {"id": 1, "name": "crop"}]))
    for k in range(6):
        _write_png(root / "images" / f"f{k}.png", rng.integers(0, 255, (32, 64, 3), dtype=np.uint8))
        _write_png(root / "masks" / f"f{k}.png", (rng.random((32, 64)) > 0.5).astype(np.uint8))
    for name in ("n1.png", "n2.jpg", "day2/n3.png"):
        _write_png(batch / name, rng.integers(0, 255, (32, 64, 3), dtype=np.uint8))
    _write_png(batch / "masks" / "n1.png", np.zeros((32, 64), np.uint8))
    return root, batch
