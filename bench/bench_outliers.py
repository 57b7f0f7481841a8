"""Benchmark: seglib.outliers.detect on 10,000 demo images of 64x128 against a plain NumPy pass.

The plain pass is the least a notebook would do over the same arrays: per-image mean and std,
and a hash of every mask (to find shared masks). ``detect`` does far more (perceptual hashes,
pairwise near-copy search, connected pieces, layout priors), so the ratio says what that costs.

    .venv/bin/python bench/bench_outliers.py [--n 10000]
"""
from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.bench_stats import timed as best_of  # noqa: E402  (best of N runs, same helper)
from seglib.data import open_dataset  # noqa: E402
from seglib.data.demo import write_demo  # noqa: E402
from seglib.outliers import detect  # noqa: E402
from seglib.outliers import features as feature_pass  # noqa: E402
from seglib.stats import compute_stats  # noqa: E402


def plain_numpy(images: np.ndarray, masks: np.ndarray):
    """Per-image mean/std and a hash per mask; identical-mask groups from the hashes."""
    flat = images.reshape(len(images), -1).astype(np.float32)
    mean, std = flat.mean(1), flat.std(1)
    hashes = np.array([int.from_bytes(hashlib.blake2b(m.tobytes(), digest_size=8).digest(), "little")
                       for m in masks], np.uint64)
    _, inv, counts = np.unique(hashes, return_inverse=True, return_counts=True)
    return mean, std, counts[inv] > 1


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-outliers-"))
    os.environ["SEGLIB_DATA_DIR"] = str(tmp / "seglib")
    npz = tmp / "mars.npz"
    write_demo(npz, n=args.n, seed=0, n_test=0)
    ts = np.load(npz)["training_set"]
    images, masks = ts[:, 0], ts[:, 1]

    t_plain, _ = best_of(lambda: plain_numpy(images, masks), repeat=args.repeat)
    ds = open_dataset(npz)
    stats = compute_stats(ds)

    def cold():
        feature_pass.MEMO.clear()  # no in-process memo either: a full pixel pass every time
        return detect(ds, stats, use_cache=False)

    t_detect, flags = best_of(cold, repeat=args.repeat)
    t_cached, _ = best_of(lambda: detect(ds, stats), repeat=args.repeat)
    print(f"{args.n} images 64x128: plain NumPy {t_plain:.3f}s ({args.n / t_plain:,.0f} img/s) | "
          f"detect, no cache {t_detect:.3f}s ({args.n / t_detect:,.0f} img/s, ratio {t_detect / t_plain:.1f}) | "
          f"detect, cached {t_cached:.3f}s (ratio {t_cached / t_plain:.2f})")
    print(f"{len(flags)} flags on {flags.image_id.nunique()} images: "
          + ", ".join(f"{k} {v}" for k, v in flags.detector.value_counts().items()))


if __name__ == "__main__":
    main()
