"""Browser: build a pipeline, preview it, save it, reload the page, load it again."""
from __future__ import annotations

import json

import pytest

from .conftest import assert_no_exception, shot, wait_for_app

pytestmark = pytest.mark.e2e


def _pick(pg, label: str, option: str) -> None:
    box = pg.locator("[data-testid=stSelectbox]").filter(has_text=label)
    box.click()
    pg.keyboard.type(option)
    pg.get_by_role("option", name=option).first.click()
    wait_for_app(pg)


def _open_augment(pg, app_url) -> None:
    pg.goto(app_url)
    wait_for_app(pg)
    pg.get_by_role("link", name="Augment").click()
    wait_for_app(pg)
    pg.get_by_text("Pipeline", exact=True).wait_for()
    _images(pg).nth(8 * 5 - 1).wait_for(timeout=60_000)


def _images(pg):
    """The preview cells (8 images x (original + 4 draws) by default)."""
    return pg.locator("[data-testid=stTabPanel] [data-testid=stImage] img, [role=tabpanel] img")


def test_build_preview_save_reload_load(page, app_url, app_data_dir):
    pg = page
    _open_augment(pg, app_url)
    assert _images(pg).count() >= 8 * 5  # the default pipeline is previewed at once
    shot(pg, "augment_1_default")

    _pick(pg, "Add a transform", "VerticalFlip")
    pg.get_by_role("button", name="Add to the pipeline").click()
    wait_for_app(pg)
    assert pg.get_by_text("4. VerticalFlip").count() == 1
    pg.get_by_role("button", name="Draw again").click()
    wait_for_app(pg)
    shot(pg, "augment_2_added_redrawn")

    name = pg.get_by_label("Save as")
    name.fill("e2e-flow")
    name.press("Enter")
    wait_for_app(pg)
    pg.get_by_role("button", name="Save", exact=True).click()
    wait_for_app(pg)
    assert pg.get_by_text("Saved").count() >= 1
    saved = app_data_dir / "pipelines" / "e2e-flow.json"
    classes = [t["__class_fullname__"] for t in json.loads(saved.read_text())["transform"]["transforms"]]
    assert classes[-1] == "VerticalFlip"
    shot(pg, "augment_3_saved")

    pg.reload()
    wait_for_app(pg)
    _open_augment(pg, app_url)
    assert pg.get_by_text("4. VerticalFlip").count() == 0  # a fresh session starts from the default
    _pick(pg, "Saved pipelines", "e2e-flow")
    pg.get_by_role("button", name="Load", exact=True).click()
    wait_for_app(pg)
    assert pg.get_by_text("4. VerticalFlip").count() == 1
    assert _images(pg).count() >= 8 * 5
    pg.get_by_role("tab", name="Class rebalancing").click()
    wait_for_app(pg)
    assert pg.locator(".js-plotly-plot").count() >= 2
    shot(pg, "augment_4_reloaded_rebalance")
    assert_no_exception(pg)
