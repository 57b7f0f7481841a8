"""Filtering, sorting, paging, plot-selection translation, chips and thumbnails (no Streamlit)."""
from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from seglib import browse, viz
from seglib.browse import BrowseFilter, Range
from seglib.data import open_dataset
from seglib.data.classmap import ClassMap
from seglib.stats import compute_stats
from seglib.viz import View

CMAP = ClassMap.default([0, 1, 2])


def _table() -> pd.DataFrame:
    """Five images: a..d labeled, e unlabeled. Image area 100 px."""
    px = {"a": (100, 0, 0), "b": (50, 50, 0), "c": (20, 30, 50), "d": (90, 0, 10), "e": (np.nan,) * 3}
    rows = []
    for image_id, counts in px.items():
        row = {"image_id": image_id, "labeled": image_id != "e", "height": 10, "width": 10, "channels": 1,
               "mean": {"a": 10.0, "b": 200.0, "c": 90.0, "d": 90.0, "e": 5.0}[image_id]}
        for cid, n in enumerate(counts):
            row[f"px_{cid}"] = n
            row[f"frac_{cid}"] = n / 100
        rows.append(row)
    return pd.DataFrame(rows).set_index("image_id")


def test_present_absent_and_unlabeled():
    t = _table()
    assert browse.select(t, BrowseFilter(present=(1,))) == ["b", "c"]
    assert browse.select(t, BrowseFilter(present=(1, 2))) == ["c"]
    # unlabeled "e" has no mask: it neither has nor lacks a class
    assert browse.select(t, BrowseFilter(absent=(2,))) == ["a", "b"]
    assert browse.select(t, BrowseFilter(labeled="unlabeled")) == ["e"]
    assert browse.select(t, BrowseFilter(labeled="labeled")) == ["a", "b", "c", "d"]


def test_ranges_half_open_and_closed():
    t = _table()
    assert browse.select(t, BrowseFilter(ranges=(Range("frac_0", 0.5, 0.9, closed=False),))) == ["b"]
    assert browse.select(t, BrowseFilter(ranges=(Range("frac_0", 0.5, 0.9),))) == ["b", "d"]
    assert browse.select(t, BrowseFilter(ranges=(Range("mean", 0, 50),))) == ["a", "e"]
    with pytest.raises(KeyError, match="frac_9"):
        browse.select(t, BrowseFilter(ranges=(Range("frac_9", 0, 1),)))


def test_review_states():
    t = _table()
    states = {"a": "flagged", "c": "exclude"}
    assert browse.select(t, BrowseFilter(states=("flagged",)), states) == ["a"]
    assert browse.select(t, BrowseFilter(states=(browse.NO_STATE,)), states) == ["b", "d", "e"]
    assert browse.select(t, BrowseFilter(states=("flagged", "exclude")), states) == ["a", "c"]


def test_sort_nan_last_and_ties_by_id():
    t = _table()
    assert browse.select(t, BrowseFilter(sort_by="frac_2", descending=True)) == ["c", "d", "a", "b", "e"]
    assert browse.select(t, BrowseFilter(sort_by="frac_2")) == ["a", "b", "d", "c", "e"]
    assert browse.select(t, BrowseFilter(sort_by="mean")) == ["e", "a", "c", "d", "b"]
    assert browse.select(t, BrowseFilter(descending=True)) == ["e", "d", "c", "b", "a"]


def test_natural_id_order():
    t = pd.DataFrame({"labeled": True, "mean": [1.0, 1.0, 1.0, 0.0]}, index=["img10", "img2", "a/3", "img1"])
    assert browse.select(t, BrowseFilter()) == ["a/3", "img1", "img2", "img10"]
    assert browse.select(t, BrowseFilter(sort_by="mean")) == ["img1", "a/3", "img2", "img10"]


def test_page_of_clamps():
    ids = [str(i) for i in range(50)]
    assert browse.page_of(ids, 0, 24) == (ids[:24], 3)
    assert browse.page_of(ids, 2, 24) == (ids[48:], 3)
    assert browse.page_of(ids, 9, 24) == (ids[48:], 3)
    assert browse.page_of([], 0, 24) == ([], 1)


def test_apply_selection_translates_customdata():
    f = BrowseFilter(absent=(1,))
    f = browse.apply_selection(f, [{"customdata": ["class", 1, 500, 3]}])
    assert f.present == (1,) and f.absent == ()
    f = browse.apply_selection(f, [{"customdata": ["pair", 1, 2, 7]}, {"x": 3}])
    assert f.present == (1, 2)
    bins = [{"customdata": ["range", "frac_2", 0.2, 0.3, False, 2, 4]},
            {"customdata": ["range", "frac_2", 0.3, 0.4, True, 2, 1]}]
    f = browse.apply_selection(BrowseFilter(), bins)
    assert f.ranges == (Range("frac_2", 0.2, 0.4, True),) and f.present == (2,)
    # a new bin on the same column replaces the old bound instead of intersecting it to nothing
    f = browse.apply_selection(f, [{"customdata": ["range", "frac_2", 0.0, 0.1, False, -1, 9]}])
    assert f.ranges == (Range("frac_2", 0.0, 0.1, False),)


def test_plot_bins_select_exactly_the_counted_images(demo_npz):
    """What a bin says it holds is what clicking it shows."""
    from seglib.viz import plots

    ds = open_dataset(demo_npz)
    table = compute_stats(ds).per_image
    fig = plots.stat_histogram_figure(table, "mean", bins=12)
    for point in fig.data[0].customdata:
        got = browse.select(table, browse.apply_selection(BrowseFilter(), [{"customdata": list(point)}]))
        assert len(got) == point[-1]
    fig = plots.fraction_histograms_figure(table, ds.class_map, [4], bins=10)
    total = 0
    for point in fig.data[0].customdata:
        got = browse.select(table, browse.apply_selection(BrowseFilter(), [{"customdata": list(point)}]))
        assert len(got) == point[-1]
        total += len(got)
    assert total == int((table["px_4"] > 0).sum())


def test_chips_and_remove():
    f = BrowseFilter(present=(1,), absent=(2,), ranges=(Range("frac_0", 0.1, 0.5),), states=("flagged",),
                     labeled="labeled")
    chips = dict(browse.chips(f, CMAP))
    assert chips["present:1"] == "has class_1" and chips["absent:2"] == "no class_2"
    assert chips["range:frac_0"] == "share of class_0 in [10.0%, 50.0%]"
    for key in chips:
        f = browse.remove_chip(f, key)
    assert not f.active
    with pytest.raises(KeyError):
        browse.remove_chip(f, "bogus:1")


def test_subset_per_class_and_cooccurrence_follow_filter(demo_npz):
    ds = open_dataset(demo_npz)
    stats = compute_stats(ds)
    table = stats.per_image
    full = browse.subset_per_class(table, ds.class_map)
    pd.testing.assert_frame_equal(full, stats.per_class(), check_dtype=False)
    pd.testing.assert_frame_equal(browse.subset_cooccurrence(table, ds.class_map), stats.cooccurrence(),
                                  check_dtype=False)
    keep = browse.filter_mask(table, BrowseFilter(present=(4,)))
    sub = browse.subset_per_class(table, ds.class_map, keep).set_index("id")
    assert sub.loc[4, "images_with_class"] == keep.sum() < full.set_index("id").loc[0, "images_with_class"]


@pytest.mark.parametrize("shape,expect", [((64, 128), (128, 256)), ((1800, 2000, 3), (230, 256))])
def test_thumbnail_sizes(tmp_path, shape, expect):
    rng = np.random.default_rng(0)
    root = tmp_path / "ds"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    Image.fromarray(rng.integers(0, 255, shape, dtype=np.uint8)).save(root / "images" / "x.png")
    mask = np.zeros(shape[:2], np.uint8)
    mask[: shape[0] // 2] = 1
    Image.fromarray(mask).save(root / "masks" / "x.png")
    ds = open_dataset(root)
    data, mime = viz.thumbnail(ds, "x", View(mode="mask"), size=256)
    out = np.asarray(Image.open(io.BytesIO(data)))
    assert out.shape[:2] == expect
    assert mime in ("image/png", "image/jpeg")
    # mask mode: top half in class 1's colour, bottom half in class 0's
    lut = ds.class_map.lut()
    assert np.abs(out[5, 5].astype(int) - lut[1]).max() < 12
    assert np.abs(out[-5, 5].astype(int) - lut[0]).max() < 12


def test_class_pixels_sorted():
    row = _table().loc["c"]
    out = browse.class_pixels(row, CMAP)
    assert list(out["class"]) == ["class_2", "class_1", "class_0"]
    assert out["pixels"].sum() == 100 and out["share"].iloc[0] == pytest.approx(0.5)


def test_view_draw_modes():
    img = np.full((4, 6), 100, np.uint8)
    mask = np.zeros((4, 6), np.uint8)
    mask[:, 3:] = 1
    cmap = ClassMap.default([0, 1])
    assert View("side_by_side").draw(img, mask, cmap).shape == (4, 16, 3)
    assert (View("image").draw(img, mask, cmap) == 100).all()
    hidden = View("mask", visible=(0,)).draw(img, mask, cmap)
    assert (hidden[:, 3:] == 0).all()
    assert viz.contours(mask)[:, 2:4].all() and not viz.contours(mask)[:, :2].any()


def test_overlay_blends_only_visible_classes():
    img = np.full((2, 2), 100, np.uint8)
    mask = np.array([[0, 1], [1, 0]], np.uint8)
    cmap = ClassMap.default([0, 1])
    out = viz.overlay(img, mask, cmap, 0.5, visible=[1])
    assert (out[0, 0] == 100).all()
    want = np.rint(0.5 * 100 + 0.5 * np.array(cmap.by_id(1).rgb))
    assert (out[0, 1] == want).all()
    assert (viz.overlay(img, mask, cmap, 0.5, visible=[]) == 100).all()
