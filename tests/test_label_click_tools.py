"""The Label page's one-click tools through AppTest: SAM 2 without its weights says how to fetch
them while every other tool still works; with a SAM 2 in the cache a proposal (as the canvas
callback makes it) is shown, applied with the chosen class as an undoable step, and taken back;
superpixels and snap show their settings and their messages. Clicking the canvas itself is the
browser's test (tests/e2e/test_label_editor.py)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sam_cache import fake_sam2_cache
from streamlit.testing.v1 import AppTest

from seglib.edit import sam
from seglib.edit.clicks import Click
from ui import click_tools as ct
from ui import editor as ed

ROOT = Path(__file__).resolve().parents[1]
PAGE = "pages/6_label.py"


@pytest.fixture
def app_data(app_data_with_demo):
    return app_data_with_demo(n=60, n_test=4)


def _page(tool: str | None = None) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.run()
    at.query_params["image"] = "00003"
    at.switch_page(PAGE).run()
    if tool:
        _button(at, ed.TOOLS[tool][0]).click().run()
    assert not at.exception, at.exception
    return at


def _button(at, label: str):
    found = [b for b in at.button if b.label == label or b.label.startswith(label)]
    assert found, [b.label for b in at.button]
    return found[0]


def _work(at) -> ed.Work:
    (work,) = [w for (_, i), w in at.session_state[ed.WORKS].items() if i == "00003"]
    return work


def test_sam2_without_weights_says_how_to_fetch_and_other_tools_still_work(app_data, hub_cache):
    at = _page("sam2")
    text = " ".join(i.value for i in at.info) + " ".join(c.value for c in at.caption)
    assert "seglib weights fetch sam2.1-hiera-tiny" in text
    assert any(b.label == "Download" for b in at.button)
    assert {"Add", "Remove", "Box"} <= {b.label for b in at.button}
    assert _button(at, "Apply as").disabled
    _button(at, "Brush").click().run()
    assert not at.exception and at.session_state[ed.TOOL] == "brush"
    assert not any(b.label == "Download" for b in at.button)


def test_a_sam2_proposal_is_applied_with_the_chosen_class_and_undone(app_data, hub_cache):
    fake_sam2_cache(hub_cache)
    at = _page("sam2")
    assert not any(b.label == "Download" for b in at.button)
    work = _work(at)
    seg = sam.Segmenter.load(device="cpu")
    from seglib.data import open_dataset

    ds = open_dataset(app_data / "demo" / "mars_demo.npz")
    image = ds.image("00003")
    # what the canvas callback does with a click: the model's mask becomes the proposal
    props = at.session_state[ct.PROPOSALS]
    (prop,) = props.values()
    result = seg.segment(image, "k", [Click(20, 20, True)])
    prop.push([Click(20, 20, True)], None, result)
    before = work.mask.copy()
    cls = [c for c in ds.class_map.ids if c != 0][-1]
    at.session_state[ed.CLASS] = cls
    at.run()
    caption = " ".join(c.value for c in at.caption)
    assert "Proposal:" in caption and "IoU estimate" in caption
    apply = _button(at, "Apply as")
    assert not apply.disabled and ds.class_map.by_id(cls).name in apply.label
    apply.click().run()
    assert not at.exception
    expected = before.copy()
    expected[result.full(before.shape)] = cls
    assert np.array_equal(work.mask, expected) and work.undo[-1].tool == "sam2"
    assert prop.empty, "applying clears the proposal"
    work.step_back()
    assert np.array_equal(work.mask, before)


def test_superpixel_and_snap_tools_show_their_settings_and_say_what_snap_needs(app_data, hub_cache):
    at = _page("superpixel")
    labels = {s.label for s in at.slider}
    assert {"Superpixel size (image px)", "Compactness"} <= labels
    assert any(s.label == "Superpixels" for s in at.selectbox)
    at.slider(key=ct.SP_SIZE).set_value(40).run()
    assert not at.exception and at.session_state[ct.SP_SIZE] == 40
    _button(at, "Snap to model").click().run()
    assert {"Click", "Box"} <= {b.label for b in at.button} and not any(b.label == "Remove" for b in at.button)
    assert not at.exception


def test_fill_by_colour_offers_a_tolerance(app_data, hub_cache):
    at = _page("fill")
    radio = at.radio(key=ct.FILL_BY)
    assert radio.value == "class" and not any(s.label == "Colour tolerance" for s in at.slider)
    radio.set_value("colour").run()
    assert not at.exception and any(s.label == "Colour tolerance" for s in at.slider)
    assert any("about that colour" in c.value for c in at.caption)
