"""The Label page (mask editor) through streamlit's AppTest, and the editor's state machine.

A stroke cannot be drawn on the canvas under AppTest (tests/e2e/test_label_editor.py does it in a
real browser): here the working mask is changed through ui.editor's functions, as the canvas
callback does, then the page's buttons save, refuse a stale save, and revert."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from seglib.data import open_dataset
from seglib.edit.session import TOUCHED_KEPT
from seglib.review import ReviewStore
from seglib.review import corrections as corr
from ui import editor as ed

ROOT = Path(__file__).resolve().parents[1]
PAGE = "pages/6_label.py"


# --- the state machine, without streamlit --------------------------------------------------------
def _work(h: int = 8, w: int = 12) -> ed.Work:
    m = np.zeros((h, w), np.uint8)
    return ed.Work("img", 0, m, m.copy())


def test_edit_undo_redo_are_exact_steps():
    work = _work()
    a = work.mask.copy()
    a[2:4, 3:6] = 2
    assert work.edit(a, "brush") == 6 and work.dirty and work.changed_px == 6
    b = a.copy()
    b[0, 0] = 1
    assert work.edit(b, "fill") == 1
    assert work.tools() == "brush+fill"
    assert work.step_back() == "fill" and np.array_equal(work.mask, a)
    assert work.step_back() == "brush" and not work.dirty
    assert work.step_back() is None
    assert work.step_forward() == "brush" and np.array_equal(work.mask, a)
    c = a.copy()
    c[7, 11] = 3
    work.edit(c, "polygon")
    assert work.step_forward() is None, "a new edit drops the redo stack"
    gen = work.gen
    assert work.edit(c, "brush") == 0 and work.gen == gen + 1, "no change: no step, but a fresh canvas"
    work.mark_saved(4)
    assert work.base == 4 and not work.dirty and not work.undo


def test_apply_drawing_rasterises_a_canvas_stroke():
    work = _work(10, 20)
    path = [["M", 2.0, 10.0], ["L", 78.0, 10.0]]   # canvas px at 4x: image row 2
    obj = {"type": "Path", "path": path, "left": 2.0 - 4, "top": 10.0 - 4, "width": 76, "height": 0,
           "strokeWidth": 8, "originX": "left", "originY": "top"}
    assert ed.apply_drawing(work, [obj], "brush", 3, (4.0, 4.0)) > 0
    assert set(np.unique(work.mask)) == {0, 3}
    assert (work.mask[2, 1:19] == 3).all() and (work.mask[5:] == 0).all()
    assert work.undo[-1].tool == "brush"


def test_steps_keep_only_the_changed_box_and_the_count_stays_exact():
    mask = np.zeros((1800, 2000), np.uint8)
    work = ed.Work("big", 0, mask, mask.copy())
    box = ed.raster.Box(100, 200, 130, 260)
    new = np.zeros(box.shape, np.uint8)
    new[5:10, 10:40] = 3
    assert work.edit_box(box, new, "brush") == 150 and work.changed_px == 150
    step = work.undo[-1]
    assert step.box == box and step.index.dtype == np.int32 and len(step.index) == len(step.before) == 150
    assert step.index.max() < 30 * 60, "indices into the box, not the image"
    gen = work.gen
    again = np.full(box.shape, 3, np.uint8)            # over the same pixels and more
    assert work.edit_box(box, again, "brush") == 30 * 60 - 150 and work.changed_px == 30 * 60
    assert work.touched_since(gen) == box and work.touched_since(work.gen) is None
    assert work.step_back() == "brush" and work.changed_px == 150 == np.count_nonzero(work.mask != work.saved)
    assert work.step_back() == "brush" and not work.dirty and not work.mask.any()
    assert work.step_forward() == "brush" and work.changed_px == 150
    whole = work.mask.copy()
    whole[1700:, 1900:] = 1
    assert work.edit(whole, "fill") == 100 * 100
    assert work.undo[-1].box == ed.raster.Box(1700, 1900, 1800, 2000)
    assert work.changed_px == 150 + 10_000 == np.count_nonzero(work.mask != work.saved)
    work.mark_saved(1)
    assert work.changed_px == 0 and not work.dirty
    for _ in range(TOUCHED_KEPT + 5):   # more changes than remembered: the picture redraws all
        work.edit_box(ed.raster.Box(0, 0, 1, 1), np.array([[work.mask[0, 0] ^ 1]], np.uint8), "brush")
    assert work.touched_since(gen) == ed.raster.Box(0, 0, 1800, 2000)


def test_only_objects_not_applied_yet_are_new():
    a, b, c = {"type": "path", "path": [["M", 1, 1]]}, {"type": "path", "path": [["M", 2, 2]]}, {"type": "circle"}
    assert ed.fresh_objects([], [a]) == [a]
    assert ed.fresh_objects([a], [a, b]) == [b], "sent again with one more: only that one"
    assert ed.fresh_objects([a, b], []) == []
    assert ed.fresh_objects([a, b], [c]) == [c], "cleared in between: all of it is new"
    assert ed.fresh_objects([a], [a]) == []


def test_zoom_report_says_the_real_scale():
    h, w = 1817, 2061                    # the reported aerial tile
    fit = ed.canvas_size(h, w, 0)
    assert ed.zoom_report(h, w, 0, fit) == "2061×1817 px image shown at 0.36× (fit)"
    assert ed.zoom_report(h, w, 1, ed.canvas_size(h, w, 1)) == "2061×1817 px image shown at 1×"
    two = ed.canvas_size(h, w, 2)
    assert two == (2061, 1817)
    assert ed.zoom_report(h, w, 2, two) == ("2061×1817 px image shown at 1×: 2x would make a canvas of "
                                            "4,122×3,634 px, over the 4,000 px a canvas may have")
    assert ed.zoom_label(2, h, w) == "2x (1× here)" and ed.zoom_label(1, h, w) == "1:1"
    assert ed.zoom_report(64, 128, 4, ed.canvas_size(64, 128, 4)) == "128×64 px image shown at 4×"
    assert ed.zoom_label(4, 64, 128) == "4x" and ed.zoom_label(0, 64, 128) == "fit"


def test_default_brush_is_a_few_screen_pixels():
    assert ed.default_radius(0.36) == 11.0 and ed.default_radius(1) == ed.SCREEN_RADIUS
    assert ed.default_radius(8) == 0.5
    assert ed.radius_limit(0.36) == 112.0 and ed.radius_limit(5) == 30.0


def test_queue_and_steps():
    order = ["a", "b", "c", "d", "e"]
    assert ed.step_in_queue(order, ["b", "d"], "b", 1) == "d"
    assert ed.step_in_queue(order, ["b", "d"], "d", 1) is None
    assert ed.step_in_queue(order, ["b", "d"], "c", 1) == "d"     # not in the queue: the next one after it
    assert ed.step_in_queue(order, ["b", "d"], "c", -1) == "b"
    assert ed.step_in_queue(order, [], "c", 1) is None


def test_canvas_size_grows_small_images_by_whole_pixels_and_shrinks_big_ones():
    w, h = ed.canvas_size(64, 128)
    assert (w, h) == (128 * 5, 64 * 5)
    w, h = ed.canvas_size(2000, 3000)
    assert w <= ed.CANVAS_MAX_W and h <= ed.CANVAS_MAX_H
    assert ed.canvas_size(64, 128, zoom=8) == (1024, 512)


# --- the page ----------------------------------------------------------------------------------
@pytest.fixture
def app_data(app_data_with_demo):
    return app_data_with_demo(n=60, n_test=4)


@pytest.fixture
def ds(app_data):
    return open_dataset(app_data / "demo" / "mars_demo.npz")


@pytest.fixture
def store(app_data):
    s = ReviewStore()   # the database the page opens
    yield s
    s.close()


def label_page(image: str | None = None) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.run()
    if image:
        at.query_params["image"] = image
    return at.switch_page(PAGE).run()


def _work_of(at) -> ed.Work:
    works = at.session_state[ed.WORKS]
    (work,) = [w for (_, i), w in works.items() if i == at.session_state[ed.IMAGE]]
    return work


def _button(at, label: str):
    found = [b for b in at.button if b.label == label]
    assert found, [b.label for b in at.button]
    return found[0]


def test_page_opens_on_the_image_of_the_url(app_data, ds):
    at = label_page("00007")
    assert not at.exception
    assert at.session_state[ed.IMAGE] == "00007"
    assert any("00007" in c.value and "editing from **the original mask**" in c.value for c in at.caption)
    assert _button(at, "Save").disabled, "nothing to save yet"
    work = _work_of(at)
    assert np.array_equal(work.mask, ds.original_mask("00007"))
    # the palette: one button per class, tools with their shortcuts
    names = [c.name for c in ds.class_map.classes]
    assert all(any(b.label == n for b in at.button) for n in names)
    assert {"Brush", "Eraser", "Polygon", "Fill", "Ignore"} <= {b.label for b in at.button}
    assert _button(at, "Ignore").disabled, "the demo's class map marks no ignore class"


def test_save_then_a_stale_save_then_save_over(app_data, ds, store):
    at = label_page("00003")
    work = _work_of(at)
    painted = work.mask.copy()
    painted[10:20, 30:50] = 3
    work.edit(painted, "brush")
    at.run()
    at.text_input(key=f"{ed.NOTE}_00003").input("sand here")
    _button(at, "Save").click().run()
    assert not at.exception
    v = corr.versions(ds, "00003", store)
    assert [x.number for x in v] == [1] and v[0].note == "sand here" and v[0].changed_px == int(
        (painted != ds.original_mask("00003")).sum())
    assert np.array_equal(corr.version_mask(ds, "00003", 1, store), painted)
    assert "version 1" in " ".join(c.value for c in at.caption)

    # another tab (here: the API) saves version 2; this editor still started from version 1
    other = painted.copy()
    other[0:5, 0:5] = 1
    corr.save_correction(ds, "00003", other, store=store, who="ana", note="other tab", expected=1)
    work = _work_of(at)
    mine = work.mask.copy()
    mine[40:50, 60:70] = 2
    work.edit(mine, "fill")
    at.run()
    _button(at, "Save").click().run()
    assert not at.exception
    warning = " ".join(w.value for w in at.warning)
    assert "Version 2 was saved by ana at" in warning and "since you opened this image" in warning
    assert corr.latest_number(ds, "00003", store) == 2, "nothing saved over it without asking"
    _button(at, "Save mine over it").click().run()
    assert not at.exception
    assert corr.latest_number(ds, "00003", store) == 3
    assert np.array_equal(corr.version_mask(ds, "00003", 3, store), mine)
    assert corr.versions(ds, "00003", store)[-1].tool == "fill"


def test_stale_then_load_the_newer_version(app_data, ds, store):
    at = label_page("00004")
    corr.save_correction(ds, "00004", np.full_like(ds.original_mask("00004"), 2), store=store, who="ana",
                         expected=0)
    work = _work_of(at)
    m = work.mask.copy()
    m[0, 0] = 4
    work.edit(m, "brush")
    at.run()
    _button(at, "Save").click().run()
    _button(at, "Load version 1").click().run()
    assert not at.exception
    work = _work_of(at)
    assert work.base == 1 and (work.mask == 2).all() and not work.dirty


def test_history_diff_and_revert(app_data, ds, store):
    original = ds.original_mask("00002")
    first = original.copy()
    first[:8, :8] = 4
    corr.save_correction(ds, "00002", first, store=store, who="ana", note="rock", expected=0)
    at = label_page("00002")
    at.session_state[ed.SECTION] = "History"
    at.run()
    assert not at.exception
    assert at.dataframe, "the versions table"
    # compare version 1 with the original: the class table of mask_diff
    tables = [d.value for d in at.dataframe]
    diff = [t for t in tables if "before_px" in t.columns]
    assert diff and set(diff[0]["name"]) >= {ds.class_map.name_of(4)}
    at.selectbox(key=f"{ed.HIST_NUMBER}_00002").set_value(0).run()
    _button(at, "Revert to the original").click().run()
    assert not at.exception
    v = corr.versions(ds, "00002", store)
    assert [x.number for x in v] == [1, 2] and v[-1].original
    assert np.array_equal(corr.version_mask(ds, "00002", 2, store), original)


@pytest.fixture
def big_tile(tmp_path):
    """A folder with one 2061x1817 RGB tile (the size of the reported aerial tile) and its mask."""
    import json

    from PIL import Image

    root = tmp_path / "tiles"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    (root / "classes.json").write_text(json.dumps([{"id": i, "name": n} for i, n in
                                                   enumerate(["background", "road", "building"])]))
    yy, xx = np.mgrid[0:1817, 0:2061]
    Image.fromarray(np.stack([xx % 256, yy % 256, (xx + yy) % 256], -1).astype(np.uint8)).save(
        root / "images" / "tile.jpg", quality=90)
    Image.fromarray(((xx // 700) % 3).astype(np.uint8)).save(root / "masks" / "tile.png")
    return root


def _settings(at) -> tuple:
    return (at.slider(key=ed.RADIUS).value, at.slider(key=ed.ALPHA).value, at.toggle(key=ed.OUTLINE).value,
            at.selectbox(key=ed.ZOOM).value)


def test_view_settings_outlive_a_zoom_change_a_save_and_history(big_tile):
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.session_state["dataset_path"] = str(big_tile)
    at.run()
    at.query_params["image"] = "tile"
    at = at.switch_page(PAGE).run()
    assert not at.exception
    captions = " ".join(c.value for c in at.caption)
    assert "2061×1817 px image shown at 0.36× (fit)" in captions
    assert at.slider(key=ed.RADIUS).value == 11.0, "the default: a few screen pixels at this zoom, not 2 image px"
    assert "Radius 11 image px = 3.9 screen px at this zoom" in captions
    at.slider(key=ed.RADIUS).set_value(7.0).run()
    at.slider(key=ed.ALPHA).set_value(0.3).run()
    at.toggle(key=ed.OUTLINE).set_value(True).run()
    at.selectbox(key=ed.ZOOM).set_value(2).run()     # the radius slider's range changes with the zoom
    assert not at.exception
    assert _settings(at) == (7.0, 0.3, True, 2)
    captions = " ".join(c.value for c in at.caption)
    assert "shown at 1×: 2x would make a canvas of 4,122×3,634 px" in captions, "the real scale, not 2x"
    work = _work_of(at)
    painted = work.mask.copy()
    painted[100:120, 100:300] = 1
    work.edit(painted, "brush")
    at.run()
    _button(at, "Save").click().run()
    assert not at.exception and not _work_of(at).dirty
    assert _settings(at) == (7.0, 0.3, True, 2), "kept after a save"
    at.button_group(key=ed.SECTION).set_value("History").run()
    assert not at.exception and not at.slider
    at.button_group(key=ed.SECTION).set_value("Edit").run()
    assert _settings(at) == (7.0, 0.3, True, 2), "kept after a visit to History"
    at.selectbox(key=ed.ZOOM).set_value(0).run()
    assert at.slider(key=ed.RADIUS).value == 7.0, "the user's radius, not the default of the new zoom"


def test_fix_this_mask_opens_the_label_page_on_the_image(app_data):
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.session_state["review_section"] = "Queue"
    at.run()
    from seglib.review import dataset_key
    s = ReviewStore()
    try:
        s.flag(dataset_key(open_dataset(app_data / "demo" / "mars_demo.npz")), ["00011"], reason="by hand")
    finally:
        s.close()
    at.switch_page("pages/2_review.py").run()
    assert not at.exception
    _button(at, "Fix this mask").click().run()
    assert not at.exception
    assert at.session_state[ed.IMAGE] == "00011"
    assert any(b.label == "Save" for b in at.button), "the editor is open"


def test_accept_a_prediction_region(app_data_with_demo, trained_runs, monkeypatch):
    pytest.importorskip("seglib.edit.regions")
    pytest.importorskip("seglib.edit.assist")
    d = app_data_with_demo()   # a copy of the demo the runs trained on
    monkeypatch.setenv("SEGLIB_CHECKPOINTS", str(trained_runs["unet"].parent))
    from ui import edit_assist

    at = label_page("00001")
    at.session_state[edit_assist.ON] = True
    at.session_state[edit_assist.RUNS] = [str(trained_runs["unet"])]
    at.run()
    assert not at.exception
    accepts = [b for b in at.button if b.label == "Accept"]
    assert accepts, "a barely trained run disagrees with the label somewhere"
    before = _work_of(at).mask.copy()
    accepts[0].click().run()
    assert not at.exception
    work = _work_of(at)
    assert work.dirty and work.undo[-1].tool == "assist"
    assert (work.mask != before).any()
    _button(at, "Reject").click().run()     # the next region is hidden, not applied
    assert not at.exception
    assert np.array_equal(_work_of(at).mask, work.mask)
    _button(at, "Save").click().run()
    assert not at.exception
    ds = open_dataset(d / "demo" / "mars_demo.npz")
    s = ReviewStore()
    try:
        v = corr.versions(ds, "00001", s)
        assert [x.number for x in v] == [1] and v[0].tool == "assist"
        assert np.array_equal(corr.version_mask(ds, "00001", 1, s), work.mask)
    finally:
        s.close()


def test_label_next_opens_an_unlabeled_image_prefilled_and_saving_labels_it(app_data_with_demo, trained_runs,
                                                                            monkeypatch):
    d = app_data_with_demo()   # a copy of the demo the runs trained on: 300 labeled + 40 unlabeled
    monkeypatch.setenv("SEGLIB_CHECKPOINTS", str(trained_runs["unet"].parent))
    from ui import edit_assist, label_next

    at = label_page()
    at.session_state[edit_assist.RUNS] = [str(trained_runs["unet"]), str(trained_runs["segformer"])]
    at.session_state[ed.SECTION] = "Label next"
    at.run()
    assert not at.exception
    ranked = at.session_state[ed.RANKED]
    ds = open_dataset(d / "demo" / "mars_demo.npz")
    assert sorted(ranked) == sorted(ds.unlabeled_ids)
    first = ranked[0]
    [b for b in at.button if b.key == f"{label_next.P}open_{first}"][0].click().run()
    assert not at.exception
    assert at.session_state[ed.IMAGE] == first and at.session_state[ed.QUEUE] == "label_next"
    work = _work_of(at)
    assert work.dirty and work.undo[-1].tool == "label-next"   # the ensemble's prediction, one undoable step
    _button(at, "Save").click().run()
    assert not at.exception
    s = ReviewStore()
    try:
        view = corr.apply_corrections(ds, s)
        assert view.is_labeled(first) and np.array_equal(view.mask(first), work.mask)
        assert corr.versions(ds, first, s)[0].tool.startswith("label-next")
    finally:
        s.close()
    at.run()   # the image is labeled now: version 1, and out of the queue of the unlabeled ones
    assert any(f"`{first}` · not in the queue ({len(ranked) - 1} images) · editing from **version 1**" in c.value
               for c in at.caption), [c.value for c in at.caption]
