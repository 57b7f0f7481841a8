"""Every page opens on its own URL as the first request of a fresh server, with the app around it.

A ``pages/`` folder beside ``app.py`` makes Streamlit (1.36 to at least 1.67) run a page's file
alone, without ``app.py``, when a fresh server's first request is that page's URL (see
``ui.nav.require_entry``). Each case therefore starts its own server and opens the page first.
"""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from .conftest import ROOT, assert_no_exception, running_app, wait_for_app

pytestmark = pytest.mark.e2e


def _pages() -> list[tuple[str, str]]:
    """(url path, expected start of the page's title) for every file in pages/ (home: "")."""
    files = sorted(ROOT.joinpath("pages").glob("*.py"), key=lambda p: int(p.stem.split("_")[0]))
    assert files, "no pages found"
    out = []
    for i, f in enumerate(files):
        key = f.stem.split("_", 1)[-1]
        # Home's title is the dataset's name; every other page's title starts with its own name.
        out.append(("" if i == 0 else key, "mars_demo" if i == 0 else key.replace("_", " ").capitalize()))
    return out


@pytest.mark.parametrize(("path", "title"), _pages(), ids=lambda v: v or "home")
def test_page_opens_by_its_url_with_the_sidebar(browser, app_data_dir, path, title):
    with running_app(app_data_dir) as url:
        ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
        page = ctx.new_page()
        try:
            page.goto(f"{url}/{path}")
            wait_for_app(page)
            assert_no_exception(page)
            sidebar = page.locator("[data-testid=stSidebar]")
            expect(sidebar.get_by_text("Demo (Mars terrain)")).to_be_visible(timeout=30_000)  # the dataset picker
            # app.py's navigation, not the old mode's (which lists the entry script as a page named "app")
            expect(sidebar.get_by_role("link", name="Dataset", exact=True)).to_be_visible()
            expect(sidebar.get_by_role("link", name="app", exact=True)).to_have_count(0)
            expect(page.locator("[data-testid=stMain] h1").first).to_have_text(re.compile(f"^{re.escape(title)}"),
                                                                              timeout=30_000)
            # the page stays on its own path (a page may add its own query, e.g. the Label page's ?image=)
            assert page.url.split("?")[0].rstrip("/") == f"{url}/{path}".rstrip("/")
        finally:
            ctx.close()
