"""A new user opens the app: the demo appears, then they switch to a folder by path; a folder whose
class file misses the masks' colours is fixed from Home."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from aerial_tiles import FILE_CLASSES, MASK_COLOURS, write_aerial
from PIL import Image
from playwright.sync_api import expect

from .conftest import assert_no_exception, shot, wait_for_app

pytestmark = pytest.mark.e2e


def test_demo_home_then_open_a_folder_by_path(page, app_url, tmp_path):
    page.goto(app_url)
    wait_for_app(page)
    assert_no_exception(page)
    expect(page.get_by_role("heading", name="mars_demo")).to_be_visible(timeout=30_000)
    shot(page, "home-demo")

    root = tmp_path / "tiny"
    (root / "image").mkdir(parents=True)
    (root / "label").mkdir()
    for i in range(3):
        Image.fromarray(np.full((32, 32), 60 * i, np.uint8)).save(root / "image" / f"{i}.png")
        m = np.zeros((32, 32), np.uint8)
        m[:, 16:] = 255
        Image.fromarray(m).save(root / "label" / f"{i}.png")
    (root / "image" / "3.png").write_bytes(b"truncated")

    page.get_by_text("Path on this machine").click()
    box = page.get_by_label("Folder or .npz path")
    box.fill(str(root))
    page.get_by_role("button", name="Open").click()
    page.wait_for_timeout(500)
    wait_for_app(page)
    assert_no_exception(page)
    expect(page.get_by_role("heading", name="tiny")).to_be_visible(timeout=30_000)
    assert "dataset=" in page.url
    page.get_by_text("problems (1 left out)").click()  # the sidebar's report expander
    expect(page.get_by_text("not an image file").first).to_be_visible()
    shot(page, "home-folder-with-problem")

    # A reload keeps the dataset (it lives in the URL).
    page.reload()
    wait_for_app(page)
    expect(page.get_by_role("heading", name="tiny")).to_be_visible(timeout=30_000)


def test_a_class_file_with_wrong_colours_is_fixed_from_home(page, app_url, tmp_path):
    """The aerial set's case in the browser: the banner first, the new class file downloaded as the
    browser saves it, then saved beside the data and the dataset read again with it."""
    root = write_aerial(tmp_path / "aerial", sizes=((60, 90), (80, 60)))
    original = (root / "classes.json").read_bytes()
    page.goto(f"{app_url}/?dataset={root}")
    wait_for_app(page)
    assert_no_exception(page)
    alerts = page.locator("[data-testid=stMain] [data-testid=stAlert]")
    expect(alerts.first).to_contain_text("6 colours in the masks are not in classes.json", timeout=30_000)
    expect(alerts.first).to_contain_text("magenta")
    shot(page, "home-class-file-wrong-colours")
    with page.expect_download() as download:
        page.get_by_role("button", name="Download the class file").click()
    doc = json.loads(Path(download.value.path()).read_text())
    assert [(c["title"], c["color"]) for c in doc["classes"]] == list(zip(
        [name for name, _ in FILE_CLASSES], MASK_COLOURS.values(), strict=True))  # names by order
    page.get_by_role("button", name="Save as classes.json beside the data").click()
    expect(page.get_by_text("the original is kept as")).to_be_visible(timeout=30_000)
    wait_for_app(page)
    assert_no_exception(page)
    expect(page.get_by_text("not in classes.json")).to_have_count(0)
    assert (root / "classes.orig.json").read_bytes() == original
    shot(page, "home-class-file-fixed")
