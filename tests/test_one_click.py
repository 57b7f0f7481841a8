"""One-click segmentation without Streamlit: the click simulator and NoC, superpixels, SAM 2
through transformers from a Hugging Face cache built here offline (a tiny random checkpoint in
the hub's own format), proposals applied as undoable steps, snap to a model, and the CLI's fetch."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from sam_cache import fake_sam2_cache

from seglib.edit import clicks, regions, sam, superpixels
from seglib.edit.clicks import Click
from seglib.edit.proposal import Proposal
from seglib.edit.raster import Box
from seglib.edit.session import Work


def _disc(h=60, w=80, cy=30, cx=40, r=15):
    yy, xx = np.mgrid[:h, :w]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r


# --- the click simulator --------------------------------------------------------------------------
def test_first_click_is_the_objects_innermost_point_and_positive():
    truth = _disc()
    c = clicks.next_click(np.zeros_like(truth), truth)
    assert c.positive and abs(c.x - 40) <= 1 and abs(c.y - 30) <= 1


def test_next_click_goes_to_the_largest_error_region_negative_when_it_is_extra():
    truth = _disc()
    mask = truth.copy()
    mask[:, 70:] = True          # a big false-positive band at the right
    mask[30, 40] = False         # one missing pixel inside
    c = clicks.next_click(mask, truth)
    assert not c.positive and c.x >= 70, c
    ignore = np.zeros_like(truth)
    ignore[:, 70:] = True        # the band ignored: only the missing pixel is left
    c = clicks.next_click(mask, truth, ignore)
    assert c.positive and (c.x, c.y) == (40, 30)
    assert clicks.next_click(truth, truth) is None


def test_noc_counts_clicks_until_each_threshold_and_failures_count_the_limit():
    truth = _disc()
    perfect = clicks.clicks_to_iou(lambda cs: truth, truth)
    assert perfect.noc == {0.85: 1, 0.9: 1} and perfect.ious == [1.0]
    # a tool that only ever paints the clicked pixels never gets there
    def dots(cs):
        m = np.zeros(truth.shape, bool)
        for c in cs:
            m[c.y, c.x] = c.positive
        return m
    bad = clicks.clicks_to_iou(dots, truth, max_clicks=5)
    assert bad.noc == {0.85: None, 0.9: None} and len(bad.clicks) == 5
    table = clicks.summarise([perfect, bad], max_clicks=5)
    assert table["noc@85"] == 3.0 and table["noc@90"] == 3.0 and table["failed@90"] == 0.5


def test_superpixel_tool_reaches_an_object_made_of_whole_superpixels():
    rng = np.random.default_rng(0)
    truth = np.zeros((64, 96), bool)
    truth[16:48, 24:72] = True
    image = np.where(truth[..., None], [200, 40, 40], [30, 120, 30]).astype(np.uint8)
    image = np.clip(image + rng.integers(-8, 8, image.shape), 0, 255).astype(np.uint8)
    seg = superpixels.superpixels(image, size=12, compactness=10)
    res = clicks.clicks_to_iou(superpixels.click_tool(seg), truth, max_clicks=20)
    assert res.noc[0.9] is not None and res.ious[-1] >= 0.9, res.ious


# --- superpixels ----------------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["slic", "felzenszwalb"])
def test_superpixels_cover_the_image_and_a_drag_picks_every_region_it_crosses(method):
    rng = np.random.default_rng(1)
    image = (np.kron(rng.integers(0, 255, (6, 8, 3)), np.ones((10, 10, 1)))).astype(np.uint8)
    seg = superpixels.superpixels(image, size=10, method=method)
    assert seg.shape == (60, 80) and seg.dtype == np.int32 and seg.min() == 0
    one = superpixels.pick(seg, [(5.0, 5.0)])
    assert one is not None and one[1].all() or one[1].any()
    line = superpixels.path_points([np.array([[0.0, 30.0], [79.0, 30.0]])])
    box, pixels = superpixels.pick(seg, line)
    assert set(np.unique(seg[box.slices][pixels])) == set(np.unique(seg[30])), "every region on row 30"
    assert superpixels.pick(seg, [(-5.0, -5.0)]) is None
    assert superpixels.boundaries(seg).any()
    with pytest.raises(ValueError, match="superpixel method"):
        superpixels.superpixels(image, method="watershed")


# --- proposals and snap ---------------------------------------------------------------------------
class _Result:
    def __init__(self, box, pixels):
        self.box, self.pixels = box, pixels


def test_a_proposal_applies_exact_class_ids_as_one_undoable_step_and_clicks_go_back():
    mask = np.zeros((20, 30), np.uint8)
    work = Work("img", 0, mask, mask.copy())
    prop = Proposal("img", "sam2")
    pix = np.zeros((5, 6), bool)
    pix[1:4, 1:5] = True
    prop.push([Click(3, 3, True)], None, _Result(Box(2, 2, 7, 8), pix))
    prop.push([Click(3, 3, True), Click(9, 9, False)], None, _Result(Box(2, 2, 7, 8), pix & False))
    assert prop.back() and len(prop.clicks) == 1 and prop.area == 12
    assert prop.apply(work, 4) == 12 and prop.empty
    assert set(np.unique(work.mask)) == {0, 4} and (work.mask[3:6, 3:7] == 4).all()
    assert work.undo[-1].tool == "sam2"
    work.step_back()
    assert not work.mask.any()
    work.step_forward()
    assert (work.mask == 4).sum() == 12


def test_snap_takes_the_clicked_region_and_the_prediction_inside_a_box(demo_npz):
    from seglib.data import open_dataset

    cmap = open_dataset(demo_npz).class_map
    label = np.zeros((20, 30), np.uint8)
    pred = label.copy()
    pred[2:6, 2:6] = 1
    pred[10:15, 20:28] = 2
    found = regions.disagreement_regions(label, pred, cmap)
    r = regions.region_at(found, 3, 3)
    assert r is not None and r.pred_class == 1
    assert regions.region_at(found, 15, 15) is None
    inside = regions.prediction_in_box(label, pred, Box(9, 19, 16, 29), cmap)
    assert inside.shape == (7, 10) and (inside == 2).sum() == 40


# --- SAM 2 ----------------------------------------------------------------------------------------
def test_a_missing_model_says_in_one_line_how_to_fetch_it(hub_cache):
    assert sam.cached_folder() is None
    with pytest.raises(sam.SamMissing) as e:
        sam.Segmenter.load()
    text = str(e.value)
    assert "\n" not in text and "seglib weights fetch sam2.1-hiera-tiny" in text and "Download" in text
    with pytest.raises(sam.SamMissing, match="not a SAM 2 model"):
        sam.repo_of("resnet")


def test_windows_hold_small_images_whole_and_cut_big_ones_around_the_prompts():
    assert sam.window_for((360, 480), [Click(10, 10, True)], None) == Box(0, 0, 360, 480)
    w = sam.window_for((1500, 2000), [Click(1900, 1400, True)], None)
    assert w.shape == (1024, 1024) and w.x1 == 2000 and w.y1 == 1500
    again = sam.window_for((1500, 2000), [Click(1900, 1400, True), Click(1700, 1200, False)], None, keep=w)
    assert again == w, "a click inside the window keeps its embedding"
    wide = sam.window_for((1500, 3000), [], (100, 100, 2500, 400))
    assert wide.x0 <= 100 - sam.MARGIN + 1 and wide.x1 >= 2500 and wide.shape[0] == 1024


def test_model_input_matches_transformers_image_processor():
    from transformers import Sam2ImageProcessor

    rng = np.random.default_rng(0)
    image = (rng.random((300, 400, 3)) * 255).astype(np.uint8)
    ours = sam.model_input(image, Box(0, 0, 300, 400))
    theirs = Sam2ImageProcessor()(images=image, return_tensors="pt")["pixel_values"].numpy()
    assert ours.shape == theirs.shape == (1, 3, 1024, 1024)
    assert np.abs(ours - theirs).mean() < 0.02


def test_sam2_from_the_cache_segments_from_clicks_and_a_box_and_refines(hub_cache):
    fake_sam2_cache(hub_cache)
    seg = sam.Segmenter.load(device="cpu")
    calls = []
    real = seg.model.forward

    def spy(*a, **kw):
        calls.append(kw)
        return real(*a, **kw)

    seg.model.forward = spy
    rng = np.random.default_rng(0)
    image = (rng.random((90, 120, 3)) * 255).astype(np.uint8)
    first = seg.segment(image, "a", [Click(30, 40, True)])
    assert seg.has_embedding("a", Box(0, 0, 90, 120))
    pts = calls[-1]["input_points"]
    assert torch.allclose(pts[0, 0, 0], torch.tensor([30.5 * 1024 / 120, 40.5 * 1024 / 90]))
    assert calls[-1]["input_labels"].tolist() == [[[1]]] and calls[-1]["multimask_output"]
    assert first.pixels.shape == first.box.shape and first.logits.shape == (256, 256)
    second = seg.segment(image, "a", [Click(30, 40, True), Click(100, 10, False)], previous=first)
    assert calls[-1]["input_labels"].tolist() == [[[1, 0]]] and "input_masks" in calls[-1]
    assert not calls[-1]["multimask_output"]
    boxed = seg.segment(image, "a", [], box=(10, 10, 50, 60))
    assert "input_boxes" in calls[-1] and boxed.window == Box(0, 0, 90, 120)
    assert second.full(image.shape[:2]).shape == (90, 120)
    with pytest.raises(ValueError):
        seg.segment(image, "a", [])


def test_sam2_click_tool_runs_under_the_simulator(hub_cache):
    fake_sam2_cache(hub_cache)
    seg = sam.Segmenter.load(device="cpu")
    truth = _disc()
    image = np.where(truth[..., None], 220, 20).astype(np.uint8).repeat(3, axis=2)
    res = clicks.clicks_to_iou(seg.click_tool(image, "disc"), truth, max_clicks=3)
    assert len(res.ious) == len(res.clicks) >= 1 and all(0.0 <= v <= 1.0 for v in res.ious)


def test_cli_fetch_of_a_cached_sam2_and_a_missing_one(hub_cache):
    fake_sam2_cache(hub_cache)
    env = dict(os.environ, HF_HUB_CACHE=str(hub_cache), HF_HUB_OFFLINE="1", HF_ENDPOINT="http://127.0.0.1:9")

    def run(*args):
        return subprocess.run([sys.executable, "-m", "seglib", "weights", *args], capture_output=True, text=True,
                              env=env, timeout=120)
    ok = run("fetch", "sam2.1-hiera-tiny")
    assert ok.returncode == 0 and "models--facebook--sam2.1-hiera-tiny" in ok.stdout
    listed = run("list")
    assert "sam2.1-hiera-tiny" in listed.stdout and "SAM 2" in listed.stdout
    missing = run("fetch", "sam2.1-hiera-small")
    assert missing.returncode != 0 and "seglib weights fetch sam2.1-hiera-small" in missing.stderr
    assert "Traceback" not in missing.stderr


def test_the_wand_floods_about_the_clicked_colour_grey_or_rgb():
    from seglib.edit import wand

    grey = np.zeros((20, 30), np.uint8)
    grey[5:10, 5:15] = 100
    grey[6, 6] = 108
    box, pixels = wand.colour_region(grey, 7, 7, 10)
    assert box == Box(5, 5, 10, 15) and pixels.sum() == 50
    assert wand.colour_region(grey, 7, 7, 5)[1].sum() == 49, "108 is beyond a tolerance of 5"
    rgb = np.zeros((20, 30, 3), np.uint8)
    rgb[5:10, 5:15] = (200, 10, 10)
    rgb[2, 2] = (200, 200, 10)
    assert wand.colour_region(rgb, 7, 7, 10)[1].sum() == 50
    assert wand.colour_region(rgb, 40, 7) is None
    tool = wand.click_tool(rgb)
    m = tool([Click(7, 7, True), Click(0, 0, True), Click(0, 0, False)])
    assert m.sum() == 50


def test_big_images_are_cut_at_a_reduced_size_and_scaled_back():
    rng = np.random.default_rng(2)
    image = (np.kron(rng.integers(0, 255, (10, 12, 3)), np.ones((30, 30, 1)))).astype(np.uint8)   # 300x360
    seg = superpixels.superpixels(image, size=20, max_pixels=20_000)
    assert seg.shape == (300, 360) and seg.dtype == np.int32
    assert len(np.unique(seg)) > 20, "still many regions"
    box, pixels = superpixels.pick(seg, [(15.0, 15.0)])
    assert pixels.any() and box.y0 == 0
