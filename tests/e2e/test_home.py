"""A new user opens the app: the demo appears, then they switch to a folder by path."""
from __future__ import annotations

import numpy as np
import pytest
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
