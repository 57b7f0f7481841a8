"""Moving between pages keeps ``?dataset=`` in the URL, so a reload opens the same dataset, not the demo."""
from __future__ import annotations

import re

import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import expect

from .conftest import assert_no_exception, shot, wait_for_app

pytestmark = pytest.mark.e2e


def test_page_switches_keep_the_dataset_in_the_url(page, app_url, tmp_path):
    root = tmp_path / "navset"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i in range(4):
        Image.fromarray(np.full((32, 64), 40 * i, np.uint8)).save(root / "images" / f"{i}.png")
        Image.fromarray((np.arange(64)[None, :].repeat(32, 0) > 30).astype(np.uint8)).save(root / "masks" / f"{i}.png")
    page.goto(f"{app_url}/?dataset={root}")
    wait_for_app(page)
    expect(page.get_by_role("heading", name="navset")).to_be_visible(timeout=30_000)
    sidebar = page.locator("[data-testid=stSidebar]")
    for name in ("Dataset", "Augment", "Home"):
        sidebar.get_by_role("link", name=name, exact=True).click()
        page.wait_for_timeout(300)
        wait_for_app(page)
        assert_no_exception(page)
        expect(page).to_have_url(re.compile(r"[?&]dataset=[^&]*navset"), timeout=15_000)
        page.reload()
        wait_for_app(page)
        # Home's title is the dataset's name; on the other pages the sidebar's path box holds it.
        expect(sidebar.get_by_label("Folder or .npz path")).to_have_value(str(root), timeout=30_000)


def test_detail_view_shows_a_big_image_at_1_to_1_and_pans(page, app_url, tmp_path):
    root = tmp_path / "bigone"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (1479, 2149, 3), dtype=np.uint8)).save(root / "images" / "tile.jpg")
    Image.fromarray((rng.random((1479, 2149)) > 0.5).astype(np.uint8)).save(root / "masks" / "tile.png")
    page.goto(f"{app_url}/dataset?dataset={root}")
    wait_for_app(page)
    page.locator("button[data-testid^=stBaseButton]", has_text=re.compile(r"^zoom_in\s*tile")).first.click()
    dialog = page.get_by_role("dialog")
    dialog.wait_for(timeout=30_000)
    wait_for_app(page)
    fit = dialog.locator("img").first.bounding_box()
    assert fit["width"] < 2149
    shot(page, "dataset-detail-fit")
    dialog.get_by_role("radio", name="1:1").click()
    wait_for_app(page)
    img = dialog.locator(".seglib-pan img")
    expect(img).to_be_visible(timeout=30_000)
    assert img.evaluate("i => [i.naturalWidth, i.getBoundingClientRect().width]") == [2149, 2149]
    box = dialog.locator(".seglib-pan")
    assert box.evaluate("b => b.scrollWidth > b.clientWidth && b.scrollHeight > b.clientHeight")
    box.evaluate("b => { b.scrollLeft = 500; }")
    assert box.evaluate("b => b.scrollLeft") == 500
    assert_no_exception(page)
    shot(page, "dataset-detail-1to1")
