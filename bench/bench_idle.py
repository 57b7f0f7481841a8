"""CPU an idle app server uses, with the app's settings against Streamlit's default file watcher.

    .venv/bin/python bench/bench_idle.py [--idle 60]

Starts `streamlit run app.py` twice on a free loopback port, from this checkout (whose .venv holds
thousands of folders): once as ./run.sh starts it (.streamlit/config.toml: no file watcher), and
once with ``--server.fileWatcherType auto`` (watchdog, Streamlit's default when it is installed).
Each time it opens Home in headless Chromium (as a person would leave a tab open), waits until the
page has drawn, then measures the server's CPU seconds (user + system, from /proc) over ``--idle``
seconds. Prints CPU-seconds per idle minute, the share of one core, the time Home took to draw,
and the ratio of the two servers.
"""
from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("SEGLIB_CHROMIUM", "/usr/bin/chromium")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process and its threads."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def measure(extra: list[str], idle: float, data_dir: Path, browser) -> dict:
    port = free_port()
    env = dict(os.environ, SEGLIB_DATA_DIR=str(data_dir), NO_ALBUMENTATIONS_UPDATE="1", HF_HUB_OFFLINE="1")
    log = open(data_dir / f"streamlit-{port}.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.headless",
                             "true", "--server.address", "127.0.0.1", "--server.port", str(port), *extra],
                            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(120):
            try:
                urllib.request.urlopen(url + "/_stcore/health", timeout=2)
                break
            except OSError:
                time.sleep(0.5)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        t0 = time.perf_counter()
        page.goto(url)
        page.wait_for_selector("h1", timeout=120_000)
        page.wait_for_function("() => !document.querySelector('[data-testid=stStatusWidget]')", timeout=120_000)
        home_s = time.perf_counter() - t0
        time.sleep(3)  # let the first run's after-work settle
        c0, w0 = cpu_seconds(proc.pid), time.perf_counter()
        time.sleep(idle)
        used, wall = cpu_seconds(proc.pid) - c0, time.perf_counter() - w0
        page.close()
        overflows = (data_dir / f"streamlit-{port}.log").read_text().count("queue overflow")
        return {"cpu_per_min": used / wall * 60, "core_share": used / wall, "home_s": home_s, "overflows": overflows}
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--idle", type=float, default=60.0, help="seconds of idle measured per server")
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    from seglib.data.demo import write_demo

    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as p:
        data_dir = Path(tmp)
        write_demo(data_dir / "demo" / "mars_demo.npz")   # the default demo, made before the clocks start
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--no-first-run", "--disable-sync"])
        app = measure([], args.idle, data_dir, browser)
        watched = measure(["--server.fileWatcherType", "auto"], args.idle, data_dir, browser)
        browser.close()
    for name, r in (("app settings (no watcher)", app), ("Streamlit's watchdog watcher", watched)):
        print(f"{name:30s} {r['cpu_per_min']:6.2f} CPU-s per idle minute ({r['core_share']:6.1%} of a core); "
              f"Home drawn in {r['home_s']:.1f} s; inotify overflow lines {r['overflows']}")
    print(f"ratio app / watchdog: CPU {app['cpu_per_min'] / max(watched['cpu_per_min'], 1e-9):.3f}, "
          f"Home {app['home_s'] / watched['home_s']:.2f}")


if __name__ == "__main__":
    main()
