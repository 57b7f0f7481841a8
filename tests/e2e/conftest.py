"""Browser tests: a real `streamlit run app.py` on 127.0.0.1 driven by Debian's chromium.

Skipped when /usr/bin/chromium or playwright is missing. Screenshots go to
``tests/e2e/screenshots/`` (gitignored) so a person can look at them.
"""
from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("SEGLIB_CHROMIUM", "/usr/bin/chromium")
SHOTS = Path(__file__).parent / "screenshots"

if not Path(CHROMIUM).exists():
    pytest.skip(f"{CHROMIUM} not installed: browser tests skipped", allow_module_level=True)
playwright_api = pytest.importorskip("playwright.sync_api")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def app_data_dir(tmp_path_factory):
    """The app's data folder, with a small demo already in place so start-up is quick."""
    from seglib.data.demo import write_demo
    d = tmp_path_factory.mktemp("app-data")
    write_demo(d / "demo" / "mars_demo.npz", n=240, seed=0, n_test=30)
    return d


SERVER_PIDS: dict[str, int] = {}   # url -> the streamlit process serving it (tests that measure it)


@contextlib.contextmanager
def running_app(data_dir: Path, env: dict | None = None):
    """``streamlit run app.py`` on a free loopback port; yields its URL, then stops exactly that process.
    ``env``: more environment variables for the server (e.g. HF_HUB_CACHE), over the defaults."""
    port = _free_port()
    env = dict(os.environ, SEGLIB_DATA_DIR=str(data_dir), NO_ALBUMENTATIONS_UPDATE="1", HF_HUB_OFFLINE="1",
               SEGLIB_DATASET_ROOTS=tempfile.gettempdir()) | (env or {})  # tests build datasets in temp folders
    log_path = data_dir / f"streamlit-{port}.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.headless", "true",
             "--server.address", "127.0.0.1", "--server.port", str(port), "--browser.gatherUsageStats", "false",
             "--client.showErrorDetails", "full"],  # an exception must show as one (assert_no_exception)
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            url = f"http://127.0.0.1:{port}"
            deadline = time.time() + 60
            while True:
                try:
                    urllib.request.urlopen(url + "/_stcore/health", timeout=2)
                    break
                except OSError:
                    if proc.poll() is not None:
                        raise RuntimeError(f"streamlit exited: {log_path.read_text()}") from None
                    if time.time() > deadline:
                        raise RuntimeError("streamlit did not start within 60 s") from None
                    time.sleep(0.5)
            SERVER_PIDS[url] = proc.pid
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


@pytest.fixture(scope="module")
def app_url(app_data_dir):
    """One app server for the tests of a module."""
    with running_app(app_data_dir) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--no-first-run", "--disable-sync"])
        yield b
        b.close()


@contextlib.contextmanager
def _window(browser, height: int):
    ctx = browser.new_context(viewport={"width": 1400, "height": height})
    try:
        yield ctx.new_page()
    finally:
        ctx.close()


@pytest.fixture
def page(browser):
    with _window(browser, 1000) as pg:
        yield pg


@pytest.fixture
def tall_page(browser):
    """A tall window: Streamlit scrolls inside its own container, so a screenshot shows the viewport."""
    with _window(browser, 1900) as pg:
        yield pg


@contextlib.contextmanager
def app_with_runs(tmp_path_factory, demo_npz, trained_runs, name: str):
    """The app on a copy of the tiny runs' demo (conftest's ``trained_runs``), with the runs'
    folder as its checkpoints; yields (url, data folder)."""
    import shutil
    data = tmp_path_factory.mktemp(name)
    (data / "demo").mkdir()
    shutil.copy(demo_npz, data / "demo" / "mars_demo.npz")
    old = os.environ.get("SEGLIB_CHECKPOINTS")
    os.environ["SEGLIB_CHECKPOINTS"] = str(trained_runs["unet"].parent)  # running_app passes it on
    try:
        with running_app(data) as url:
            yield url, data
    finally:
        if old is None:
            os.environ.pop("SEGLIB_CHECKPOINTS", None)
        else:
            os.environ["SEGLIB_CHECKPOINTS"] = old


def wait_for_app(pg, timeout: float = 60_000) -> None:
    """Wait until the script run finished: no 'Running…' status widget and no spinner."""
    pg.wait_for_selector("[data-testid=stApp]", timeout=timeout)
    # The first script run has produced something in the main area...
    pg.wait_for_selector("[data-testid=stMain] [data-testid=stElementContainer]", timeout=timeout)
    pg.wait_for_timeout(200)
    # ...and no run is in progress.
    pg.wait_for_function(
        "() => !document.querySelector('[data-testid=stStatusWidget]') && "
        "!document.querySelector('[data-testid=stSpinner]') && "
        "!document.querySelector('[data-stale=true]')", timeout=timeout)
    pg.wait_for_timeout(500)  # images and charts load after the elements


def shot(pg, name: str) -> Path:
    SHOTS.mkdir(exist_ok=True)
    path = SHOTS / f"{name}.png"
    pg.screenshot(path=str(path), full_page=True)
    return path


def assert_no_exception(pg) -> None:
    errors = pg.locator("[data-testid=stException]")
    assert errors.count() == 0, errors.first.inner_text()


def open_label(pg, url: str, query: str) -> None:
    """Open the Label page at ``label?QUERY`` and wait for its canvas and the canvas's picture."""
    pg.goto(f"{url}/label?{query}")
    pg.wait_for_selector("h1", timeout=120_000)
    wait_for_app(pg)
    pg.locator(".dc-container").first.wait_for(timeout=60_000)   # inside the component's shadow root
    pg.wait_for_timeout(800)                                      # the background image loads after the element


def press_key_and_wait_chosen(pg, key: str, button_key: str) -> None:
    """Press a keyboard shortcut and wait until the button keyed ``button_key`` shows chosen (primary)
    and the rerun is over: a stroke started while the rerun is on its way can lose its beginning
    when the canvas takes the new colour mid-drag."""
    pg.keyboard.press(key)
    pg.locator(f".st-key-{button_key} button[kind=primary]").first.wait_for(timeout=60_000)
    wait_for_app(pg)


def stored_versions(data_dir: Path, ds, image_id: str):
    """(the image's saved versions, the newest version's mask) as the app's review store holds them."""
    from seglib.review import ReviewStore
    from seglib.review import corrections as corr

    store = ReviewStore(f"sqlite:///{data_dir / 'review.db'}")
    try:
        versions = corr.versions(ds, image_id, store)
        mask = corr.version_mask(ds, image_id, versions[-1].number, store) if versions else None
        return versions, mask
    finally:
        store.close()
