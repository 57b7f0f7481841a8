"""A link to a path outside the dataset roots (``/?dataset=/etc``) shows the refusal and opens nothing."""
from __future__ import annotations

import pytest
from playwright.sync_api import expect

from .conftest import assert_no_exception, shot, wait_for_app

pytestmark = pytest.mark.e2e


def test_dataset_url_outside_the_roots_is_refused(page, app_url):
    page.goto(app_url + "/?dataset=/etc")
    wait_for_app(page)
    assert_no_exception(page)
    refusal = page.get_by_text("/etc is outside the dataset roots")
    expect(refusal.first).to_be_visible(timeout=30_000)
    assert "SEGLIB_DATASET_ROOTS" in refusal.first.inner_text()
    shot(page, "roots-refused")
    # Nothing opened: no dataset title, no summary, no dataset line in the sidebar.
    expect(page.get_by_role("heading", level=1)).to_have_count(0)
    expect(page.get_by_test_id("stMetric")).to_have_count(0)
    expect(page.get_by_text("images ·")).to_have_count(0)
