"""Browser test of the Review page: click points on the map, flag them, reload, find them again."""
from __future__ import annotations

import re

import pytest

from .conftest import assert_no_exception, shot, wait_for_app

pytestmark = pytest.mark.e2e


def _open_review(pg, url: str) -> None:
    pg.goto(url)
    pg.wait_for_selector("h1", timeout=120_000)
    wait_for_app(pg)
    pg.get_by_role("link", name="Review").click()
    pg.wait_for_selector(".scatterlayer .point", timeout=120_000)
    wait_for_app(pg)


def _metric(pg, label: str) -> int:
    box = pg.locator("[data-testid=stMetric]").filter(has_text=label).first
    return int(box.locator("[data-testid=stMetricValue]").inner_text().replace(",", ""))


def _point_centres(pg) -> list[tuple[float, float]]:
    """Centres of the map's points that lie inside the window (a click below the fold is lost)."""
    pg.locator(".js-plotly-plot").first.scroll_into_view_if_needed()
    return pg.evaluate("() => Array.from(document.querySelectorAll('.scatterlayer .point')).map(e => {"
                       "const r = e.getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; })"
                       ".filter(([x, y]) => x > 0 && y > 0 && x < innerWidth && y < innerHeight)")


def _click_point(pg, xy, shift: bool = False) -> None:
    # Plotly's drag layer lies over the points: click at the point's pixel, as a person does.
    pg.mouse.move(*xy)
    pg.wait_for_timeout(150)
    if shift:
        pg.keyboard.down("Shift")
    pg.mouse.click(*xy)
    if shift:
        pg.keyboard.up("Shift")


def _isolated(centres, k: int) -> list[tuple[float, float]]:
    """k points far from their neighbours (a click must hit exactly one of them)."""
    def gap(i):
        x, y = centres[i]
        return min((x - a) ** 2 + (y - b) ** 2 for j, (a, b) in enumerate(centres) if j != i)
    order = sorted(range(len(centres)), key=gap, reverse=True)
    return [centres[i] for i in order[:k]]


def _select(pg, nth: int, expect: str, shift: bool = False) -> None:
    """Click the nth most isolated point until the page says ``expect``: on a loaded machine
    the chart may still be laying itself out when the first click lands."""
    for attempt in range(4):
        pg.wait_for_timeout(1000)  # let the chart settle after the last rerun
        _click_point(pg, _isolated(_point_centres(pg), 2)[nth], shift=shift)
        try:
            pg.get_by_text(expect, exact=True).wait_for(timeout=20_000)
            return
        except Exception:
            if attempt == 3:
                raise
            wait_for_app(pg)


def test_flag_points_survive_reload(app_url, page):
    pg = page
    _open_review(pg, app_url + "/")
    assert_no_exception(pg)
    flagged0 = _metric(pg, "Flagged")
    _select(pg, 0, "1 selected")
    wait_for_app(pg)
    _select(pg, 1, "2 selected", shift=True)
    wait_for_app(pg)
    shot(pg, "review-1-selected")
    pg.get_by_label("Reason").fill("odd ones out on the map")
    pg.get_by_role("button", name=re.compile(r"Flag 2 selected")).click()
    pg.get_by_text("Nothing selected yet.").wait_for(timeout=60_000)
    wait_for_app(pg)
    assert _metric(pg, "Flagged") == flagged0 + 2
    shot(pg, "review-2-flagged")

    pg.reload()
    pg.wait_for_selector("h1", timeout=120_000)
    wait_for_app(pg)
    assert _metric(pg, "Flagged") == flagged0 + 2
    pg.locator("[data-testid=stButtonGroup] button").filter(has_text="Queue").click()
    pg.get_by_text(re.compile(r"1 / \d+")).wait_for(timeout=60_000)
    wait_for_app(pg)
    assert_no_exception(pg)
    assert pg.get_by_text("odd ones out on the map").count() >= 1
    shot(pg, "review-3-queue-after-reload")

    # A decision in the queue moves the image out of "flagged" at once.
    pg.get_by_role("button", name="Exclude").click()
    wait_for_app(pg)
    pg.wait_for_timeout(500)
    assert _metric(pg, "Exclude") >= 1
    assert _metric(pg, "Flagged") == flagged0 + 1
    shot(pg, "review-4-excluded")
    assert_no_exception(pg)
