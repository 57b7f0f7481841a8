"""The Compare page through streamlit's AppTest, on the two tiny runs of ``trained_runs`` and a copy
of their demo: picking runs and ensembles, stepping through images, the per-image order, the
dataset metrics, a confusion cell's images, the unlabeled split, label quality into the review
queue, export, and a broken run left out with its reason. (Clicks on plotly charts and table rows
are covered by the browser test, tests/e2e/test_compare_flow.py.)"""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from seglib.data import open_dataset
from seglib.predict import Comparison, Ensemble, dataset_layout, open_members, predict
from seglib.review import ReviewStore, dataset_key

ROOT = Path(__file__).resolve().parents[1]
PAGE = "pages/5_compare.py"


@pytest.fixture
def app(app_data_with_demo, trained_runs, monkeypatch):
    """An app data folder holding the runs' demo, and the runs' folder as the checkpoints."""
    data = app_data_with_demo()
    monkeypatch.setenv("SEGLIB_CHECKPOINTS", str(trained_runs["unet"].parent))
    return data


def compare_page(**state) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=240)
    for k, v in state.items():
        at.session_state[k] = v
    at.run()
    return at.switch_page(PAGE).run()


def press_compare(at: AppTest) -> AppTest:
    at.button(key="compare_go").click().run()
    assert not at.exception, at.exception
    return at


def section(at: AppTest, name: str) -> AppTest:
    at.segmented_control(key="compare_section").set_value(name).run()
    assert not at.exception, at.exception
    return at


def metrics(at) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def markdown(at) -> str:
    return "\n".join(m.value for m in at.markdown)


def expected(app, runs, split_ids=None) -> Comparison:
    ds = open_dataset(app / "demo" / "mars_demo.npz")
    members, _ = open_members([runs["unet"], runs["segformer"]], dataset_layout(ds))
    ids = split_ids(members, ds) if split_ids else ds.labeled_ids
    return Comparison(predict(ds, members, [Ensemble("mean", ("unet", "segformer"))], ids, device="cpu"))


def test_no_runs_says_how_to_get_one(app_data_with_demo, tmp_path, monkeypatch):
    app_data_with_demo()
    monkeypatch.setenv("SEGLIB_CHECKPOINTS", str(tmp_path / "empty"))
    at = compare_page()
    assert not at.exception
    assert any("No run" in i.value and "seglib train" in i.value for i in at.info)


def test_compare_two_runs_and_their_mean(app, trained_runs):
    at = compare_page()
    assert not at.exception
    assert any("press **Compare**" in i.value for i in at.info)
    press_compare(at)
    m = metrics(at)
    assert set(m) == {"mIoU · unet", "mIoU · segformer", "mIoU · mean ensemble"}
    # the pass's Cancel button and bar are gone once it finished
    assert not [b for b in at.button if b.key == "compare_pass_cancel"] and not at.get("progress")
    from seglib.predict import shared_val_ids

    cmp = expected(app, trained_runs, shared_val_ids)
    assert m["mIoU · unet"] == f"{cmp.scores('unet')['miou']:.3f}"
    # The Images section: the image the order puts first, then the next one.
    first = cmp.beats(at.session_state["compare_a"], at.session_state["compare_b"])   # the default order
    assert f"{first.index[0]}</b> · 1 / {len(cmp.ids)}" in markdown(at)
    at.button(key="compare_next").click().run()
    assert f"{first.index[1]}</b> · 2 / {len(cmp.ids)}" in markdown(at)
    at.button(key="compare_prev").click().run()
    assert "· 1 /" in markdown(at)
    assert len(at.get("image")) >= 8, "image, truth, 3 columns, disagreement, 2 error maps, confidence"


def test_per_image_order_and_dataset_metrics(app, trained_runs):
    at = press_compare(compare_page())
    section(at, "Per image")
    at.selectbox(key="compare_a_w").set_value("unet").run()
    at.selectbox(key="compare_b_w").set_value("segformer").run()
    at.selectbox(key="compare_order_w").set_value("b_beats_a").run()
    assert not at.exception
    table = at.dataframe[0].value
    assert "segformer − unet (mIoU)" in table.columns
    assert table["segformer − unet (mIoU)"].is_monotonic_decreasing
    from seglib.predict import shared_val_ids

    cmp = expected(app, trained_runs, shared_val_ids)
    assert list(table.index[:5]) == list(cmp.beats("segformer", "unet").index[:5])
    # Previous / next follow that order.
    section(at, "Images")
    assert f"{table.index[0]}</b> · 1 /" in markdown(at) and "Where B beats A the most" in markdown(at)
    section(at, "Dataset")
    scores = at.dataframe[0].value
    assert set(scores.index) == {"unet", "segformer", "mean ensemble"} and scores.index[-1] == "mean ensemble"
    assert scores.loc["unet", "mIoU"] == pytest.approx(cmp.scores("unet")["miou"])
    assert len(at.get("plotly_chart")) == 3


def test_confusion_cell_lists_its_images_and_opens_one(app):
    at = press_compare(compare_page())
    section(at, "Confusion")
    assert len(at.get("plotly_chart")) == 3
    at.session_state["compare_cell"] = ("unet", 3, 1)   # what a click on the cell sets
    at.run()
    assert any("true sand predicted as soil" in s.value for s in at.subheader)
    opens = [b for b in at.button if b.key and b.key.startswith("compare_open_")]
    assert opens and "of its sand" in opens[0].label
    image_id = opens[0].label.split(" · ")[0]
    opens[0].click().run()
    assert at.session_state["compare_section"] == "Images" and f"{image_id}</b>" in markdown(at)


def test_ensembles_weighted_and_vote(app):
    at = compare_page(compare_ensembles=["weighted", "vote"])
    press_compare(at)
    # The fitted weights are scored cross-fitted, and the page says so beside the number.
    assert {"mIoU · weighted ensemble · cross-fitted", "mIoU · vote ensemble"} <= set(metrics(at))
    tip = next(m for m in at.metric if m.label.startswith("mIoU · weighted")).help
    assert "Scored cross-fitted" in tip and "their mIoU" not in tip
    section(at, "Dataset")
    assert any("fitted for mIoU" in c.value and "Scored cross-fitted" in c.value for c in at.caption)


def test_unlabeled_test_images_rank_by_agreement(app):
    at = compare_page(compare_split="test")
    press_compare(at)
    m = metrics(at)
    assert set(m) == {"confidence · unet", "confidence · segformer", "confidence · mean ensemble"}
    assert not at.segmented_control(key="compare_section").options.count("Confusion")
    section(at, "Per image")
    table = at.dataframe[0].value   # images where the runs agree least first
    assert len(table) == 25 and table.columns[0] == "agreement" and table["agreement"].is_monotonic_increasing
    at.selectbox(key="compare_order_w").set_value("disagreement").run()
    table = at.dataframe[0].value
    assert "≠" in table.columns[0] and table.iloc[:, 0].is_monotonic_decreasing
    section(at, "Dataset")
    assert "Mean agreement of the runs" in metrics(at)


def test_label_quality_sends_images_to_the_review_queue(app, monkeypatch):
    import numpy as np

    # Barely trained runs give no image that stands apart: suggest the three worst (suggest()
    # itself is tested in test_predict.py; here, the page's way into the review queue).
    monkeypatch.setattr("seglib.predict.quality.suggest", lambda q: np.argsort(np.argsort(q)) < 3)
    at = press_compare(compare_page())
    section(at, "Label quality")
    send = at.button(key="compare_lq_send_suggested")
    n = int(send.label.split()[1])
    assert n == 3
    send.click().run()
    assert not at.exception
    store = ReviewStore()
    try:
        ds = open_dataset(app / "demo" / "mars_demo.npz")
        decisions = store.decisions(dataset_key(ds))
    finally:
        store.close()
    assert len(decisions) == n and (decisions["detector"] == "label_quality").all()
    assert decisions["reason"].str.startswith("label quality (").all()
    assert any(f"Flagged {n} images" in s.value for s in at.success)


def test_export_writes_masks_and_offers_csv(app, tmp_path):
    at = press_compare(compare_page())
    section(at, "Export")
    out = tmp_path / "masks"
    at.text_input(key="compare_ex_path").input(str(out))
    at.button(key="compare_write").click().run()
    assert not at.exception
    assert (out / "masks.npz").is_file() and len(list(out.glob("*.png"))) == 29
    at.text_input(key="compare_ex_path").input("/proc/not-a-dataset-root").run()
    at.button(key="compare_write").click().run()
    assert any("not-a-dataset-root" in e.value for e in at.error) and not at.exception
    labels = [b.label for b in at.get("download_button")]
    assert any(label.startswith("Download 29 masks") for label in labels)
    assert {"Per-image metrics (CSV)", "Dataset metrics (CSV)", "Confusion matrices (CSV)"} <= set(labels)


def test_a_broken_run_is_left_out_with_its_reason(app, trained_runs, tmp_path, monkeypatch):
    root = tmp_path / "checkpoints"
    for name in ("unet", "segformer"):
        shutil.copytree(trained_runs[name], root / name)
    best = root / "unet" / "best.safetensors"
    best.write_bytes(best.read_bytes()[:4000])
    monkeypatch.setenv("SEGLIB_CHECKPOINTS", str(root))
    at = press_compare(compare_page())
    assert any("Left out" in w.value and "truncated" in w.value for w in at.warning)
    assert set(metrics(at)) == {"mIoU · segformer"}


def _runs_with_a_cancelled_one(trained_runs, tmp_path, monkeypatch) -> Path:
    """A checkpoints folder: the two finished runs and a newer copy of the U-Net marked cancelled."""
    import os
    import time

    from seglib.train import RunFolder

    root = tmp_path / "checkpoints"
    for name in ("unet", "segformer"):
        shutil.copytree(trained_runs[name], root / name)
    time.sleep(0.01)
    shutil.copytree(trained_runs["unet"], root / "zz-cancelled")
    RunFolder(root / "zz-cancelled").write_status("cancelled")
    os.utime(root / "zz-cancelled", None)   # the newest run: listed first
    monkeypatch.setenv("SEGLIB_CHECKPOINTS", str(root))
    return root


def test_cancelled_runs_are_not_preselected_and_can_be_shown(app, trained_runs, tmp_path, monkeypatch):
    root = _runs_with_a_cancelled_one(trained_runs, tmp_path, monkeypatch)
    at = compare_page()
    assert not at.exception
    picked = at.multiselect(key="compare_runs")
    assert sorted(Path(p).name for p in picked.value) == ["segformer", "unet"]
    assert len(picked.options) == 2 and not any("zz-cancelled" in o for o in picked.options)  # finished only
    at.toggle(key="compare_finished_only").set_value(False).run()
    options = at.multiselect(key="compare_runs").options     # labels: name · model · mIoU · status
    assert any(o.startswith("zz-cancelled") and o.endswith("· cancelled") for o in options)
    assert root.is_dir()
    assert sorted(Path(p).name for p in at.multiselect(key="compare_runs").value) == ["segformer", "unet"]


def test_a_cancelled_comparison_goes_back_to_the_picker(app):
    at = compare_page()
    at.button(key="compare_go").click().run()
    # What a click on Cancel during the prediction pass leaves for the rerun (the interruption
    # itself is Streamlit's: the browser test presses the real button).
    at.session_state["compare_pass_cancelled"] = True
    at.session_state["compare_tta"] = True      # another comparison: not computed yet
    at.button(key="compare_go").click().run()
    assert not at.exception
    assert any("Comparison cancelled" in i.value for i in at.info)
    assert at.session_state["compare_applied"] is None
    at.button(key="compare_go").click().run()          # pressing Compare again computes it
    assert "mIoU · unet" in metrics(at)


def test_zoomed_pair_shows_a_and_b_large(app):
    from ui.compare_image import zoom_window

    assert zoom_window((64, 128), 4, 0.5, 0.5) == (slice(24, 40), slice(48, 80))
    assert zoom_window((64, 128), 2, 1.0, 0.0) == (slice(0, 32), slice(64, 128))    # kept inside the image
    at = press_compare(compare_page())
    assert any("64×128 (H×W)" in c.value for c in at.caption)     # as Home writes sizes, not 128×64
    before = len(at.get("image"))
    at.toggle(key="compare_zoom_on_w").set_value(True).run()
    assert not at.exception
    assert len(at.get("image")) == before + 3                          # ground truth, A and B
    at.segmented_control(key="compare_zoom_w").set_value(4).run()
    assert any("Rows 24–39, columns 48–79 of 64×128" in c.value for c in at.caption)


def test_windows_of_one_size_for_every_run(app):
    """The Windows choice overrides each run's own way of seeing an image (as `--tile` does)."""
    at = compare_page()
    at.selectbox(key="compare_tile").set_value(256).run()
    press_compare(at)
    assert any("256 px windows" in c.value for c in at.caption)
    assert at.session_state["compare_applied"].tile == 256
    assert {"mIoU · unet", "mIoU · segformer"} <= set(metrics(at))


def test_ensembles_look_off_with_one_run_and_come_back_with_two(app):
    at = compare_page(compare_ensembles=["vote"])
    both = list(at.multiselect(key="compare_runs").value)
    assert len(both) == 2 and at.pills(key="compare_ensembles").value == ["vote"]
    at.multiselect(key="compare_runs").set_value(both[:1]).run()
    assert not at.exception, at.exception
    off = at.pills(key="compare_ensembles_off")
    assert off.disabled and off.value == []  # nothing looks chosen...
    assert "compare_ensembles" not in [p.key for p in at.pills]
    assert any("choose another run" in c.value for c in at.caption)  # ...and the page says why
    press_compare(at)
    assert len(metrics(at)) == 1 and not [m for m in metrics(at) if "ensemble" in m]  # the one run's column
    at.multiselect(key="compare_runs").set_value(both).run()
    assert at.pills(key="compare_ensembles").value == ["vote"]  # the choice made before, kept
    assert not at.pills(key="compare_ensembles").disabled
