"""The Dataset page under streamlit.testing: filters, counts, paging, detail view, flagging."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from seglib.browse import BrowseFilter, Range
from seglib.data import open_dataset
from seglib.data.folder import natural_key
from seglib.review import ReviewStore, dataset_key
from seglib.stats import compute_stats

APP = str(Path(__file__).resolve().parents[1] / "app.py")
PAGE = "pages/1_dataset.py"


@pytest.fixture
def at(app_data_with_demo):
    app_data_with_demo()
    app = AppTest.from_file(APP, default_timeout=60)
    app.run()
    app.switch_page(PAGE).run()
    assert not app.exception, app.exception
    return app


def _count(at) -> tuple[int, int]:
    """(shown, total) from the count line above the grid."""
    for md in at.markdown:
        m = re.match(r"\*\*([\d,]+) of ([\d,]+) images\*\* match", md.value)
        if m:
            return int(m[1].replace(",", "")), int(m[2].replace(",", ""))
        m = re.match(r"\*\*([\d,]+) images\*\*", md.value)
        if m:
            return int(m[1].replace(",", "")), int(m[1].replace(",", ""))
    raise AssertionError("no image count on the page")


def _grid_ids(at) -> list[str]:
    return [b.label.split(" · ")[0] for b in at.button if b.key and b.key.startswith("dataset_open_")]


def _page_label(at) -> str:
    return next(m.value for m in at.markdown if "Page " in m.value)


def _stats(demo_npz):
    ds = open_dataset(demo_npz)
    return ds, compute_stats(ds).per_image


def test_filter_changes_counts_and_grid(at, demo_npz):
    _, table = _stats(demo_npz)
    assert _count(at) == (len(table), len(table))
    assert len(_grid_ids(at)) == 24
    at.multiselect(key="dataset_w_present").set_value([4]).run()
    assert not at.exception
    want = int((table["px_4"] > 0).sum())
    assert _count(at) == (want, len(table))
    assert set(_grid_ids(at)) <= set(table.index[table["px_4"] > 0])
    # a chip removes its condition
    at.button(key="dataset_chip_present:4").click().run()
    assert _count(at) == (len(table), len(table))


def test_paging_and_filter_resets_page(at):
    first = _grid_ids(at)
    at.button(key="dataset_next").click().run()
    assert not at.exception
    assert "Page 2 of" in _page_label(at)
    assert set(_grid_ids(at)).isdisjoint(first)
    at.selectbox(key="dataset_w_sort_by").set_value("mean").run()
    assert "Page 1 of" in _page_label(at)


def test_range_sort_and_view_modes(at, demo_npz):
    _, table = _stats(demo_npz)
    at.session_state["dataset_filter"] = BrowseFilter(ranges=(Range("mean", 0, 60),), sort_by="mean", descending=True)
    at.run()
    want = table[(table["mean"] >= 0) & (table["mean"] <= 60)].sort_values("mean", ascending=False)
    assert 0 < _count(at)[0] == len(want)
    darkest_first = sorted(want.index, key=lambda i: (-want.loc[i, "mean"], natural_key(i)))  # ties: id order
    shown = _grid_ids(at)  # column by column: the first is the darkest, the page holds the darkest 24
    assert shown[0] == darkest_first[0] and sorted(shown) == sorted(darkest_first[:24])
    for mode in ("image", "mask", "side_by_side"):
        at.button_group(key="dataset_v_mode").set_value(mode).run()
        assert not at.exception
    at.button(key="dataset_v_none").click().run()
    assert not at.exception and at.button_group(key="dataset_v_visible").value == []


def test_bulk_flag_then_filter_by_state(at, demo_npz):
    at.multiselect(key="dataset_w_present").set_value([4]).run()
    shown, _ = _count(at)
    at.button(key="dataset_bulk_flag").click().run()
    assert not at.exception
    # the review key is the path of the demo the app opened
    from ui.data import ensure_demo
    key = dataset_key(ensure_demo())
    states = ReviewStore().states(key)
    assert len(states) == shown and set(states.values()) == {"flagged"}
    at.button(key="dataset_chip_present:4").click().run()
    at.multiselect(key="dataset_w_states").set_value(["flagged"]).run()
    assert _count(at)[0] == shown
    at.button(key="dataset_bulk_clear").click().run()
    assert ReviewStore().states(key) == {}


def test_detail_view_opens(at):
    image_id = _grid_ids(at)[0]
    at.button(key=f"dataset_open_{image_id}").click().run()
    assert not at.exception
    assert any(h.value == image_id for h in at.subheader)
    assert at.session_state["dataset_detail"] == image_id
