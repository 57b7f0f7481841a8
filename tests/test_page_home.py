"""The app shell and the Home page through streamlit's AppTest."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from seglib.data.demo import write_demo

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def app_data(app_data_with_demo):
    return app_data_with_demo(n=60, n_test=8)


def run_app(**session) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    for k, v in session.items():
        at.session_state[k] = v
    return at.run()


def test_home_on_the_demo(app_data):
    at = run_app()
    assert not at.exception
    assert at.title[0].value == "mars_demo"
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Images"] == "68" and metrics["Labeled"] == "60" and metrics["Classes"] == "5"
    assert any("Every image and mask opened cleanly" in s.value for s in at.success)


def test_home_on_a_folder_with_problems_shows_the_report(app_data, tmp_path):
    root = tmp_path / "ds"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for name, size in (("a", 8), ("b", 8)):
        Image.fromarray(np.full((8, 8), 90, np.uint8)).save(root / "images" / f"{name}.png")
        Image.fromarray(np.zeros((size, size), np.uint8)).save(root / "masks" / f"{name}.png")
    Image.fromarray(np.zeros((5, 5), np.uint8)).save(root / "masks" / "b.png")  # wrong size
    (root / "images" / "c.png").write_bytes(b"broken")
    at = run_app(dataset_path=str(root))
    assert not at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Images"] == "1"
    assert metrics["Problems"] == "3"  # c.png: no mask (warning) and unreadable (error); b: size
    report = at.dataframe[-1].value
    assert sorted(report["severity"]) == ["error", "error", "warning"]
    assert any(f.endswith("masks/b.png") for f in report["file"])
    assert any(f.endswith("images/c.png") for f in report["file"])


def test_a_missing_path_shows_an_error_and_the_app_keeps_running(app_data, tmp_path):
    at = run_app(dataset_path=str(tmp_path / "nowhere"))
    assert not at.exception
    assert any("no such file or folder" in e.value for e in at.error)


def _picker_app():
    """The sidebar picker on its own: AppTest drops sidebar elements of a st.navigation app on
    reruns, so the picker is driven without the navigation frame."""
    import streamlit as st

    from ui import data, sidebar, state
    state.init()
    sidebar.dataset_picker()
    loaded = data.current()
    if loaded is not None:
        st.title(loaded.ds.name)


def open_path_in_sidebar(at: AppTest, path) -> AppTest:
    """Pick "Path on this machine", type ``path`` and press Open."""
    at.sidebar.radio(key="picker_source").set_value("Path on this machine").run()
    at.sidebar.text_input(key="picker_path").input(str(path))
    return at.sidebar.button[0].click().run()


def test_picking_a_path_in_the_sidebar_switches_dataset(app_data, tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    other = tmp_path / "other.npz"
    write_demo(other, n=50, seed=1, n_test=0)
    at = AppTest.from_function(_picker_app, default_timeout=60).run()
    assert at.title[0].value == "mars_demo"
    open_path_in_sidebar(at, other)
    assert not at.exception
    assert at.title[0].value == "other"
    assert at.query_params["dataset"] in ([str(other)], str(other))
    # back to the demo
    at.sidebar.radio(key="picker_source").set_value("Demo (Mars terrain)").run()
    assert at.title[0].value == "mars_demo" and "dataset" not in at.query_params


@pytest.mark.parametrize("kind", ["missing", "empty folder", "not a dataset"])
def test_a_path_that_does_not_open_keeps_the_open_dataset(app_data, tmp_path, monkeypatch, kind):
    """Like a refused path: the error shows in the sidebar, the open dataset and the URL stay."""
    monkeypatch.chdir(ROOT)
    bad = tmp_path / "nowhere"
    if kind == "empty folder":
        bad.mkdir()
    elif kind == "not a dataset":
        bad = tmp_path / "notes.npz"
        bad.write_bytes(b"not a zip")
    at = AppTest.from_function(_picker_app, default_timeout=60).run()
    open_path_in_sidebar(at, bad)
    assert not at.exception
    assert at.title[0].value == "mars_demo" and "dataset" not in at.query_params
    errors = [e.value for e in at.sidebar.error]
    assert errors and all("The open dataset stays" in e for e in errors)
    assert str(bad.name) in errors[0]


def test_an_unexpected_error_shows_a_reference_and_logs_the_traceback(app_data, monkeypatch):
    """Served with the app's settings (showErrorDetails "none"): a short message and a reference in
    the page, the traceback in the log under that reference; never a stack trace in the page."""
    import logging

    from streamlit import config

    def broken(*args, **kwargs):
        raise RuntimeError("/srv/secret/path leaked")

    monkeypatch.setattr("seglib.viz.plots.class_share_figure", broken)
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append
    logging.getLogger("seglib.app").addHandler(handler)
    config.set_option("client.showErrorDetails", "none")
    try:
        at = run_app()
    finally:
        config.set_option("client.showErrorDetails", "full")
        logging.getLogger("seglib.app").removeHandler(handler)
    assert not at.exception
    shown = " ".join(e.value for e in at.error)
    assert "Reference" in shown and "RuntimeError" in shown and "secret" not in shown
    ref = shown.split("Reference **")[1].split("**")[0]
    assert records and ref in records[0].getMessage() and "secret" in str(records[0].exc_info[1])
    # with the developers' setting the exception reaches Streamlit whole
    assert run_app().exception
