"""Benchmark: seglib.stats on 10,000 images of 64x128 against a plain NumPy pass.

Prints, for an .npz dataset and for a folder of PNGs holding the same images:
  - seglib compute_stats (cold, no cache) time and the ratio to the plain pass,
  - the cached second open, and its ratio.
The plain pass is what a notebook would do: load the arrays, then per-image class counts
(bincount) and intensity mean/std/min/max.

    .venv/bin/python bench/bench_stats.py [--n 10000] [--no-folder]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from seglib.data import open_dataset  # noqa: E402
from seglib.data.demo import write_demo  # noqa: E402
from seglib.stats import compute_stats  # noqa: E402


def plain_numpy(images: np.ndarray, masks: np.ndarray):
    n = len(images)
    counts = np.stack([np.bincount(m.ravel(), minlength=256) for m in masks])
    flat = images.reshape(n, -1)
    return counts, flat.mean(1), flat.std(1), flat.min(1), flat.max(1)


def timed(fn, repeat=3):
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--no-folder", action="store_true")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-stats-"))
    os.environ["SEGLIB_DATA_DIR"] = str(tmp / "seglib")
    npz = tmp / "mars.npz"
    write_demo(npz, n=args.n, seed=0, n_test=0)
    z = np.load(npz)
    imgs, masks = z["training_set"][:, 0], z["training_set"][:, 1]

    def npz_plain():
        z2 = np.load(npz)
        ts = z2["training_set"]
        return plain_numpy(ts[:, 0], ts[:, 1])

    t_plain, _ = timed(npz_plain)
    t_cold, stats = timed(lambda: compute_stats(open_dataset(npz), use_cache=False))
    compute_stats(open_dataset(npz))
    t_warm, _ = timed(lambda: compute_stats(open_dataset(npz)))
    print(f"npz, {args.n} images 64x128: plain NumPy {t_plain:.3f}s | seglib cold {t_cold:.3f}s "
          f"(ratio {t_cold / t_plain:.2f}) | cached {t_warm:.3f}s (ratio {t_warm / t_plain:.2f})")
    assert len(stats.ids) == args.n

    if args.no_folder:
        return
    root = tmp / "folder"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i in range(args.n):
        Image.fromarray(imgs[i]).save(root / "images" / f"{i:05d}.png", compress_level=1)
        Image.fromarray(masks[i]).save(root / "masks" / f"{i:05d}.png", compress_level=1)

    def folder_plain():
        names = sorted(os.listdir(root / "images"))
        im = np.stack([np.asarray(Image.open(root / "images" / f)) for f in names])
        ms = np.stack([np.asarray(Image.open(root / "masks" / f)) for f in names])
        return plain_numpy(im, ms)

    t_plain_f, _ = timed(folder_plain, repeat=2)
    t_cold_f, _ = timed(lambda: compute_stats(open_dataset(root), use_cache=False), repeat=2)
    compute_stats(open_dataset(root))
    t_warm_f, _ = timed(lambda: compute_stats(open_dataset(root)), repeat=2)
    t_open, _ = timed(lambda: open_dataset(root), repeat=2)
    print(f"folder, {args.n} PNG pairs: plain PIL+NumPy {t_plain_f:.3f}s | seglib cold {t_cold_f:.3f}s "
          f"(ratio {t_cold_f / t_plain_f:.2f}) | cached {t_warm_f:.3f}s (ratio {t_warm_f / t_plain_f:.2f}) | "
          f"open alone {t_open:.3f}s")


if __name__ == "__main__":
    main()
