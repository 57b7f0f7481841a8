"""How fast a page of Dataset-grid thumbnails appears, against drawing the same images at full size.

    .venv/bin/python bench/dataset_thumbs.py [--n 48]

Two datasets: the demo (64x128 grey crops, an .npz) and 2000x1800 RGB photos (a folder of
JPEG images with PNG masks, written to a temp folder). For each it prints the seconds for a
page drawn from cold (decode + scale + draw + encode, 4 threads as the page does), the same
warm (st.cache_data hit), and the baseline: each image overlaid at full size and JPEG-encoded,
which is what handing full images to st.image costs (it sends JPEG). Ratios are against that baseline.
"""
from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from seglib import viz  # noqa: E402
from seglib.data import open_dataset  # noqa: E402
from seglib.data.demo import write_demo  # noqa: E402
from seglib.viz import View  # noqa: E402


def _photos(root: Path, n: int) -> Path:
    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    yy, xx = np.mgrid[0:1800, 0:2000]
    for k in range(n):
        img = np.stack([(xx + 37 * k) % 256, (yy + 11 * k) % 256, (xx + yy) % 256], -1).astype(np.uint8)
        img = np.clip(img.astype(np.int16) + rng.integers(-20, 20, img.shape, dtype=np.int16), 0, 255).astype(np.uint8)
        Image.fromarray(img).save(root / "images" / f"p{k:03d}.jpg", quality=90)
        mask = ((xx // (200 + 10 * k)) + (yy // 300)) % 6
        Image.fromarray(mask.astype(np.uint8)).save(root / "masks" / f"p{k:03d}.png")
    return root


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def _baseline(ds, ids) -> None:
    for i in ids:
        img, mask, _ = ds.load_pair(i)
        buf = io.BytesIO()
        Image.fromarray(viz.overlay(img, mask, ds.class_map, 0.45)).save(buf, "JPEG", quality=95)


def _bench(name: str, ds, n: int) -> None:
    import streamlit as st

    ids = ds.ids[:n]
    view = View()

    @st.cache_data(show_spinner=False)
    def cached(image_id: str, view: View, _ds) -> tuple[bytes, str]:
        return viz.thumbnail(_ds, image_id, view, 256)

    base = _timed(lambda: _baseline(ds, ids))
    with ThreadPoolExecutor(4) as pool:
        cold = _timed(lambda: list(pool.map(lambda i: cached(i, view, ds), ids)))
    warm = _timed(lambda: [cached(i, view, ds) for i in ids])
    size = sum(len(cached(i, view, ds)[0]) for i in ids)
    print(f"{name}: {len(ids)} images; baseline (full-size overlay + JPEG) {base:.3f} s; "
          f"grid cold {cold:.3f} s = {cold / base:.3f}x baseline; warm {warm:.4f} s = {warm / base:.4f}x baseline; "
          f"{size / len(ids) / 1024:.1f} KiB per thumbnail")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=48)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        demo = Path(tmp) / "demo.npz"
        write_demo(demo, n=max(args.n, 100), seed=0, n_test=0)
        _bench("demo 64x128 grey", open_dataset(demo), args.n)
        _bench("photos 2000x1800 RGB", open_dataset(_photos(Path(tmp) / "photos", args.n)), args.n)


if __name__ == "__main__":
    main()
