"""Benchmark: detectors, statistics and the Home / Dataset / Review pages on big photos.

Makes (in a temporary folder) N 1500x1100 RGB JPEG photos with index-PNG masks: smooth scenes in
varied colours and layouts, a few exact and near copies, a blank and a saturated frame, so the
detectors have work. Each measurement runs in a child process and reports its wall time and its
peak resident memory above what the process held once its imports were done (ru_maxrss):

  decode     a plain PIL pass: every image and mask decoded once, nothing kept (the floor)
  stats      seglib.stats.compute_stats, cold (empty cache) and warm (on-disk cache)
  outliers   seglib.outliers.detect (statistics from the cache), cold and warm (on-disk cache)
  pages      Home, Dataset and Review through streamlit's AppTest: first opening (cold caches),
             then a second opening of each (warm page switch)

    .venv/bin/python bench/bench_large_pages.py [--n 300] [--keep DIR] [--only decode,outliers]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
W, H = 1500, 1100


# --- the dataset -------------------------------------------------------------------------------
def _scene(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A smooth RGB scene (H, W, 3) uint8 and its 4-class mask, different for every seed."""
    import cv2

    rng = np.random.default_rng(seed)
    gy, gx = rng.integers(3, 9, 2)
    field = cv2.resize(rng.uniform(0, 1, (gy, gx)).astype(np.float32), (W, H), interpolation=cv2.INTER_CUBIC)
    mask = np.digitize(field, np.quantile(field, [0.4, 0.7, 0.9])).astype(np.uint8)
    palette = rng.uniform(20, 235, (4, 3)).astype(np.float32)
    img = palette[mask] * (0.8 + 0.4 * field[..., None])
    img += cv2.resize(rng.normal(0, 12, (H // 4, W // 4, 3)).astype(np.float32), (W, H))  # texture
    return np.clip(img, 0, 255).astype(np.uint8), mask


def _write(args) -> None:
    from PIL import Image

    root, k, n = args
    name = f"photo_{k:05d}"
    img, mask = _scene(k)
    if k == 1:
        img[:] = 40                                   # blank
    elif k == 2:
        img = np.where(img > 60, 255, img).astype(np.uint8)  # saturated
    elif k % 97 == 5 and k > 5:
        img, mask = _scene(k - 1)                       # an exact copy of the previous photo
    elif k % 89 == 7 and k > 7:
        img, mask = _scene(k - 1)
        img = np.clip(img.astype(np.float32) * 1.1 + 8, 0, 255).astype(np.uint8)  # a re-exposed copy
    Image.fromarray(img).save(root / "images" / f"{name}.jpg", quality=90)
    Image.fromarray(mask).save(root / "masks" / f"{name}.png")


def make_dataset(root: Path, n: int) -> Path:
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(parents=True, exist_ok=True)
    (root / "classes.json").write_text(json.dumps([{"id": i, "name": f"class{i}"} for i in range(4)]))
    with ProcessPoolExecutor(max(1, min(4, os.cpu_count() or 1))) as pool:
        list(pool.map(_write, [(root, k, n) for k in range(n)], chunksize=16))
    return root


# --- measurements in a child process -------------------------------------------------------------
def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _child(what: str, data: str) -> dict:
    """Run one measurement; returns {name: seconds} plus peak memory growth in MB."""
    out: dict = {}
    if what == "decode":
        from PIL import Image

        from seglib.data import open_dataset
        ds = open_dataset(data)
        base = _rss_mb()
        t = time.perf_counter()
        for i in ds.ids:
            for p in (ds.file_of(i), ds.file_of(i, "mask")):
                with Image.open(p) as im:
                    im.load()
        out["decode"] = time.perf_counter() - t
    elif what == "stats":
        from seglib.data import open_dataset
        from seglib.stats import compute_stats
        ds = open_dataset(data)
        base = _rss_mb()
        t = time.perf_counter()
        compute_stats(ds)
        out["stats_cold"] = time.perf_counter() - t
        t = time.perf_counter()
        compute_stats(open_dataset(data))
        out["stats_warm"] = time.perf_counter() - t
    elif what == "outliers":  # statistics come from the cache the "stats" child filled: only detect counts
        from seglib.data import open_dataset
        from seglib.outliers import detect, features
        from seglib.stats import compute_stats
        ds = open_dataset(data)
        stats = compute_stats(ds)
        base = _rss_mb()
        seen = []
        t = time.perf_counter()
        flags = detect(ds, stats, progress=lambda d, n: seen.append((time.perf_counter(), d)))
        out["outliers_cold"] = time.perf_counter() - t
        out["flags"] = len(flags)
        out["progress_calls"] = len(seen)
        if len(seen) > 2:  # the longest silence between two progress calls
            out["longest_progress_gap_s"] = max(b[0] - a[0] for a, b in zip(seen, seen[1:], strict=False))
        features.MEMO.clear()  # warm: the on-disk cache, as a new process or a reopened dataset sees it
        ds = open_dataset(data)
        t = time.perf_counter()
        detect(ds, compute_stats(ds))
        out["outliers_warm"] = time.perf_counter() - t
    elif what == "pages":
        from streamlit.testing.v1 import AppTest
        base = _rss_mb()
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=1800)
        at.session_state["dataset_path"] = data
        at.session_state["review_section"] = "Detectors"
        for run in ("first", "second"):
            for page, name in (("pages/0_home.py", "home"), ("pages/1_dataset.py", "dataset"),
                               ("pages/2_review.py", "review")):
                t = time.perf_counter()
                at = at.switch_page(page).run() if (run, name) != ("first", "home") else at.run()
                out[f"{name}_{run}"] = time.perf_counter() - t
                if at.exception:
                    out[f"{name}_{run}_error"] = str(at.exception[0].value)[:300]
            at.session_state["review_section"] = "Map"
        t = time.perf_counter()
        at = at.run()
        out["review_map_first"] = time.perf_counter() - t
        t = time.perf_counter()
        at = at.switch_page("pages/0_home.py").run()
        out["home_after_map"] = time.perf_counter() - t
    else:
        raise SystemExit(f"unknown measurement {what}")
    out["peak_growth_mb"] = round(_peak_mb() - base, 1)
    return out


def measure(what: str, data: Path, env: dict) -> dict:
    cmd = [sys.executable, __file__, "--child", what, "--data", str(data)]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=ROOT)
    if res.returncode != 0:
        return {"error": res.stderr[-2000:]}
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--keep", default=None, help="make (or reuse) the dataset in this folder")
    ap.add_argument("--only", default="decode,stats,outliers,pages",
                    help="outliers needs stats before it (it reads the statistics from their cache)")
    ap.add_argument("--child", default=None)
    ap.add_argument("--data", default=None)
    args = ap.parse_args()
    if args.child:
        print(json.dumps({k: round(v, 3) if isinstance(v, float) else v
                          for k, v in _child(args.child, args.data).items()}))
        return
    tmp = Path(tempfile.mkdtemp(prefix="bench-large-"))
    data = Path(args.keep) if args.keep else tmp / "photos"
    try:
        if not (data / "images").exists() or len(list((data / "images").iterdir())) != args.n:
            t = time.perf_counter()
            shutil.rmtree(data, ignore_errors=True)
            make_dataset(data, args.n)
            print(f"made {args.n} photos of {W}x{H} in {time.perf_counter() - t:.0f} s: {data}", file=sys.stderr)
        results = {}
        for what in args.only.split(","):
            cache = tmp / ("cache-stats" if what == "outliers" else f"cache-{what}")
            if what != "outliers":  # outliers reads the statistics that the stats child cached
                shutil.rmtree(cache, ignore_errors=True)
            env = {**os.environ, "SEGLIB_CACHE_DIR": str(cache), "SEGLIB_DATA_DIR": str(tmp / f"data-{what}"),
                   "SEGLIB_DATASET_ROOTS": str(data.parent), "NO_ALBUMENTATIONS_UPDATE": "1",
                   "HF_HUB_OFFLINE": "1", "MPLBACKEND": "Agg"}
            results[what] = measure(what, data, env)
            print(what, json.dumps(results[what]), file=sys.stderr, flush=True)
        dec = results.get("decode", {}).get("decode")
        out = results.get("outliers", {})
        if dec and "outliers_cold" in out:
            print(f"outliers cold {out['outliers_cold']:.1f} s = {out['outliers_cold'] / dec:.2f}x a plain decoding "
                  f"pass ({dec:.1f} s); warm {out['outliers_warm']:.2f} s")
        print(json.dumps({"n": args.n, **results}, indent=1))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
