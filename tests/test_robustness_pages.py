"""The robustness matrix, pages: every page opened on every edge-case dataset of tests/edge_datasets.py
raises nothing, and where it cannot serve it says why (an empty folder: nothing to show, and where it
looked; no labeled images or no scored pixel: no training, the Start button disabled with the reason)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from edge_datasets import EDGE_DATASETS, build
from streamlit.testing.v1 import AppTest

from seglib.augment.preview import check_pipeline
from seglib.viz import plots

APP = str(Path(__file__).resolve().parents[1] / "app.py")
PAGES = ["0_home", "1_dataset", "2_review", "3_augment", "4_train", "5_compare"]
# Datasets no page can show: the message every page gives instead (the dataset's path is in it too).
NOTHING_TO_SHOW = {"empty": "no image files found", "unreadable_only": "none of its 3 images can be used"}
# Why the Train page refuses to start, where it does.
NO_TRAINING = {"empty": None, "unreadable_only": NOTHING_TO_SHOW["unreadable_only"],
               "unlabeled_only": "0 labeled images", "one_image": "1 labeled image; training needs at least 2",
               "all_ignored": "ignored class (void)"}


@pytest.fixture(scope="module")
def datasets(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("edge")
    return {name: build(name, base) for name in EDGE_DATASETS}


@pytest.fixture
def open_page(datasets):
    """open_page(dataset name, page) -> AppTest after the app ran and switched to the page."""
    opened = []

    def make(name: str, page: str) -> AppTest:
        at = AppTest.from_file(APP, default_timeout=120)
        at.session_state["dataset_path"] = str(datasets[name])
        at.run()
        at.switch_page(f"pages/{page}.py").run()
        opened.append(at)
        return at

    yield make
    if opened:
        from ui.train import manager  # the Train page starts the job manager: no thread outlives the test

        manager().shutdown()


def messages(at: AppTest) -> dict[str, list[str]]:
    return {kind: [e.value for e in getattr(at, kind)] for kind in ("error", "warning", "info", "success")}


def says(at: AppTest, text: str, kinds=("error", "warning", "info")) -> bool:
    found = messages(at)
    return any(text in m for k in kinds for m in found[k])


@pytest.mark.parametrize("page", PAGES)
@pytest.mark.parametrize("name", list(EDGE_DATASETS))
def test_every_page_on_every_edge_dataset(open_page, datasets, name, page):
    at = open_page(name, page)
    assert not at.exception, [e.value for e in at.exception]
    texts = "\n".join(m for ms in messages(at).values() for m in ms)

    if name in NOTHING_TO_SHOW and (name == "empty" or page != "5_compare"):  # Compare: no run, see below
        assert says(at, NOTHING_TO_SHOW[name], ("error",)), texts
        assert any(str(datasets[name]) in e for e in messages(at)["error"])  # names where it looked
        assert "has 2" not in texts
        if name == "empty":
            assert not at.metric  # no "Classes 1", no chart: nothing pretends to be a dataset
            assert any("images/ + masks/" in e for e in messages(at)["error"])
        if page != "4_train":
            return

    if page == "4_train" and name != "empty":
        start = at.button(key="train_start")
        if name in NO_TRAINING:
            assert start.disabled and says(at, NO_TRAINING[name], ("error",)), texts
        else:
            assert not start.disabled, texts
    elif page == "5_compare":
        assert says(at, "can predict this dataset yet", ("info",)), texts  # no run in these tests
    elif page == "3_augment":
        if name == "unlabeled_only":
            assert says(at, "no labeled images", ("warning",))
        assert not any("different sizes" in e for e in messages(at)["error"]), texts  # batches are padded
    elif page == "0_home":
        metrics = {m.label: m.value for m in at.metric}
        if name == "unlabeled_only":
            assert metrics["Classes"] == "–" and says(at, "None of the 4 images has a mask", ("info",))
        elif name == "all_ignored":
            assert says(at, "Every labeled pixel is of an ignored class (void)", ("warning",))
        else:
            assert not messages(at)["error"] and not messages(at)["warning"], texts
        if name == "palette_unknown":  # reported with its pixel count, not silently mapped
            report = at.dataframe[-1].value
            assert any("7 (40 px)" in p for p in report["problem"])
        if name == "rgba_png":  # alpha dropped: three channels
            assert any("32×64×3 (4)" in c.value for c in at.caption)
        if name == "tiff_16bit_float":
            assert any("32×64×1 (4)" in c.value for c in at.caption)


# --- the library pieces behind what the pages show ------------------------------------------------
def test_class_share_axis_starts_at_zero_when_every_share_is_zero():
    """Before: plotly centred an all-zero axis on 0, a class-share chart from -100%."""
    per_class = pd.DataFrame({"id": [0, 1], "name": ["a", "b"], "color": ["#000000", "#FF0000"], "ignore": False,
                              "pixels": 0, "pixel_fraction": 0.0, "images_with_class": 0})
    for fig in (plots.class_share_figure(per_class), plots.images_per_class_figure(per_class)):
        assert tuple(fig.layout.xaxis.range) == (0, 1)
    per_class["pixel_fraction"] = [0.25, 0.75]
    assert plots.class_share_figure(per_class).layout.xaxis.range is None  # data decide otherwise


def test_a_pipeline_is_not_blamed_for_sizes_the_images_already_have():
    """Training pads each batch, so a dataset of many sizes is no pipeline error; a pipeline that
    turns one size into several still is."""
    from seglib.augment import new_step

    steps = [new_step("HorizontalFlip", (32, 64))]
    pairs = [(np.zeros((h, w), np.uint8), np.zeros((h, w), np.uint8)) for h, w in ((32, 64), (33, 47))]
    assert not [f for f in check_pipeline(steps, pairs) if f.level == "error"]


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory, datasets) -> Path:
    """A checkpoints folder holding one tiny run on the reference dataset (grey; background, thing, void)."""
    import os

    from seglib.train import TrainConfig, train

    root = tmp_path_factory.mktemp("edge-checkpoints")
    normal = build("normal", tmp_path_factory.mktemp("edge-normal"))
    old = os.environ.get("SEGLIB_DATA_DIR")
    os.environ["SEGLIB_DATA_DIR"] = str(root / "seglib-data")  # the review store training reads
    try:
        train(TrainConfig(data=str(normal), encoder="mobilenet_v2", epochs=1, batch_size=2, max_steps_per_epoch=1,
                          patience=0, device="cpu"), run_dir=root / "tiny")
    finally:
        if old is None:
            os.environ.pop("SEGLIB_DATA_DIR", None)
        else:
            os.environ["SEGLIB_DATA_DIR"] = old
    return root


@pytest.mark.parametrize("name", ["one_class", "unlabeled_only", "rgba_png"])
def test_compare_says_why_a_run_does_not_fit(open_page, checkpoints, monkeypatch, name):
    """A one-class (or mask-less) dataset has one class, not the two logits a model needs: before, Compare
    said the dataset 'has 2'."""
    monkeypatch.setenv("SEGLIB_CHECKPOINTS", str(checkpoints))
    at = open_page(name, "5_compare")
    assert not at.exception, [e.value for e in at.exception]
    why = " ".join(c.value for c in at.caption if "Not usable here" in c.value)
    expected = "takes 1 channel(s)" if name == "rgba_png" else "predicts 3 classes; this dataset has 1 (class_0)"
    assert expected in why and "has 2" not in why, why


def test_compare_offers_the_run_on_a_dataset_it_fits(open_page, checkpoints, monkeypatch):
    monkeypatch.setenv("SEGLIB_CHECKPOINTS", str(checkpoints))
    at = open_page("many_sizes", "5_compare")
    assert not at.exception, [e.value for e in at.exception]
    assert not says(at, "can predict this dataset yet")
    at.button(key="compare_go").click().run()
    assert not at.exception, [e.value for e in at.exception]
