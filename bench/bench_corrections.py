"""Benchmark: what a saved correction costs the Dataset page, against a cached open of it.

In one process, through streamlit's AppTest (the same script runs a browser would cause):

  home cold  the app's first run (Home): the statistics pass
  first      the Dataset page opened for the first time (thumbnails drawn)
  cached     the page opened again, nothing changed (the baseline: a warm page switch)
  corrected  one image's mask saved as a correction (seglib.review.corrections), then the page
             opened again: the statistics measure that image again and its thumbnail is drawn
             again; nothing else should be recomputed
  original   the page with the files' masks (the sidebar's "Original masks") — cached views

Also counts the images the statistics pass read and the thumbnails drawn at each step, which
is the real claim: a correction costs one image, whatever the dataset's size.

    .venv/bin/python bench/bench_corrections.py [--data PATH] [--n 300]

Without --data it uses the default-size demo (3,640 images of 64x128); with --n and no --data,
bench/bench_large_pages.py's N photos of 1500x1100 (JPEG + index PNG).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=None)
    ap.add_argument("--n", type=int, default=0, help="make N big photos instead of the demo")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-corrections-"))
    os.environ.update(SEGLIB_DATA_DIR=str(tmp / "data"), SEGLIB_CACHE_DIR=str(tmp / "cache"),
                      SEGLIB_DATASET_ROOTS="/", NO_ALBUMENTATIONS_UPDATE="1", HF_HUB_OFFLINE="1")
    if args.data:
        data = Path(args.data)
    elif args.n:
        from bench_large_pages import make_dataset
        data = make_dataset(tmp / "photos", args.n)
    else:
        from seglib.data import write_demo
        data = tmp / "demo.npz"
        write_demo(data)

    from streamlit.testing.v1 import AppTest

    import seglib.stats as stats_mod
    import seglib.viz as viz
    from seglib.data import open_dataset
    from seglib.review.corrections import save_correction

    counts = {"stats_images": 0, "thumbnails": 0}
    real_one, real_thumb = stats_mod._one, viz.thumbnail

    def counting_one(ds, image_id):
        counts["stats_images"] += 1
        return real_one(ds, image_id)

    def counting_thumb(*a, **k):
        counts["thumbnails"] += 1
        return real_thumb(*a, **k)

    stats_mod._one, viz.thumbnail = counting_one, counting_thumb
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=3600)
    at.session_state["dataset_path"] = str(data)
    t = time.perf_counter()
    at.run()
    print(f"{'home cold':<10} {time.perf_counter() - t:7.3f} s   statistics read {counts['stats_images']:>6,} images "
          "(npz datasets: whole arrays, not counted)")

    def open_page(label: str) -> None:
        nonlocal at
        before = dict(counts)
        t = time.perf_counter()
        at = at.switch_page("pages/1_dataset.py").run()
        dt = time.perf_counter() - t
        if at.exception:
            raise SystemExit(f"{label}: {at.exception[0].value}")
        results[label] = dt
        print(f"{label:<10} {dt:7.3f} s   statistics read {counts['stats_images'] - before['stats_images']:>6,} "
              f"images, {counts['thumbnails'] - before['thumbnails']:>3} thumbnails drawn")
        at = at.switch_page("pages/0_home.py").run()

    results: dict[str, float] = {}
    open_page("first")
    open_page("cached")
    ds = open_dataset(data)
    image_id = ds.labeled_ids[0]
    mask = ds.mask(image_id).copy()
    mask[: mask.shape[0] // 4, : mask.shape[1] // 4] = max(ds.class_map.ids)
    t = time.perf_counter()
    save_correction(ds, image_id, mask, note="bench")
    print(f"save       {time.perf_counter() - t:7.3f} s   ({mask.shape[1]}x{mask.shape[0]} mask)")
    open_page("corrected")
    open_page("again")
    at.session_state["original_masks"] = True
    open_page("original")
    print(f"\n{len(ds):,} images at {data}")
    print(f"corrected / cached open: {results['corrected'] / results['cached']:.2f}x "
          f"(first open / cached: {results['first'] / results['cached']:.1f}x)")


if __name__ == "__main__":
    main()
