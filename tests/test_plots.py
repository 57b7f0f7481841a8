"""Plotly figures: right numbers, class colours, and customdata that says what a click means."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from seglib import browse
from seglib.data import open_dataset
from seglib.stats import compute_stats
from seglib.viz import plots


@pytest.fixture(scope="module")
def demo(demo_npz):
    ds = open_dataset(demo_npz)
    return ds, compute_stats(ds)


def test_class_bars(demo):
    ds, stats = demo
    per_class = stats.per_class()
    for fig, column in ((plots.class_share_figure(per_class), "pixel_fraction"),
                        (plots.images_per_class_figure(per_class), "images_with_class")):
        bar = fig.data[0]
        # drawn bottom-up: the first class is the top bar
        assert list(bar.y) == list(per_class["name"])[::-1]
        assert np.allclose(bar.x, per_class[column].to_numpy()[::-1])
        assert [d[0] for d in bar.customdata] == ["class"] * len(per_class)
        assert [d[1] for d in bar.customdata] == list(per_class["id"])[::-1]
    # black classes are drawn grey, others in their colour
    colors = list(plots.class_share_figure(per_class).data[0].marker.color)[::-1]
    for c, got in zip(ds.class_map, colors, strict=True):
        assert got == ("#BBBBBB" if c.color == "#000000" else c.color)


def test_fraction_histograms_one_panel_per_class(demo):
    ds, stats = demo
    table = stats.per_image
    fig = plots.fraction_histograms_figure(table, ds.class_map, bins=10)
    assert len(fig.data) == len(ds.class_map)
    for cid, trace in zip(ds.class_map.ids, fig.data, strict=True):
        assert trace.y.sum() == int((table[f"px_{cid}"] > 0).sum())
        assert all(d[1] == f"frac_{cid}" and d[5] == cid for d in trace.customdata)
        assert trace.customdata[-1][4] is True and trace.customdata[0][4] is False


def test_stat_histogram_integer_column_one_bin_per_value(demo):
    _, stats = demo
    table = stats.per_image
    fig = plots.stat_histogram_figure(table, "n_classes")
    bar = fig.data[0]
    values = table["n_classes"].dropna()
    assert len(bar.y) == values.max() - values.min() + 1
    assert bar.y.sum() == len(values)


def test_pairs_and_heatmap(demo):
    ds, stats = demo
    cooc = stats.cooccurrence()
    fig = plots.pairs_figure(cooc, ds.class_map, top=3)
    bar = fig.data[0]
    assert len(bar.y) == 3
    top = bar.customdata[-1]  # the largest pair is the top bar (last drawn)
    assert top[0] == "pair" and top[3] == max(bar.x)
    names = ds.class_map.names
    assert cooc.loc[names[top[1]], names[top[2]]] == top[3]
    # clicking it keeps exactly those images
    got = browse.select(stats.per_image, browse.apply_selection(browse.BrowseFilter(), [{"customdata": list(top)}]))
    assert len(got) == top[3]
    heat = plots.cooccurrence_figure(cooc, normalize=True).data[0]
    assert np.allclose(np.diag(heat.z), 1.0)


def test_empty_inputs_do_not_fail(demo):
    ds, stats = demo
    empty = stats.per_image.iloc[:0]
    assert plots.stat_histogram_figure(empty, "mean").data[0].y.sum() == 0
    assert plots.fraction_histograms_figure(empty, ds.class_map).data[0].y.sum() == 0
    assert len(plots.pairs_figure(browse.subset_cooccurrence(empty, ds.class_map), ds.class_map).data[0].y) == 0


def test_map_figure_one_trace_per_state_with_image_ids():
    table = pd.DataFrame({"pc1": [0.0, 1.0, 2.0], "pc2": [1.0, 0.0, 2.0],
                          "review state": ["flagged", "unreviewed", "flagged"], "detector": ["none", "dup", "dup"]},
                         index=pd.Index(["a", "b", "c"], name="image_id"))
    fig = plots.map_figure(table, "pc1", "pc2", "review state")
    assert [t.name for t in fig.data] == ["unreviewed (1)", "flagged (2)"]  # in STATE_COLORS order
    assert list(fig.data[1].customdata) == ["a", "c"] and fig.data[1].marker.color == plots.STATE_COLORS["flagged"]
    by_det = plots.map_figure(table, "pc1", "pc2", "detector")
    assert [t.name for t in by_det.data] == ["none (1)", "dup (2)"]  # images no detector flagged first



def test_compare_grouped_bars_write_each_value_and_stand_them_up_when_crowded():
    from seglib.viz import compare_plots

    few = pd.DataFrame({"unet": [0.9, 0.5], "segformer": [0.8, np.nan]}, index=["soil", "sand"])
    fig = compare_plots.grouped_bars(few, {"unet": "#111111"}, "IoU", percent=False)
    assert [t.name for t in fig.data] == ["unet", "segformer"]
    assert list(fig.data[0].text) == ["0.900", "0.500"] and list(fig.data[1].text) == ["0.800", "–"]
    assert fig.data[0].marker.color == "#111111" and fig.data[0].textangle == 0
    crowded = pd.DataFrame(np.full((5, 4), 0.9), columns=list("abcd"))
    fig = compare_plots.grouped_bars(crowded, {}, "metrics", percent=False)
    assert all(t.textangle == -90 for t in fig.data)
    assert fig.layout.yaxis.range[1] > 1.12   # room above the bars for the upright labels


def test_confusion_figure_rows_sum_to_one_and_cells_carry_their_classes():
    from seglib.viz import compare_plots

    counts = np.array([[8, 2, 0], [1, 3, 0], [0, 0, 0]])
    fig = compare_plots.confusion_figure(counts, ["bg", "soil", "rock"], "unet", picked=(0, 1))
    share = np.asarray(fig.data[0].z)
    assert np.allclose(share[:2].sum(1), 1) and np.allclose(share[2], 0)   # an absent class: an empty row
    assert fig.data[0].text[0][1] == "20%" and fig.data[0].text[2][2] == ""
    cell = fig.data[1].customdata[1]          # row 0, column 1: true bg predicted soil
    assert list(cell[:3]) == [0, 1, 2]
    assert len(fig.layout.shapes) == 1       # the picked cell outlined
