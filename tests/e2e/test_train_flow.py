"""Browser: start a short training on the demo, watch its curve grow, queue a second one and
cancel it, reload the page and find the finished run with its curves.

Screenshots: tests/e2e/screenshots/train-*.png (copied to docs/screenshots/ for the README)."""
from __future__ import annotations

import json
import re
import time

import pytest
from playwright.sync_api import expect

from .conftest import assert_no_exception, running_app, shot, wait_for_app

pytestmark = pytest.mark.e2e
TRAINING_S = 300  # a few tiny epochs; generous for a CPU shared with other test runs


@pytest.fixture(scope="module")
def train_app(app_data_dir, tmp_path_factory):
    """An app server whose runs go to a temporary checkpoints folder."""
    checkpoints = tmp_path_factory.mktemp("checkpoints")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SEGLIB_CHECKPOINTS", str(checkpoints))  # running_app passes os.environ on
        with running_app(app_data_dir) as url:
            yield url, checkpoints


def _number(pg, label: str, value: int) -> None:
    box = pg.get_by_role("spinbutton", name=label, exact=True)
    box.fill(str(value))
    box.press("Enter")
    wait_for_app(pg)


def _open_train(pg, url: str) -> None:
    pg.goto(url)
    wait_for_app(pg)
    pg.get_by_role("link", name="Train").click()
    pg.get_by_text("New run", exact=True).wait_for(timeout=60_000)
    wait_for_app(pg)


def _job_row(pg, name: str):
    return pg.locator("[class*=st-key-train_job_]").filter(has_text=name)


def _loss_points(pg) -> int:
    """Markers in the live loss chart (the first chart of the Jobs column)."""
    return pg.evaluate("() => { const c = document.querySelector('.js-plotly-plot');"
                       " return c ? c.querySelectorAll('.scatterlayer .point').length : 0; }")


def _wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.time() + timeout
    while not predicate():
        if time.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.5)


def test_train_queue_cancel_reload(page, train_app):
    url, checkpoints = train_app
    pg = page
    pg.set_viewport_size({"width": 1500, "height": 2300})  # the form, the jobs and the runs in one shot
    _open_train(pg, url)
    pg.get_by_role("button", name="Quick preset").click()
    wait_for_app(pg)
    _number(pg, "Epochs", 6)   # long enough that the second job is still queued when it is cancelled
    _number(pg, "Steps per epoch (0 = all)", 6)
    _number(pg, "Batch size", 8)
    pg.get_by_role("textbox", name="Run name (optional)").fill("e2e-first")
    pg.get_by_role("textbox", name="Run name (optional)").press("Enter")
    wait_for_app(pg)
    pg.get_by_role("button", name="Start training").click()
    expect(pg.get_by_text("Started e2e-first.")).to_be_visible(timeout=30_000)

    # The fragment refreshes the curves on its own: no click needed to see them grow.
    _wait_for(lambda: _loss_points(pg) >= 2, TRAINING_S, "the first epoch on the loss curve")
    first = _loss_points(pg)
    _wait_for(lambda: pg.evaluate("() => { const i = [...document.querySelectorAll('[data-testid=stImage] img')];"
                                  " return i.length > 0 && i.every(e => e.complete && e.naturalWidth > 0); }"),
              60, "the validation strip")
    shot(pg, "train-1-training")
    _wait_for(lambda: _loss_points(pg) > first, TRAINING_S, "the loss curve to grow")

    # A second job queues behind the first; cancel it from the queue.
    _number(pg, "Epochs", 50)
    pg.get_by_role("textbox", name="Run name (optional)").fill("e2e-second")
    pg.get_by_role("textbox", name="Run name (optional)").press("Enter")
    wait_for_app(pg)
    if pg.get_by_role("button", name="Queue training").count():  # the first may have finished meanwhile
        pg.get_by_role("button", name="Queue training").click()
        expect(pg.get_by_text(re.compile("Queued e2e-second"))).to_be_visible(timeout=30_000)
        expect(pg.get_by_text("waiting: #1 in the queue")).to_be_visible(timeout=30_000)
        shot(pg, "train-2-queued")
        _job_row(pg, "e2e-second").get_by_role("button", name=re.compile("Cancel")).click()
        expect(pg.get_by_text("cancelled before it started")).to_be_visible(timeout=30_000)
        assert not (checkpoints / "e2e-second").exists()
    else:
        pytest.fail("the first job finished before the second could queue; make it longer")

    _wait_for(lambda: json.loads((checkpoints / "e2e-first" / "status.json").read_text())["status"] == "done",
              TRAINING_S, "the first run to finish")

    pg.reload()
    wait_for_app(pg)
    pg.get_by_text("New run", exact=True).wait_for(timeout=60_000)
    wait_for_app(pg)
    grid = pg.locator("[data-testid=stDataFrame]").first
    expect(grid).to_be_visible(timeout=30_000)
    runs = pg.get_by_text(re.compile(r"^Runs · \d+$"))
    expect(runs).to_have_text("Runs · 1")
    # The overlay shows the finished run's curves: one marker per epoch.
    overlay = pg.locator(".js-plotly-plot").filter(has_text="mIoU").last
    expect(overlay).to_be_visible(timeout=30_000)
    assert overlay.locator(".scatterlayer .point").count() == 6
    expect(pg.get_by_text("e2e-first").first).to_be_visible()
    pg.set_viewport_size({"width": 1500, "height": 3000})  # down to the overlaid curves
    wait_for_app(pg)
    shot(pg, "train-3-after-reload")
    assert_no_exception(pg)
