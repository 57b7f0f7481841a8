"""Browser test of the Compare page: a U-Net and a SegFormer (the tiny ``trained_runs``) on their
demo; compare them with their mean ensemble, step through images, order by "where A beats B" and
open the top image from the table, click a confusion-matrix cell and open one of its images."""
from __future__ import annotations

import os
import re

import pytest

from .conftest import app_with_runs, assert_no_exception, shot, wait_for_app

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def compare_app(tmp_path_factory, demo_npz, trained_runs):
    """The app on a copy of the tiny runs' demo, with the runs' folder as its checkpoints."""
    with app_with_runs(tmp_path_factory, demo_npz, trained_runs, "compare-app") as served:
        yield served


def _section(pg, name: str) -> None:
    pg.locator("[data-testid=stButtonGroup] button").filter(has_text=re.compile(f"^{name}$")).first.click()
    wait_for_app(pg)


def _position(pg) -> str:
    """The "ID · n / N" line above the images."""
    return pg.locator("[data-testid=stMarkdownContainer] div").filter(has_text=re.compile(r" · \d+ / \d+")).first \
        .inner_text()


def _expected_order(data, trained_runs, a: str, b: str) -> list[str]:
    """What the page should rank first: the library's own answer (the page shares its disk cache)."""
    from seglib.data import open_dataset
    from seglib.predict import Comparison, dataset_layout, open_members, predict, shared_val_ids

    old = os.environ.get("SEGLIB_DATA_DIR")
    os.environ["SEGLIB_DATA_DIR"] = str(data)
    try:
        ds = open_dataset(data / "demo" / "mars_demo.npz")
        members, _ = open_members([trained_runs["segformer"], trained_runs["unet"]], dataset_layout(ds))
        cmp = Comparison(predict(ds, members, [], shared_val_ids(members, ds), device="cpu"))
        return list(cmp.beats(a, b).index)
    finally:
        os.environ["SEGLIB_DATA_DIR"] = old or ""


def _click_cell(pg, chart: int, row: int, col: int) -> None:
    """Click the centre of a confusion-matrix cell (row = true, col = predicted) of the chart-th plot."""
    xy = pg.evaluate("""([k, i, j]) => {
        const gd = document.querySelectorAll('.js-plotly-plot')[k];
        const box = gd.getBoundingClientRect(), L = gd._fullLayout;
        return [box.left + L.xaxis._offset + L.xaxis.d2p(j), box.top + L.yaxis._offset + L.yaxis.d2p(i)];
    }""", [chart, row, col])
    pg.mouse.move(*xy)
    pg.wait_for_timeout(300)
    pg.mouse.click(*xy)


def test_compare_flow(compare_app, tall_page, trained_runs):
    url, data = compare_app
    pg = tall_page
    pg.goto(url + "/")
    pg.wait_for_selector("h1", timeout=120_000)
    wait_for_app(pg)
    pg.get_by_role("link", name="Compare").click()
    pg.get_by_role("button", name="Compare").wait_for(timeout=60_000)
    wait_for_app(pg)
    assert_no_exception(pg)
    pg.get_by_role("button", name="Compare").click()
    pg.get_by_text("mIoU · mean ensemble").wait_for(timeout=300_000)
    wait_for_app(pg)
    assert_no_exception(pg)
    assert pg.get_by_role("button", name="Cancel").count() == 0   # the finished pass's bar and button are gone
    # The ensemble is a column: its metric, its overlay.
    assert pg.locator("[data-testid=stMarkdownContainer] strong", has_text="mean ensemble").count() >= 1
    shot(pg, "compare-1-images")

    # Step through the images.
    first = _position(pg)
    assert " · 1 / 29" in first
    pg.get_by_role("button", name="Next ▶").click()
    pg.get_by_text(re.compile(r" · 2 / 29")).wait_for(timeout=60_000)
    wait_for_app(pg)
    pg.get_by_role("button", name="Next ▶").click()
    pg.get_by_text(re.compile(r" · 3 / 29")).wait_for(timeout=60_000)
    wait_for_app(pg)
    pg.get_by_role("button", name="◀ Previous").click()
    pg.get_by_text(re.compile(r" · 2 / 29")).wait_for(timeout=60_000)
    wait_for_app(pg)

    # The per-image table ordered by where A beats B; a click on its first row opens that image.
    _section(pg, "Per image")
    pg.get_by_role("combobox", name="Order").click()
    pg.get_by_role("option", name="Where A beats B the most").click()
    wait_for_app(pg)
    assert_no_exception(pg)
    shot(pg, "compare-2-where-a-beats-b")
    a = pg.get_by_role("combobox", name="A", exact=True).input_value()
    b = pg.get_by_role("combobox", name="B", exact=True).input_value()
    top = _expected_order(data, trained_runs, a, b)[0]
    grid = pg.locator("[data-testid=stDataFrame]").first.bounding_box()
    pg.mouse.click(grid["x"] + 12, grid["y"] + 35 + 17)   # the first row's selection cell
    pg.get_by_text(re.compile(rf"^{top} · 1 / 29")).wait_for(timeout=60_000)
    wait_for_app(pg)
    assert "Where A beats B the most" in _position(pg)

    # A confusion-matrix cell lists the images where that confusion happens most.
    _section(pg, "Confusion")
    pg.wait_for_selector(".js-plotly-plot", timeout=60_000)
    wait_for_app(pg)
    heading = re.compile(r"true \w[\w ]* predicted as \w")
    for attempt in range(3):  # a click that lands while the chart still lays itself out is lost
        _click_cell(pg, 0, 3, 1)   # true sand, predicted soil
        try:
            pg.get_by_text(heading).wait_for(timeout=20_000)
            break
        except Exception:
            if attempt == 2:
                raise
            wait_for_app(pg)
    wait_for_app(pg)
    assert_no_exception(pg)
    shot(pg, "compare-3-confusion-cell")
    pg.get_by_role("button", name=re.compile(r"px \(\d+% of its")).first.click()
    pg.get_by_text(re.compile(r" · \d+ / 29")).wait_for(timeout=60_000)
    wait_for_app(pg)
    assert_no_exception(pg)

    _section(pg, "Dataset")
    pg.get_by_text("IoU per class").wait_for(timeout=60_000)
    wait_for_app(pg)
    shot(pg, "compare-4-dataset")


def test_a_slow_comparison_shows_progress_and_cancels(compare_app, tall_page):
    """All 340 images with flips (4 passes of each model): the bar counts images and the time left,
    and Cancel stops the pass and goes back to the picker."""
    url, _ = compare_app
    pg = tall_page
    pg.goto(url + "/compare")
    pg.get_by_role("button", name="Compare").wait_for(timeout=120_000)
    wait_for_app(pg)
    pg.get_by_role("combobox", name="Images").click()
    pg.get_by_role("option", name="All images").click()
    wait_for_app(pg)
    pg.get_by_text("Test-time flips").click()
    wait_for_app(pg)
    pg.get_by_role("button", name="Compare", exact=True).click()
    progress = pg.get_by_text(re.compile(r"Predicting with 2 models: [\d,]+ / 340 images"))
    progress.wait_for(timeout=120_000)
    pg.get_by_text(re.compile(r"about \d+ (s|min)")).first.wait_for(timeout=60_000)   # the time left
    shot(pg, "compare-5-progress")
    pg.get_by_role("button", name="Cancel").click()
    pg.get_by_text("Comparison cancelled").wait_for(timeout=60_000)
    wait_for_app(pg)
    assert_no_exception(pg)
    assert pg.get_by_text("mIoU · mean ensemble").count() == 0
