"""Browser tests of the Label page's one-click tools on a 64x128 demo image. SAM 2 with a tiny random
checkpoint in the server's Hugging Face cache (tests/sam_cache.py): a click gives a proposal (its
latency from the mouse click to the caption is printed and written to screenshots/click_latency.txt),
a negative click refines it, Apply writes it into the working mask as an undoable, redoable step.
SAM 2 with an empty cache: the page says how to fetch it, offers Download, and the brush still paints.
Superpixel: a click gives the superpixels under it the chosen class, exactly, undoably."""
from __future__ import annotations

import re
import time

import numpy as np
import pytest

from .conftest import SHOTS, assert_no_exception, open_label, running_app, shot, stored_versions, wait_for_app

pytestmark = pytest.mark.e2e

CHANGED = re.compile(r"[\d,]+ pixels changed, not saved yet")


def _demo_data(tmp_path_factory, name: str):
    from seglib.data.demo import write_demo
    d = tmp_path_factory.mktemp(name)
    write_demo(d / "demo" / "mars_demo.npz", n=60, seed=0, n_test=4)
    return d


def _hub_env(cache) -> dict:
    return {"HF_HOME": str(cache.parent), "HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1"}


@pytest.fixture(scope="module")
def sam_app(tmp_path_factory):
    """The app with a tiny random SAM 2 in its hub cache: (url, data folder)."""
    from sam_cache import fake_sam2_cache

    data = _demo_data(tmp_path_factory, "click-tools-app")
    cache = tmp_path_factory.mktemp("click-tools-hf") / "hub"
    fake_sam2_cache(cache)
    with running_app(data, env=_hub_env(cache)) as url:
        yield url, data


@pytest.fixture(scope="module")
def bare_app(tmp_path_factory):
    """The app with an empty hub cache (no SAM 2): its url."""
    data = _demo_data(tmp_path_factory, "click-tools-bare")
    cache = tmp_path_factory.mktemp("click-tools-bare-hf") / "hub"
    cache.mkdir()
    with running_app(data, env=_hub_env(cache)) as url:
        yield url


def _open(pg, url: str, image_id: str) -> None:
    open_label(pg, url, f"image={image_id}")


def _button(pg, key: str):
    """The button keyed ``key``: its first (Streamlit draws a hidden copy of a stretched button to measure it)."""
    return pg.locator(f".st-key-{key} button").first


def _press(pg, key: str) -> None:
    """Press the button keyed ``key`` (e.g. label_click_apply); the caller waits for what it does (the
    rerun may start a few seconds after the click: wait_for_app alone can return before it)."""
    button = _button(pg, key)
    assert button.is_enabled(), f"{key} is disabled"
    button.click()


def _choose(pg, key: str) -> None:
    """Press a tool, prompt or class button and wait until the page shows it chosen (primary)."""
    _press(pg, key)
    pg.locator(f".st-key-{key} button[kind=primary]").first.wait_for(timeout=60_000)
    wait_for_app(pg)


def _canvas(pg, w: int = 128, h: int = 64) -> tuple[dict, float]:
    """The canvas's box and its scale (screen px per image px)."""
    box = pg.locator(".dc-container").bounding_box()
    assert box and box["width"] > 100, box
    scale = box["width"] / w
    assert abs(box["height"] / h - scale) < 0.05
    return box, scale


def _at(box: dict, scale: float, x: float, y: float) -> tuple[float, float]:
    return box["x"] + x * scale, box["y"] + y * scale


def _status(pg) -> str:
    """The save row's caption: "N pixels changed, not saved yet" or "No unsaved change."."""
    return pg.locator("[data-testid=stCaptionContainer]").filter(
        has_text=re.compile(r"pixels changed, not saved yet|^No unsaved change\.$")).first.inner_text()


def _count(status: str) -> int:
    """N of "N pixels changed, not saved yet"."""
    return int(status.split()[0].replace(",", ""))


def _area(caption: str) -> int:
    """The proposal's size in its caption ("Proposal: 4,096 px from ...")."""
    return int(re.search(r"^Proposal: ([\d,]+) px", caption).group(1).replace(",", ""))


def _proposal(pg):
    return pg.locator("[data-testid=stCaptionContainer]").filter(has_text=re.compile(r"^Proposal: "))


def test_sam2_click_proposes_applies_undoes_and_redoes(sam_app, tall_page):
    from seglib.data import open_dataset

    url, data = sam_app
    pg = tall_page
    _open(pg, url, "00003")
    assert_no_exception(pg)
    assert _status(pg) == "No unsaved change."
    _choose(pg, "label_tool_sam2")
    for kind in ("add", "remove", "box"):
        assert _button(pg, f"label_prompt_{kind}").is_visible(), kind
    assert pg.locator(".st-key-label_click_download").count() == 0, "the model is in the cache"
    assert not _button(pg, "label_click_apply").is_enabled(), "nothing to apply yet"
    assert _proposal(pg).count() == 0
    box, scale = _canvas(pg)

    start = time.perf_counter()
    pg.mouse.click(*_at(box, scale, 50.5, 20.5))       # pixel (50, 20): the tiny random model proposes half
    _proposal(pg).first.wait_for(state="visible", timeout=60_000)
    latency = time.perf_counter() - start
    print(f"SAM 2 click to mask drawn: {latency:.2f} s")   # the first: loads the model, embeds the image
    wait_for_app(pg)
    assert_no_exception(pg)
    first = _proposal(pg).first.inner_text()
    assert re.search(r"from 1 add\b", first) and "remove" not in first, first
    assert _button(pg, "label_click_apply").is_enabled()
    assert re.search(r"Apply as soil", _button(pg, "label_click_apply").inner_text())
    assert _status(pg) == "No unsaved change.", "a proposal is not an edit"
    shot(pg, "click_sam2_proposal")

    _choose(pg, "label_prompt_remove")
    box, scale = _canvas(pg)
    start = time.perf_counter()
    pg.mouse.click(*_at(box, scale, 100.5, 40.5))      # pixel (100, 40): it takes most of that half out
    pg.wait_for_function("() => [...document.querySelectorAll('[data-testid=stCaptionContainer]')]"
                         ".some(e => /^Proposal: .* from 1 add\\b.*\\b1 remove\\b/.test(e.innerText))",
                         timeout=60_000)   # "1 add, 1 remove click(s)" or "1 add click and 1 remove click"
    again = time.perf_counter() - start
    print(f"SAM 2 second click (model loaded) to mask drawn: {again:.2f} s")
    SHOTS.mkdir(exist_ok=True)
    (SHOTS / "click_latency.txt").write_text(f"SAM 2 click to mask drawn: {latency:.2f} s\n"
                                             f"SAM 2 second click (model loaded) to mask drawn: {again:.2f} s\n"
                                             f"first proposal: {first}\n")
    wait_for_app(pg)
    assert_no_exception(pg)
    second = _proposal(pg).first.inner_text()
    assert _area(second) != _area(first), "the negative click reached the model"
    shot(pg, "click_sam2_remove")

    _press(pg, "label_click_apply")
    pg.get_by_text(CHANGED).wait_for(timeout=30_000)
    wait_for_app(pg)
    applied = _status(pg)
    assert CHANGED.search(applied), applied
    assert _proposal(pg).count() == 0, "applying clears the proposal"
    assert not _button(pg, "label_click_apply").is_enabled()
    shot(pg, "click_sam2_applied")

    _press(pg, "label_undo")
    pg.get_by_text("No unsaved change.").wait_for(timeout=30_000)
    wait_for_app(pg)
    assert _status(pg) == "No unsaved change."
    _press(pg, "label_redo")
    pg.get_by_text(CHANGED).wait_for(timeout=30_000)
    wait_for_app(pg)
    assert _status(pg) == applied, "redo brings back the same edit"
    assert_no_exception(pg)

    pg.keyboard.press("Control+s")
    pg.get_by_text("No unsaved change.").wait_for(timeout=30_000)
    wait_for_app(pg)
    ds = open_dataset(data / "demo" / "mars_demo.npz")
    v, saved = stored_versions(data, ds, "00003")
    assert [x.number for x in v] == [1] and v[0].tool == "sam2"
    changed = saved != ds.original_mask("00003")
    soil = next(c.id for c in ds.class_map.classes if c.name == "soil")
    assert int(changed.sum()) == _count(applied) <= _area(second), "at most the proposal's pixels changed"
    assert set(np.unique(saved[changed])) == {soil}, "exactly the class applied"


def test_sam2_without_weights_says_how_to_fetch_and_the_brush_still_paints(bare_app, tall_page):
    pg = tall_page
    _open(pg, bare_app, "00004")
    _choose(pg, "label_tool_sam2")
    main = pg.locator("[data-testid=stMain]")
    assert main.get_by_text("seglib weights fetch sam2.1-hiera-tiny").count() >= 1
    assert pg.locator("[data-testid=stAlert]").filter(has_text="seglib weights fetch sam2.1-hiera-tiny").count() == 1
    download = _button(pg, "label_click_download")
    assert download.is_visible() and "Download" in download.inner_text()
    assert not _button(pg, "label_click_apply").is_enabled()
    assert_no_exception(pg)
    # a click without the model: a warning with the missing message, not an exception, and no edit. It
    # shows for one run only (the canvas's clearing reruns the page at once and the info box comes back),
    # so a MutationObserver set before the click records every warning that appears.
    pg.evaluate("""() => { window.__warnings = [];
        new MutationObserver(() => document.querySelectorAll('[data-testid=stAlertContentWarning]')
            .forEach(e => window.__warnings.push(e.innerText))).observe(document.body,
            {childList: true, subtree: true, characterData: true}); }""")
    box, scale = _canvas(pg)
    pg.mouse.click(*_at(box, scale, 40.5, 30.5))
    pg.wait_for_function("() => window.__warnings.some(t => t.includes('is not in the Hugging Face cache'))",
                         timeout=30_000)
    wait_for_app(pg)
    assert_no_exception(pg)
    assert _status(pg) == "No unsaved change."
    shot(pg, "click_sam2_missing")

    _choose(pg, "label_tool_brush")
    assert pg.locator(".st-key-label_click_download").count() == 0
    box, scale = _canvas(pg)
    points = [_at(box, scale, x, 20.0 + 0.2 * x) for x in np.linspace(20, 90, 25)]
    pg.mouse.move(*points[0])
    pg.mouse.down()
    for p in points[1:]:
        pg.mouse.move(*p, steps=1)
        pg.wait_for_timeout(15)
    pg.mouse.up()
    pg.get_by_text(CHANGED).wait_for(timeout=30_000)
    wait_for_app(pg)
    assert_no_exception(pg)
    shot(pg, "click_sam2_missing_brush")


def test_superpixel_click_paints_the_class_exactly_and_undoes(sam_app, tall_page):
    from seglib.data import open_dataset
    from seglib.edit import superpixels

    url, data = sam_app
    image_id = "00007"
    ds = open_dataset(data / "demo" / "mars_demo.npz")
    original = ds.original_mask(image_id)
    h, w = original.shape
    sand = next(c.id for c in ds.class_map.classes if c.name == "sand")
    pg = tall_page
    _open(pg, url, image_id)
    _choose(pg, "label_tool_superpixel")
    assert pg.get_by_text("Superpixel size (image px)").count() == 1
    _choose(pg, f"label_class_{sand}")           # not the default class (soil)
    assert "sand" in pg.get_by_text(re.compile("^Painting")).first.inner_text()
    box, scale = _canvas(pg, w, h)
    x, y = 40.5, 30.5                           # bedrock there, in the demo's 00007
    pg.mouse.click(*_at(box, scale, x, y))
    pg.get_by_text(CHANGED).wait_for(timeout=60_000)
    wait_for_app(pg)
    assert_no_exception(pg)
    shot(pg, "click_superpixel")
    painted = _status(pg)
    _press(pg, "label_undo")
    pg.get_by_text("No unsaved change.").wait_for(timeout=30_000)
    wait_for_app(pg)
    _press(pg, "label_redo")
    pg.get_by_text(CHANGED).wait_for(timeout=30_000)
    wait_for_app(pg)
    assert _status(pg) == painted
    pg.keyboard.press("Control+s")
    pg.get_by_text("No unsaved change.").wait_for(timeout=30_000)
    wait_for_app(pg)
    assert_no_exception(pg)

    v, saved = stored_versions(data, ds, image_id)
    assert [x.number for x in v] == [1] and v[0].tool == "superpixel"
    changed = saved != original
    assert int(changed.sum()) == _count(painted), "the caption counts the changed pixels"
    assert set(np.unique(saved[changed])) == {sand}, "exactly the class chosen"
    # whole superpixels, those under the click (the page's default settings)
    seg = superpixels.superpixels(ds.image(image_id), superpixels.DEFAULT_SIZE, superpixels.DEFAULT_COMPACTNESS,
                                  "slic")
    picked = set(np.unique(seg[changed]))
    near = set(np.unique(seg[int(y) - 2:int(y) + 3, int(x) - 2:int(x) + 3]))
    assert picked <= near, "only superpixels under the click"
    assert np.array_equal(changed, np.isin(seg, list(picked)) & (original != sand)), "whole superpixels"
