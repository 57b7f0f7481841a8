"""Benchmark: one stroke in the Label page's mask editor on a 2000x1800 RGB photo, at "fit" and 1:1.

Three measurements, each against a baseline measured in the same process:

  library  what a stroke costs the editor's library, median of --repeat strokes:
           after   = seglib.edit.session.apply_drawing (the stroke's box rasterised and kept as the
                     undo step) + CanvasPicture.follow (the box redrawn) + data_url (JPEG);
           before  = the pipeline the editor had: the stroke rasterised over the whole mask, the
                     whole-mask diff for the undo step, the whole composite drawn and written as an
                     RGBA PNG data URL (what st_canvas does with a PIL image);
           baseline: the bare rasterisation of the stroke (raster.object_region). Prints ms and
           the ratios after / baseline and before / after.
  page     the Label page under streamlit's AppTest (a child process, so --app-root can point at
           another checkout, e.g. the commit before this one exported with `git archive`): a rerun
           after one stroke (applied to the working mask as the canvas callback does) vs a rerun
           with no stroke. AppTest reruns the whole page; in the browser a stroke reruns only the
           editor's fragment.
  browser  (--browser) the real thing: `streamlit run` on 127.0.0.1 and Debian's chromium; mouse
           down / move / up on the canvas, then the time until the canvas's background shows the
           painted pixels ("drawn") and until every rerun the stroke caused has finished
           ("quiet", from the websocket's script-finished messages); baseline: the shortcut of
           the class already chosen (one rerun that changes nothing) to its rerun's end.

    .venv/bin/python bench/bench_editor.py [--repeat 5] [--only library,page] [--browser] [--verbose]
                                           [--size 2000x1800] [--app-root DIR]

Before / after in the browser: export the previous commit (``git archive HEAD | tar -x -C /tmp/old``)
and run the same bench with ``--app-root /tmp/old --size 2061x1817`` (there the old "2x" zoom was 1:1).
"""
from __future__ import annotations

import argparse
import base64
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
W, H = 2000, 1800
CLASSES = ["background", "road", "building", "tree"]


# --- the photo ---------------------------------------------------------------------------------
def make_dataset(root: Path) -> Path:
    """A folder with one smooth, textured 2000x1800 JPEG photo and its index mask: background on
    the left half (where the strokes go), road, building and tree blobs on the right."""
    import cv2
    from PIL import Image

    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(parents=True, exist_ok=True)
    (root / "classes.json").write_text(json.dumps([{"id": i, "name": n} for i, n in enumerate(CLASSES)]))
    field = cv2.resize(rng.uniform(0, 1, (6, 7)).astype(np.float32), (W, H), interpolation=cv2.INTER_CUBIC)
    mask = np.digitize(field, np.quantile(field, [0.4, 0.7, 0.9])).astype(np.uint8)
    mask[:, : W // 2] = 0
    palette = rng.uniform(20, 235, (4, 3)).astype(np.float32)
    img = palette[mask] * (0.8 + 0.4 * field[..., None])
    img += cv2.resize(rng.normal(0, 12, (H // 4, W // 4, 3)).astype(np.float32), (W, H))
    Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(root / "images" / "tile.jpg", quality=90)
    Image.fromarray(mask).save(root / "masks" / "tile.png")
    return root


def stroke_object(k: int, scale: tuple[float, float], radius: float) -> dict:
    """The k-th stroke as the canvas sends it (a Fabric freedraw path in canvas pixels): a
    300-image-pixel diagonal in the left half, each stroke lower than the one before."""
    from seglib.edit import raster

    pts = [((100 + 5 * j) * scale[0], (100 + 40 * k + 3 * j) * scale[1]) for j in range(60)]
    path = [["M", *pts[0]]] + [["L", *p] for p in pts[1:]]
    sw = 2 * radius * (scale[0] * scale[1]) ** 0.5   # the canvas brush width for that radius
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    off = raster.path_offset(path)
    w, h = max(xs) - min(xs), max(ys) - min(ys)
    return {"type": "Path", "path": path, "strokeWidth": sw, "originX": "left", "originY": "top",
            "left": off[0] - w / 2 - sw / 2, "top": off[1] - h / 2 - sw / 2, "width": w, "height": h}


def _ms(times: list[float]) -> float:
    return round(1000 * statistics.median(times), 2)


# --- library -------------------------------------------------------------------------------------
def _before(image, work, obj, class_id, cmap, size, scale) -> str:
    """One stroke the way the editor did it before: the whole mask rasterised, diffed, copied,
    the whole composite drawn and written as an RGBA PNG data URL."""
    from PIL import Image

    from seglib.edit import raster
    from seglib.edit.canvas_picture import canvas_picture

    mask = work.mask
    where = np.zeros(mask.shape, bool)
    found = raster.object_region(obj, mask, scale)
    if found is not None:  # the old stroke_pixels filled a whole-mask boolean, segment by segment
        where[found[0].slices] = found[1]
    new = mask.copy()
    new[where] = class_id
    index = np.flatnonzero(new != mask)
    _ = (index, mask.ravel()[index].copy(), new.ravel()[index].copy(), int(np.count_nonzero(new != mask)))
    bg = canvas_picture(image, new, cmap, size, 0.5, False)
    buf = io.BytesIO()
    Image.fromarray(bg).convert("RGBA").save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def library(data: Path, repeat: int) -> dict:
    from seglib.data import open_dataset
    from seglib.edit import raster
    from seglib.edit.canvas_picture import CanvasPicture
    from seglib.edit.session import apply_drawing, start_work
    from ui.editor import canvas_size, default_radius

    ds = open_dataset(data)
    image = ds.image("tile")
    out = {}
    for name, zoom in (("fit", 0), ("1:1", 1)):
        work = start_work(ds, "tile")
        size = canvas_size(H, W, zoom)
        scale = raster.canvas_scale((H, W), size)
        radius = default_radius((scale[0] * scale[1]) ** 0.5)
        pic = CanvasPicture(image, ds.class_map, size, 0.5, False)
        pic.follow(work)
        pic.data_url()
        bare, after, before = [], [], []
        for k in range(repeat):
            obj = stroke_object(k, scale, radius)
            t = time.perf_counter()
            raster.object_region(obj, work.mask, scale)
            bare.append(time.perf_counter() - t)
            t = time.perf_counter()
            _before(image, work, obj, 1, ds.class_map, size, scale)
            before.append(time.perf_counter() - t)
            t = time.perf_counter()
            apply_drawing(work, [obj], "brush", 1, scale)
            pic.follow(work)
            pic.data_url()
            after.append(time.perf_counter() - t)
        out[name] = {"canvas": f"{size[0]}x{size[1]}", "radius_px": radius, "baseline_raster_ms": _ms(bare),
                     "after_ms": _ms(after), "before_ms": _ms(before),
                     "after_over_baseline": round(statistics.median(after) / statistics.median(bare), 1),
                     "before_over_after": round(statistics.median(before) / statistics.median(after), 1)}
    return out


# --- the page under AppTest (child process) ------------------------------------------------------
def _page_child(data: str, repeat: int, size: tuple[int, int]) -> dict:
    from streamlit.testing.v1 import AppTest

    global W, H
    W, H = size

    from seglib.edit import raster
    from ui import editor as ed

    out = {}
    for name, zoom_value in (("fit", 0), ("1:1", 1 if 1 in ed.ZOOMS else 2)):  # 2x was 1x on 2000 px before
        at = AppTest.from_file(str(Path.cwd() / "app.py"), default_timeout=600)   # the child runs in --app-root
        at.session_state["dataset_path"] = data
        at.run()
        at.query_params["image"] = "tile"
        at.session_state[ed.ZOOM] = zoom_value
        at.session_state[ed.ZOOM + getattr(ed, "KEPT", "")] = zoom_value   # the choice the page remembers
        at = at.switch_page("pages/6_label.py").run()
        if at.exception:
            return {"error": str(at.exception[0].value)[:500]}
        (work,) = [w for (_, i), w in at.session_state[ed.WORKS].items() if i == "tile"]
        size = ed.canvas_size(H, W, zoom_value)
        scale = raster.canvas_scale((H, W), size)
        at.run()
        idle, stroke = [], []
        for k in range(repeat):
            t = time.perf_counter()
            at.run()
            idle.append(time.perf_counter() - t)
            t = time.perf_counter()
            ed.apply_drawing(work, [stroke_object(k, scale, 4 / scale[0])], "brush", 1, scale)
            at.run()
            stroke.append(time.perf_counter() - t)
        if at.exception:
            return {"error": str(at.exception[0].value)[:500]}
        out[name] = {"canvas": f"{size[0]}x{size[1]}", "rerun_no_stroke_ms": _ms(idle), "rerun_stroke_ms": _ms(stroke),
                     "stroke_over_no_stroke": round(statistics.median(stroke) / statistics.median(idle), 2)}
    return out


def page(data: Path, repeat: int, app_root: Path, env: dict) -> dict:
    code = (f"import json, sys; sys.path.insert(0, {str(app_root)!r}); sys.path.insert(1, {str(ROOT / 'bench')!r}); "
            f"import bench_editor as b; print(json.dumps(b._page_child({str(data)!r}, {repeat}, {(W, H)})))")
    res = subprocess.run([sys.executable, "-c", code], cwd=app_root, env=env, capture_output=True, text=True)
    if res.returncode != 0:
        return {"error": res.stderr[-2000:]}
    return json.loads(res.stdout.strip().splitlines()[-1])


# --- the browser ---------------------------------------------------------------------------------
_BACKGROUND_PIXELS = """([x, y]) => {
  const found = [];
  for (const host of document.querySelectorAll('*')) {
    if (host.shadowRoot) found.push(...host.shadowRoot.querySelectorAll('canvas.dc-background-canvas'));
  }
  const c = found[found.length - 1];
  if (!c) return null;
  return Array.from(c.getContext('2d').getImageData(Math.round(x) - 2, Math.round(y) - 2, 5, 5).data);
}"""


def browser(data: Path, repeat: int, app_root: Path, work_dir: Path, verbose: bool = False) -> dict:
    from playwright.sync_api import sync_playwright
    from streamlit.proto.BackMsg_pb2 import BackMsg
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

    sys.path.insert(0, str(app_root))
    from tests.e2e.conftest import CHROMIUM, running_app, wait_for_app

    events: list[tuple[float, str]] = []

    def on_ws(ws):
        def sent(payload):
            msg = BackMsg()
            if isinstance(payload, bytes):
                msg.ParseFromString(payload)
                if msg.WhichOneof("type") == "rerun_script":
                    events.append((time.perf_counter(), "rerun"))

        def received(payload):
            msg = ForwardMsg()
            if isinstance(payload, bytes):
                msg.ParseFromString(payload)
                if msg.WhichOneof("type") == "script_finished":
                    events.append((time.perf_counter(), "finished"))

        ws.on("framesent", sent)
        ws.on("framereceived", received)

    def quiet_after(t0: float, settle: float = 0.4, timeout: float = 60) -> float:
        """When the last rerun started after t0 finished (no rerun pending for ``settle`` s)."""
        end = time.perf_counter() + timeout
        while time.perf_counter() < end:
            pg.wait_for_timeout(20)
            later = [e for e in events if e[0] >= t0]
            reruns = sum(1 for e in later if e[1] == "rerun")
            done = [e[0] for e in later if e[1] == "finished"]
            if reruns and len(done) >= reruns and time.perf_counter() - max(e[0] for e in later) > settle:
                return done[-1]
        raise TimeoutError("the app did not go quiet")

    out: dict = {}
    (work_dir / "app").mkdir(parents=True, exist_ok=True)
    with running_app(work_dir / "app") as url, sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu"])
        pg = b.new_context(viewport={"width": 1400, "height": 1000}).new_page()
        pg.on("websocket", on_ws)
        pg.goto(f"{url}/label?dataset={data}&image=tile")
        pg.wait_for_selector("h1", timeout=120_000)
        wait_for_app(pg)
        pg.locator(".dc-container").first.wait_for(timeout=60_000)
        pg.keyboard.press("2")            # road: the left half is background, every stroke changes pixels
        wait_for_app(pg)
        for name in ("fit", "1:1"):
            if name == "1:1":
                chooser = pg.locator("[data-testid=stSelectbox]").filter(has_text="Canvas zoom").first
                chooser.scroll_into_view_if_needed()   # a click that scrolls first does not open it
                pg.wait_for_timeout(400)
                chooser.click()
                options = pg.get_by_role("option")
                options.first.wait_for()
                labels = options.all_inner_texts()
                pick = (next((t for t in labels if t.startswith("1:1")), None)
                        or next(t for t in labels if t.startswith("2x")))   # the old editor: 2x showed 1:1
                options.filter(has_text=pick).first.click()
                wait_for_app(pg)
                pg.locator("h1").first.scroll_into_view_if_needed()   # back up: the canvas's top in sight
                pg.wait_for_timeout(1500)
            drawn, quiet, click = [], [], []
            for k in range(repeat):
                box = pg.locator(".dc-container").last.bounding_box()
                # at 1:1 below what the strokes at fit painted (the image's top 420 rows), in the window
                start = (box["x"] + 40 + 25 * k, box["y"] + 40 + 30 * k) if name == "fit" else \
                    (box["x"] + 300 + 25 * k, box["y"] + 440 + 20 * k)
                probe = [start[0] - box["x"] + 40, start[1] - box["y"] + 24]   # a point on the stroke, canvas px
                before = pg.evaluate(_BACKGROUND_PIXELS, probe)
                pg.mouse.move(*start)
                pg.mouse.down()
                for j in range(1, 21):
                    pg.mouse.move(start[0] + 4 * j, start[1] + 2.4 * j, steps=1)
                    pg.wait_for_timeout(8)
                t0 = time.perf_counter()
                pg.mouse.up()
                # drawn: the (last) background canvas is loaded (opaque) and differs where the stroke went
                pg.wait_for_function(f"(b) => {{ const now = ({_BACKGROUND_PIXELS})({json.dumps(probe)}); "
                                     "return now && now.every((v, i) => i % 4 !== 3 || v === 255) && "
                                     "JSON.stringify(now) !== JSON.stringify(b); }", arg=before,
                                     timeout=60_000, polling=10)
                drawn.append(time.perf_counter() - t0)
                quiet.append(quiet_after(t0) - t0)
                if verbose:
                    print(name, k, [(round(1000 * (t - t0)), e) for t, e in events if t >= t0],
                          "drawn", round(1000 * drawn[-1]), file=sys.stderr, flush=True)
                # baseline: the palette's shortcut of the class already chosen: one rerun, nothing to draw
                t1 = time.perf_counter()
                pg.keyboard.press("2")
                click.append(quiet_after(t1) - t1)
            out[name] = {"stroke_drawn_ms": _ms(drawn), "stroke_quiet_ms": _ms(quiet),
                         "baseline_widget_rerun_ms": _ms(click),
                         "strokes_ms": [round(1000 * t) for t in quiet],
                         "quiet_over_baseline": round(statistics.median(quiet) / statistics.median(click), 2)}
            print(name, out[name], file=sys.stderr, flush=True)
        b.close()
    return out


def main() -> None:
    global W, H
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--only", default="library,page")
    ap.add_argument("--browser", action="store_true", help="also time strokes in chromium")
    ap.add_argument("--verbose", action="store_true", help="print each stroke's reruns (ms after mouse up)")
    ap.add_argument("--app-root", default=str(ROOT), help="the checkout whose page (and browser app) is timed")
    ap.add_argument("--size", default=f"{W}x{H}", help="the photo's WIDTHxHEIGHT (2061x1817: the reported tile, "
                    "where the old editor's 2x zoom showed 1:1)")
    args = ap.parse_args()
    W, H = (int(v) for v in args.size.lower().split("x"))
    sys.path.insert(0, str(ROOT))
    app_root = Path(args.app_root).resolve()
    tmp = Path(tempfile.mkdtemp(prefix="bench-editor-"))
    try:
        _run(args, app_root, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _run(args, app_root: Path, tmp: Path) -> None:
    data = make_dataset(tmp / "photo")
    env = {**os.environ, "SEGLIB_DATA_DIR": str(tmp / "data"), "SEGLIB_CACHE_DIR": str(tmp / "cache"),
           "SEGLIB_DATASET_ROOTS": str(tmp), "NO_ALBUMENTATIONS_UPDATE": "1", "HF_HUB_OFFLINE": "1",
           "MPLBACKEND": "Agg"}
    os.environ.update({k: env[k] for k in ("SEGLIB_CACHE_DIR", "NO_ALBUMENTATIONS_UPDATE", "HF_HUB_OFFLINE")})
    results: dict = {"image": f"{W}x{H}", "app_root": str(app_root)}
    only = args.only.split(",")
    if "library" in only:
        results["library"] = library(data, args.repeat)
    if "page" in only:
        results["page"] = page(data, args.repeat, app_root, env)
    if args.browser:
        results["browser"] = browser(data, args.repeat, app_root, tmp, args.verbose)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
