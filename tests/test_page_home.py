"""The app shell and the Home page through streamlit's AppTest."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from aerial_tiles import FILE_CLASSES, MASK_COLOURS, pixels_of, write_aerial
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


# --- a class file whose colours miss the masks' (the public aerial set) ---------------------------
def _in_order(at: AppTest) -> list:
    """The main area's elements in page order."""
    def walk(node):
        children = getattr(node, "children", None)
        if children:
            for k in sorted(children):
                yield from walk(children[k])
        else:
            yield node
    return list(walk(at.main))


def test_wrong_class_colours_are_a_banner_first_and_unknown_pixels_a_row(app_data, tmp_path):
    sizes = ((40, 60), (50, 40), (30, 30), (20, 50))
    root = write_aerial(tmp_path / "aerial", sizes=sizes)
    at = run_app(dataset_path=str(root))
    assert not at.exception
    elements = _in_order(at)
    kinds = [type(e).__name__ for e in elements]
    first_banner = kinds.index("Warning")
    assert first_banner < kinds.index("Metric")  # above everything but the title and its caption
    banner = elements[first_banner].value
    # The report's whole sentence: every colour, with its pixels, and what to do.
    assert "6 colours in the masks are not in classes.json" in banner and "fix the colours" in banner
    for name, colour in MASK_COLOURS.items():
        assert f"{colour} ({pixels_of(sizes, name):,} px in 4 masks)" in banner
    assert "magenta" in banner
    assert not any("ignored class" in w.value for w in at.warning)  # not "every pixel is ignored"
    # The class table: the unknown pixels are a row, and the shares add up to every labeled pixel.
    table = next(d.value for d in at.dataframe if "share" in d.value.columns)
    unknown = table.set_index("name").loc["Unknown colours"]
    assert unknown["pixels"] == sum(h * w for h, w in sizes)
    assert unknown["share"] == pytest.approx(1.0) and table["share"].sum() == pytest.approx(1.0)
    # The validation report: the dataset's problems before the 4 masks' warnings.
    report = at.dataframe[-1].value
    assert list(report["problem"][:2].str.contains("classes.json")) == [True, True]
    assert (report["file"][:2].str.endswith("classes.json")).all() and len(report) == 6


def test_the_chart_has_a_bar_for_unknown_pixels(tmp_path):
    """The class share chart, from the library: its own hatched magenta bar for the unknown pixels."""
    from seglib.data import open_dataset
    from seglib.stats import compute_stats
    from seglib.viz import plots

    ds = open_dataset(write_aerial(tmp_path / "aerial"))
    stats = compute_stats(ds)
    bar = plots.class_share_figure(stats.per_class(unknown_name="Unknown colours")).data[0]
    names = list(bar.y)
    k = names.index("Unknown colours")
    assert bar.x[k] == pytest.approx(1.0) and bar.marker.color[k] == "#FF00FF"
    assert bar.marker.pattern.shape[k] == "/" and set(bar.marker.pattern.shape) - {"/"} == {""}
    assert len(names) == 7  # the six classes, at 0, and the unknown ones


def _pick(at: AppTest, colour: str, name: str) -> None:
    box = next(s for s in at.selectbox if s.label == f"Class of {colour}")
    box.set_value(name)


def test_the_fix_names_colours_by_order_or_by_choice_and_saves_beside_the_data(app_data, tmp_path):
    root = write_aerial(tmp_path / "aerial")
    original = (root / "classes.json").read_bytes()
    at = run_app(dataset_path=str(root))
    # By order: the file's first name goes to the colour with most pixels.
    order = {s.label.removeprefix("Class of "): s.value for s in at.selectbox if s.label.startswith("Class of")}
    assert list(order.values()) == [name for name, _ in FILE_CLASSES]
    assert list(order) == list(MASK_COLOURS.values())
    # Chosen per colour: the right names (one left as it is).
    for name, colour in MASK_COLOURS.items():
        _pick(at, colour, name)
    at.run()
    assert not at.exception and not at.error
    # Two colours under one name: said, and nothing to save.
    _pick(at, MASK_COLOURS["Road"], "Water")
    at.run()
    assert any("both named 'Water'" in e.value for e in at.error)
    assert not [b for b in at.button if b.label.startswith("Save as")]
    _pick(at, MASK_COLOURS["Road"], "Road")
    at.run()
    next(b for b in at.button if b.label.startswith("Save as")).click()
    at.run()
    assert not at.exception
    assert (root / "classes.orig.json").read_bytes() == original  # nothing lost
    assert any("classes.orig.json" in s.value for s in at.success)
    # Home shows the right classes at once: no banner, every pixel known, the names on the colours.
    assert not [w for w in at.warning if "not in classes.json" in w.value]
    assert not [s for s in at.selectbox if s.label.startswith("Class of")]
    table = next(d.value for d in at.dataframe if "share" in d.value.columns).set_index("name")
    assert "Unknown colours" not in table.index
    assert table.loc["Land (unpaved area)", "pixels"] == pixels_of(((40, 60), (50, 40)), "Land (unpaved area)")
    assert table["share"].sum() == pytest.approx(1.0)
    doc = json.loads((root / "classes.json").read_text())
    assert [(c["title"], c["color"]) for c in doc["classes"]] == [
        (name, MASK_COLOURS[name]) for name, _ in FILE_CLASSES]
    assert all(c["shape"] == "polygon" for c in doc["classes"])  # the file's own keys kept


def test_an_edited_class_file_shows_on_reload(app_data, tmp_path):
    """No "Rescan files": a new session (a reload of the browser) sees the edited classes.json."""
    root = write_aerial(tmp_path / "aerial")
    at = run_app(dataset_path=str(root))
    assert [w for w in at.warning if "not in classes.json" in w.value]
    doc = json.loads((root / "classes.json").read_text())
    colours = {name: colour for name, colour in MASK_COLOURS.items()}
    for entry in doc["classes"]:
        entry["color"] = colours[entry["title"]]
        entry["title"] = entry["title"].upper()
    (root / "classes.json").write_text(json.dumps(doc))
    at = run_app(dataset_path=str(root))
    assert not at.exception
    assert not [w for w in at.warning if "not in classes.json" in w.value]
    table = next(d.value for d in at.dataframe if "share" in d.value.columns).set_index("name")
    assert table.loc["BUILDING", "pixels"] == pixels_of(((40, 60), (50, 40)), "Building")


def test_image_sizes_are_all_accounted_for_largest_first(app_data, tmp_path):
    sizes = [(8 + 2 * k, 30 - k) for k in range(14)]  # 14 sizes; pixels grow with k
    root = write_aerial(tmp_path / "aerial", sizes=sizes, per_tile=7)
    at = run_app(dataset_path=str(root))
    assert not at.exception
    caption = next(c.value for c in at.caption if "image sizes" in c.value)
    largest = sorted(sizes, key=lambda s: -s[0] * s[1])
    (bh, bw), (sh, sw) = largest[0], largest[-1]
    assert caption.startswith("14 image sizes") and f"from {sh}×{sw} to {bh}×{bw}" in caption
    shown = [f"{h}×{w}×3 (1)" for h, w in largest[:8]]
    assert all(s in caption for s in shown)
    assert [caption.index(s) for s in shown] == sorted(caption.index(s) for s in shown)  # largest first
    assert caption.endswith("and 6 more")
    every = next(d.value for d in at.dataframe if "images" in d.value.columns and "height" in d.value.columns)
    assert list(zip(every["height"], every["width"], strict=True)) == largest


def test_a_few_sizes_are_all_listed_largest_first():
    import pandas as pd

    from seglib.stats import describe_sizes

    sizes = pd.DataFrame({"height": [10, 30, 20], "width": [10, 30, 40], "channels": [3, 3, 1], "count": [5, 1, 2]})
    assert describe_sizes(sizes) == "Image sizes (H×W×C, images), largest first: 10×10×3 (5), 30×30×3 (1), 20×40×1 (2)"


def test_unknown_values_on_index_masks_are_a_row_and_a_note(app_data, tmp_path):
    """A class file that lacks a value the masks use: the share of such pixels noted at the top, a
    row of their own; an ignore class keeps its share of all labeled pixels, apart."""
    root = tmp_path / "ds"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    mask = np.zeros((10, 10), np.uint8)
    mask[:2] = 7      # 20 px of a value not in the file
    mask[2:4] = 9     # 20 px of the ignore class
    mask[4:] = 1      # 60 px of class 1
    Image.fromarray(np.full((10, 10), 90, np.uint8)).save(root / "images" / "a.png")
    Image.fromarray(mask).save(root / "masks" / "a.png")
    (root / "classes.json").write_text(json.dumps([{"id": 0, "name": "water"}, {"id": 1, "name": "land"},
                                                   {"id": 9, "name": "void", "ignore": True}]))
    at = run_app(dataset_path=str(root))
    assert not at.exception
    kinds = [type(e).__name__ for e in _in_order(at)]
    assert kinds.index("Info") < kinds.index("Metric")
    assert "20.0% of the labeled pixels (20)" in at.info[0].value and "Unknown values" in at.info[0].value
    table = next(d.value for d in at.dataframe if "share" in d.value.columns).set_index("name")
    assert table.loc["Unknown values", "pixels"] == 20
    assert table.loc["land", "share"] == pytest.approx(60 / 80) and table.loc["Unknown values", "share"] == 0.25
    assert table.loc["void", "share"] == pytest.approx(0.2)  # of every labeled pixel, reported apart
