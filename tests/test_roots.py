"""Dataset roots: the app opens only paths under them (resolved: links and '..' cannot leave);
the URL, the sidebar box and the Review export are refused with a message naming the roots."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest
from test_page_home import _picker_app, open_path_in_sidebar  # the sidebar picker on its own

from seglib.data.roots import PathNotAllowed, allowed_roots, check_allowed

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def tree(tmp_path, monkeypatch):
    """A root folder holding a dataset, a sibling sharing its name prefix, and one root set."""
    root = tmp_path / "data"
    (root / "camvid").mkdir(parents=True)
    (tmp_path / "data-private").mkdir()
    (tmp_path / "outside").mkdir()
    monkeypatch.setenv("SEGLIB_DATASET_ROOTS", str(root))
    return tmp_path


def test_config_listens_on_loopback_with_a_chosen_upload_limit():
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert config["server"]["address"] == "127.0.0.1"
    assert 0 < config["server"]["maxUploadSize"] < 2000  # set on purpose, below streamlit's old 2000 MB


def test_default_roots_are_data_folder_working_directory_and_home(monkeypatch, tmp_path):
    monkeypatch.delenv("SEGLIB_DATASET_ROOTS")
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    data = Path(os.environ["SEGLIB_DATA_DIR"]).resolve()
    assert allowed_roots() == [(tmp_path / "work").resolve(), Path.home().resolve(), data]
    monkeypatch.setenv("SEGLIB_DATASET_ROOTS", os.pathsep.join(["/srv/a", "", "/srv/b", "/srv/a/inner"]))
    assert allowed_roots() == [Path("/srv/a"), Path("/srv/b"), data]  # the data folder always


def test_paths_inside_a_root_are_allowed_and_resolved(tree):
    root = tree / "data"
    assert check_allowed(root / "camvid") == (root / "camvid").resolve()
    assert check_allowed(str(root / "camvid" / ".." / "camvid")) == (root / "camvid").resolve()
    assert check_allowed(root / "not-yet-there")  # missing: the opener reports it, not the roots check
    (root / "inside-link").symlink_to(root / "camvid")
    assert check_allowed(root / "inside-link") == (root / "camvid").resolve()


def test_unusable_paths_are_refused_not_crashed_on(tree):
    (tree / "data" / "loop").symlink_to(tree / "data" / "loop")
    for bad in ("/data/\x00x", str(tree / "data" / "loop" / "x")):
        with pytest.raises(PathNotAllowed, match="is not a usable path|outside the dataset roots"):
            check_allowed(bad)


@pytest.mark.parametrize("where", ["/etc", "dotdot", "link", "prefix"])
def test_paths_outside_every_root_are_refused_naming_path_and_roots(tree, where):
    root = tree / "data"
    (root / "escape").symlink_to(tree / "outside")
    path = {"/etc": "/etc", "dotdot": f"{root}/camvid/../../outside", "link": f"{root}/escape",
            "prefix": f"{tree}/data-private"}[where]
    with pytest.raises(PathNotAllowed) as err:
        check_allowed(path)
    msg = str(err.value)
    assert msg.startswith(path) and f"outside the dataset roots: {root.resolve()}" in msg
    assert "SEGLIB_DATASET_ROOTS" in msg
    if where in ("dotdot", "link"):
        assert f"resolves to {(tree / 'outside').resolve()}" in msg


# --- the app ----------------------------------------------------------------------------
@pytest.fixture
def app_data(app_data_with_demo):
    return app_data_with_demo(n=60, n_test=8)


@pytest.fixture
def opened(monkeypatch):
    """Every path the app hands to open_dataset."""
    import ui.data
    calls = []
    real = ui.data.open_dataset

    def spy(path, unlabeled=()):
        calls.append(str(path))
        return real(path, unlabeled)
    monkeypatch.setattr(ui.data, "open_dataset", spy)
    return calls


def test_url_outside_the_roots_opens_nothing(app_data, tree, opened):
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.query_params["dataset"] = "/etc"
    at.run()
    assert not at.exception
    errors = [e.value for e in at.error]
    assert errors and all("/etc is outside the dataset roots" in e and str(tree / "data") in e for e in errors)
    assert not at.title and opened == []  # no page content, nothing read


def test_sidebar_path_outside_the_roots_keeps_the_open_dataset(app_data, tree, opened):
    link = tree / "data" / "escape"
    link.symlink_to(tree / "outside")
    at = AppTest.from_function(_picker_app, default_timeout=60).run()
    assert at.title[0].value == "mars_demo"
    open_path_in_sidebar(at, link)
    assert not at.exception
    assert any(f"resolves to {(tree / 'outside').resolve()}" in e.value for e in at.sidebar.error)
    assert at.title[0].value == "mars_demo" and "dataset" not in at.query_params
    assert opened and all(p.endswith("mars_demo.npz") for p in opened)


def test_review_export_outside_the_roots_is_refused(app_data, tree):
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=90)
    at.session_state["review_section"] = "Export"
    at.run()
    at = at.switch_page("pages/2_review.py").run()
    at.text_input(key="review_export_path").input(str(tree / "outside" / "clean.npz"))
    next(b for b in at.button if b.label.startswith("Write cleaned copy")).click().run()
    assert not at.exception
    assert any("outside the dataset roots" in e.value for e in at.error)
    assert not (tree / "outside" / "clean.npz").exists()


class _Errors(list):
    """Stands in for st / a container: collects what ``.error`` would show."""

    def error(self, text, **_):
        self.append(text)


def test_run_dataset_and_checkpoints_folder_helpers(tree, monkeypatch):
    import json

    from ui.roots import checkpoints_folder, run_dataset
    run = tree / "data" / "runs" / "r1"
    run.mkdir(parents=True)
    shown = _Errors()
    (run / "config.json").write_text(json.dumps({"data": "/etc/shadow-set"}))
    assert run_dataset(run, shown) is None and "/etc/shadow-set is outside the dataset roots" in shown[-1]
    (run / "config.json").write_text(json.dumps({"data": str(tree / "data" / "camvid")}))
    assert run_dataset(run, shown) == (tree / "data" / "camvid").resolve() and len(shown) == 1
    assert run_dataset(tree / "data" / "no-run", shown) is None and "missing" in shown[-1]
    monkeypatch.setenv("SEGLIB_CHECKPOINTS", str(tree / "data" / "runs"))
    assert checkpoints_folder(shown) == (tree / "data" / "runs").resolve()
    monkeypatch.setenv("SEGLIB_CHECKPOINTS", str(tree / "outside"))
    assert checkpoints_folder(shown) is None and "outside the dataset roots" in shown[-1]
