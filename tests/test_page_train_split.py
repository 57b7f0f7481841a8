"""The Train page's split setting under streamlit.testing: a dataset of crops not read by the
detectors yet says so and offers to look; once looked, a split by image warns with the counts,
near the setting and above Start; the offered split by groups clears the warning; a dataset whose
detectors already ran shows it at once; the choice is what training gets."""
from __future__ import annotations

from pathlib import Path

import pytest
from crop_datasets import write_crops
from streamlit.testing.v1 import AppTest

from seglib.data import open_dataset
from seglib.outliers import detect
from seglib.train import RunFolder

APP = str(Path(__file__).resolve().parents[1] / "app.py")
PAGE = "pages/4_train.py"
W = "train_w_"


@pytest.fixture
def crops(tmp_path, monkeypatch):
    monkeypatch.setenv("SEGLIB_CHECKPOINTS", str(tmp_path / "checkpoints"))
    root = tmp_path / "aerial"
    write_crops(root)
    return root


def _open(path) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params["dataset"] = str(path)
    at.run()
    at.switch_page(PAGE).run()
    assert not at.exception, at.exception
    return at


def _warnings(at: AppTest) -> list[str]:
    return [w.value for w in at.warning]


def test_a_leaking_split_is_found_warned_about_and_fixed(crops):
    at = _open(crops)
    assert at.selectbox(key=W + "split_by").value == "image"
    assert any("Not looked for yet" in c.value for c in at.caption) and not _warnings(at)
    at.button(key="train_split_check").click().run()
    assert not at.exception, at.exception
    near, above_start = _warnings(at)[:2]
    assert "**This split leaks**" in near and "of 3 groups of images that share pixels (30 images, 3 of them" in near
    assert "on both sides: see *Split by*" in above_start
    at.button(key="train_split_by_groups").click().run()
    assert at.selectbox(key=W + "split_by").value == "overlap"
    assert not _warnings(at)
    assert any("No images share pixels across this split (3 groups" in c.value for c in at.caption)
    # the run trains on the split the form shows
    at.button(key="train_preset_quick").click().run()
    at.selectbox(key=W + "split_by").set_value("overlap")
    at.number_input(key=W + "epochs").set_value(1)
    at.number_input(key=W + "max_steps_per_epoch").set_value(1)
    at.number_input(key=W + "batch_size").set_value(4)
    at.text_input(key=W + "name").set_value("grouped").run()
    at.button(key="train_start").click().run()
    assert not at.exception and "Started grouped" in at.success[0].value
    from ui.train import manager

    try:
        snap = manager().wait(manager().snapshots()[0].id, 300)
        assert snap.status == "done", snap.error
    finally:
        manager().shutdown()
    cfg = RunFolder(crops.parent / "checkpoints" / "grouped").read_config()
    assert cfg["split_by"] == "overlap" and cfg["resolved"]["split"]["groups_cut"] == 0
    assert not {i.split("/")[0] for i in cfg["train_ids"]} & {i.split("/")[0] for i in cfg["val_ids"]}


def test_detectors_already_run_show_the_warning_at_once(crops):
    ds = open_dataset(crops)
    detect(ds)  # as the Review page or `seglib outliers` would have
    at = _open(crops)
    assert any("**This split leaks**" in w for w in _warnings(at))
    at.selectbox(key=W + "split_by").set_value("folder").run()
    assert not _warnings(at)  # each folder is one scene here
    at.number_input(key=W + "val_fraction").set_value(0.5).run()
    assert not _warnings(at) and not at.error
