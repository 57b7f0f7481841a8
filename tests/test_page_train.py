"""The Train page under streamlit.testing: valid combinations only, presets, start and queue and
cancel, failures shown, the runs table with overlays, opening, resuming, reusing and deleting a
run, interrupted runs after a restart, and the view kept in the URL."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from seglib.models import catalog
from seglib.train import RunFolder, TrainConfig

APP = str(Path(__file__).resolve().parents[1] / "app.py")
PAGE = "pages/4_train.py"
TIMEOUT = 180
W = "train_w_"


@pytest.fixture
def checkpoints(tmp_path, monkeypatch):
    root = tmp_path / "checkpoints"
    monkeypatch.setenv("SEGLIB_CHECKPOINTS", str(root))
    return root


@pytest.fixture
def open_page(app_data_with_demo, checkpoints):
    """open_page(query=None) -> AppTest on the Train page (jobs cancelled after the test)."""
    app_data_with_demo()
    opened = []

    def make(query: dict | None = None) -> AppTest:
        at = AppTest.from_file(APP, default_timeout=120)
        at.query_params.update(query or {})
        at.run()
        at.switch_page(PAGE).run()
        assert not at.exception, at.exception
        opened.append(at)
        return at

    yield make
    if opened:
        from ui.train import manager

        manager().shutdown()


def _manager():
    from ui.train import manager

    return manager()


def _tiny(at: AppTest, epochs: int = 1, steps: int = 2) -> None:
    """Quick preset, then smaller still: a few seconds on a CPU."""
    at.button(key="train_preset_quick").click().run()
    at.number_input(key=W + "epochs").set_value(epochs)
    at.number_input(key=W + "max_steps_per_epoch").set_value(steps)
    at.number_input(key=W + "batch_size").set_value(8).run()


def _texts(at: AppTest) -> str:
    return "\n".join([m.value for m in at.markdown] + [c.value for c in at.caption])


def test_only_valid_combinations_are_offered(open_page):
    at = open_page()
    assert at.title[0].value.startswith("Train · ")
    assert at.selectbox(key=W + "arch").value == "Unet" and at.selectbox(key=W + "encoder").value == "resnet18"
    at.selectbox(key=W + "arch").set_value("DPT").run()
    assert not at.exception
    valid = [r["encoder"] for r in catalog() if r["arch"] == "DPT" and r["ok"]]
    options = [o.split(" — ")[0] for o in at.selectbox(key=W + "encoder").options]  # "name — summary"
    assert options == valid == ["tu-vit_tiny_patch16_224"]
    assert at.selectbox(key=W + "encoder").value == "tu-vit_tiny_patch16_224"
    assert "DPT needs a timm ViT encoder" in _texts(at)  # the reason for the rest
    at.selectbox(key=W + "arch").set_value("UnetPlusPlus").run()
    assert not [o for o in at.selectbox(key=W + "encoder").options if o.startswith("mit_")]
    assert "does not support Mix Transformer" in _texts(at)


def test_presets_and_form_errors(open_page):
    at = open_page()
    defaults = TrainConfig()
    assert at.number_input(key=W + "epochs").value == defaults.epochs
    assert at.multiselect(key=W + "loss_terms").value == ["focal", "dice"]
    assert at.selectbox(key=W + "sampler").value == "oversample"
    at.button(key="train_preset_quick").click().run()
    quick = TrainConfig.quick()
    assert at.selectbox(key=W + "encoder").value == quick.encoder
    assert at.number_input(key=W + "max_steps_per_epoch").value == quick.max_steps_per_epoch
    at.number_input(key="train_w_loss_w_dice").set_value(0.5).run()
    assert "focal+0.5*dice" in _texts(at)
    at.multiselect(key=W + "loss_terms").set_value([]).run()
    assert at.button(key="train_start").disabled and "choose at least one term" in at.error[0].value
    at.multiselect(key=W + "loss_terms").set_value(["ce"]).run()
    at.selectbox(key=W + "class_weights").set_value("manual").run()
    at.text_input(key=W + "manual_weights").set_value("1, 2").run()
    assert at.button(key="train_start").disabled and "the dataset has 5 class ids" in at.error[0].value
    at.text_input(key=W + "manual_weights").set_value("1, 1, 2, 2, 8").run()
    assert not at.button(key="train_start").disabled
    at.button(key="train_preset_default").click().run()
    assert at.number_input(key=W + "epochs").value == defaults.epochs


def test_the_form_survives_a_reload(app_data_with_demo, open_page):
    from seglib.review import dataset_key
    from seglib.train import form_memory

    data = app_data_with_demo()
    key = dataset_key(data / "demo" / "mars_demo.npz")
    at = open_page()
    assert form_memory.recall(key) == {}  # opening the page writes nothing; a change does
    at.selectbox(key=W + "arch").set_value("FPN")
    at.selectbox(key=W + "encoder").set_value("mobilenet_v2")
    at.number_input(key=W + "epochs").set_value(7)
    at.selectbox(key=W + "optimizer").set_value("sgd")
    at.multiselect(key=W + "loss_terms").set_value(["ce", "dice"])
    at.checkbox(key=W + "exclude_background").check()
    at.text_input(key=W + "name").set_value("only-once").run()
    at.number_input(key=W + "loss_w_dice").set_value(0.5).run()
    assert not at.exception

    again = open_page()  # a reload: a new session on the same data folder
    assert again.selectbox(key=W + "arch").value == "FPN"
    assert again.selectbox(key=W + "encoder").value == "mobilenet_v2"
    assert again.number_input(key=W + "epochs").value == 7 and again.selectbox(key=W + "optimizer").value == "sgd"
    assert again.multiselect(key=W + "loss_terms").value == ["ce", "dice"]
    assert again.number_input(key=W + "loss_w_dice").value == 0.5 and "ce+0.5*dice" in _texts(again)
    assert again.checkbox(key=W + "exclude_background").value
    assert again.text_input(key=W + "name").value == ""  # a run name is for one run

    # Values the form no longer offers fall back to the defaults; the rest stay.
    saved = form_memory.recall(key)
    assert saved["epochs"] == 7
    form_memory.remember(key, {**saved, "encoder": "gone-encoder", "batch_size": "many", "lr": 1e9,
                               "optimizer": "lion", "loss_terms": ["ce", "nonsense"]})
    later = open_page()
    assert not later.exception
    defaults = TrainConfig()
    assert later.selectbox(key=W + "encoder").value == defaults.encoder
    assert later.number_input(key=W + "batch_size").value == defaults.batch_size
    assert later.number_input(key=W + "lr").value == defaults.lr
    assert later.selectbox(key=W + "optimizer").value == defaults.optimizer
    assert later.multiselect(key=W + "loss_terms").value == ["focal", "dice"]
    assert later.selectbox(key=W + "arch").value == "FPN" and later.number_input(key=W + "epochs").value == 7


def test_start_train_and_see_the_run(open_page, checkpoints):
    at = open_page()
    _tiny(at, epochs=2)
    at.text_input(key=W + "name").set_value("first").run()
    at.button(key="train_start").click().run()
    assert not at.exception and "Started first" in at.success[0].value
    snap = _manager().wait(_manager().snapshots()[0].id, TIMEOUT)
    assert snap.status == "done", snap.error
    at.run()
    assert not at.exception
    assert ":green-badge[done] **first**" in _texts(at)
    table = at.dataframe[0].value
    assert list(table["run"]) == ["first"] and table["status"][0] == "done" and table["epochs"][0] == "2/2"
    assert at.multiselect(key="train_compare").value == ["first"]  # the newest run's curves are shown
    assert len(at.get("plotly_chart")) >= 6  # 4 live curves + 2 overlaid metrics
    assert len(at.get("image")) == 8  # the validation strip
    cfg = RunFolder(checkpoints / "first").read_config()
    assert cfg["encoder"] == "mobilenet_v2" and cfg["epochs"] == 2 and cfg["loss"] == "focal+dice"


def test_queue_and_cancel(open_page):
    at = open_page()
    _tiny(at, epochs=200, steps=0)
    at.button(key="train_start").click().run()
    assert at.button(key="train_start").label == "Queue training"
    at.button(key="train_start").click().run()
    assert "Queued" in at.info[0].value and "position 1" in at.info[0].value
    running, queued = [s.id for s in _manager().snapshots()]
    assert _manager().snapshot(queued).status == "queued"
    at.button(key=f"train_cancel_{queued}").click().run()
    assert _manager().snapshot(queued).status == "cancelled"
    at.button(key=f"train_cancel_{running}").click().run()
    snap = _manager().wait(running, TIMEOUT)
    assert snap.status == "cancelled"
    at.run()
    assert not at.exception and at.button(key="train_start").label == "Start training"
    assert "cancelled before it started" in _texts(at)


def test_a_job_cancelled_in_its_first_epoch_draws_no_empty_charts(app_data_with_demo, open_page):
    from seglib.train import Callback

    class StopAtStep11(Callback):  # as a Cancel click during the first epoch, after a step point (every 10)
        polls = 0

        def should_stop(self):
            self.polls += 1
            return self.polls >= 11

    data = app_data_with_demo()
    at = open_page()
    cfg = TrainConfig.quick(str(data / "demo" / "mars_demo.npz"), epochs=1, max_steps_per_epoch=0, batch_size=8)
    snap = _manager().wait(_manager().submit(cfg, name="short", callbacks=[StopAtStep11()]), TIMEOUT)
    assert snap.status == "cancelled" and snap.steps_log and not snap.history
    at.run()
    assert not at.exception
    assert "No epochs finished: nothing to plot." in _texts(at)
    assert "cancelled in its first epoch: no weights saved" in _texts(at)   # not "epoch 0; last weights kept"
    assert len(at.get("plotly_chart")) == 0  # no empty score charts (plotly's range for nothing: 0-400%)


def test_a_failed_job_shows_its_error(open_page, tmp_path):
    at = open_page()
    job = _manager().submit(TrainConfig.quick(str(tmp_path / "gone.npz")), name="broken")
    _manager().wait(job, TIMEOUT)
    at.run()
    assert not at.exception
    assert any("gone.npz" in e.value for e in at.error)
    assert at.dataframe == [] or "broken" not in list(at.dataframe[0].value["run"])  # another dataset's run
    at.toggle(key="train_all_datasets").set_value(True).run()
    table = at.dataframe[0].value
    assert table.loc[table["run"] == "broken", "status"].item() == "failed"


def _finished_run(root: Path, name: str, demo: str) -> None:
    from seglib.train.jobs import JobManager

    jobs = JobManager(root, cpu_threads=1)
    cfg = TrainConfig.quick(demo, epochs=1, max_steps_per_epoch=2, batch_size=8)
    assert jobs.wait(jobs.submit(cfg, name=name), TIMEOUT).status == "done"


def test_runs_without_a_finished_epoch_show_no_none(app_data_with_demo, checkpoints, open_page):
    data = app_data_with_demo()
    fresh = RunFolder(checkpoints / "fresh")  # training its first epoch in this (live) process
    fresh.write_config(TrainConfig.quick(str(data / "demo" / "mars_demo.npz")).to_dict())
    fresh.write_status("running", epochs=4)
    broken = RunFolder(checkpoints / "broken")
    broken.write_config({})
    broken.file("config.json").write_text("{not json")
    at = open_page()
    at.toggle(key="train_all_datasets").set_value(True).run()
    assert not at.exception
    table = at.dataframe[0]
    rows = table.value.set_index("run")
    assert rows.loc["fresh", "status"] == "running" and rows.loc["fresh", "epochs"] == "0/4"
    assert rows.loc["broken", "epochs"] == "0"  # not "0/None"
    assert rows["img/s"].dtype == "float64" and rows["img/s"].isna().all()  # empty cells, not objects
    assert table.proto.placeholder == "–"  # what a missing value shows (Streamlit's default: "None")
    assert "None" not in [str(v) for v in rows.to_numpy().ravel()]


def test_open_resume_reuse_and_delete_a_run(app_data_with_demo, checkpoints, open_page):
    data = app_data_with_demo()
    _finished_run(checkpoints, "old", str(data / "demo" / "mars_demo.npz"))
    at = open_page({"run": "old"})  # the URL opens the run
    assert at.selectbox(key="train_open").value == "old"
    assert "### old" in _texts(at) and len(at.tabs) == 5
    at.button(key="train_reuse_old").click().run()
    assert at.selectbox(key=W + "encoder").value == "mobilenet_v2" and at.number_input(key=W + "epochs").value == 1
    at.number_input(key="train_resume_epochs_old").set_value(2)
    at.button(key="train_resume_old").click().run()
    assert not at.exception and "Resuming old up to epoch 2" in at.success[0].value
    snap = _manager().wait(_manager().snapshots()[0].id, TIMEOUT)
    assert snap.status == "done" and [r["epoch"] for r in snap.history] == [1, 2]
    at.run()
    assert at.dataframe[0].value["epochs"][0] == "2/2"
    at.button(key="train_delete_old").click().run()
    assert any("for good" in w.value for w in at.warning)
    at.button(key="train_delete_yes_old").click().run()
    assert not at.exception and "Deleted old" in at.success[0].value
    assert not (checkpoints / "old").exists() and at.session_state["train_open"] == ""
    assert "run" not in at.query_params


def test_interrupted_runs_are_shown_and_resumable(app_data_with_demo, checkpoints, open_page):
    data = app_data_with_demo()
    _finished_run(checkpoints, "cut", str(data / "demo" / "mars_demo.npz"))
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    status = checkpoints / "cut" / "status.json"
    status.write_text(json.dumps({**json.loads(status.read_text()), "status": "running", "pid": dead.pid}))
    at = open_page()
    assert any("1 run was training" in w.value and "cut" in w.value and "is marked interrupted" in w.value
               for w in at.warning)  # not "1 run(s) were"
    assert at.dataframe[0].value["status"][0] == "interrupted"
    at.selectbox(key="train_open").set_value("cut").run()
    assert at.query_params["run"] in ("cut", ["cut"])
    assert not at.button(key="train_resume_cut").disabled


def test_resume_refuses_a_dataset_outside_the_roots(app_data_with_demo, checkpoints, open_page):
    data = app_data_with_demo()
    _finished_run(checkpoints, "moved", str(data / "demo" / "mars_demo.npz"))
    config = RunFolder(checkpoints / "moved").read_config()
    RunFolder(checkpoints / "moved").write_config({**config, "data": "/etc/passwd"})
    at = open_page({"run": "moved"})
    at.button(key="train_resume_moved").click().run()
    assert not at.exception and "Not resumed" in at.error[0].value and _manager().snapshots() == []


def test_a_checkpoints_folder_outside_the_roots_is_refused(app_data_with_demo, checkpoints, monkeypatch):
    data = app_data_with_demo()
    monkeypatch.setenv("SEGLIB_DATASET_ROOTS", str(data))  # the runs folder lies beside it, outside
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    at.switch_page(PAGE).run()
    assert not at.exception and any("checkpoints" in e.value for e in at.error)
    assert "train_start" not in [b.key for b in at.button]


def test_counts_read_in_the_singular_and_the_plural(app_data_with_demo, checkpoints, open_page):
    import re

    data = app_data_with_demo()
    _finished_run(checkpoints, "once", str(data / "demo" / "mars_demo.npz"))  # 1 epoch of 2 steps
    at = open_page({"run": "once"})
    at.number_input(key=W + "epochs").set_value(1)
    at.number_input(key=W + "max_steps_per_epoch").set_value(1).run()
    said = _texts(at)
    assert "· 1 epoch (1 step) ×" in said and "epochs (1 steps)" not in said
    assert "· no augmentation pipeline ·" in said  # as the Augment preview says it
    assert "1/1 epoch ·" in said and "1/1 epochs" not in said  # the opened run
    at.number_input(key=W + "epochs").set_value(3)
    at.number_input(key=W + "max_steps_per_epoch").set_value(2).run()
    assert "· 3 epochs (2 steps) ×" in _texts(at)
    label = at.number_input(key=W + "processes").label
    assert re.fullmatch(r"Processes \(up to (1 GPU|1 CPU process|\d+ GPUs|\d+ CPU processes)\)", label), label
    assert at.checkbox(key=W + "leave_out_excluded").label.startswith("Leave out the 0 images marked")
