"""What ranking the unlabeled pool costs (seglib.edit.label_next): the first ranking predicts
the pool with each run, a second one with a run added predicts that run alone, and one after a
save (the pool one image smaller) predicts nothing. Baseline in the same process: the bare
forward passes of one run over the same images (the least any ranking must do cold).

Two pools: N small 64x128 demo images, and M photos of 1500x1100 (tiled as the run's config says).

    .venv/bin/python bench/bench_label_next_cost.py --small 10000 --photos 1000
    .venv/bin/python bench/bench_label_next_cost.py --quick        # 2,000 small, 12 photos
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _train(data: str, out: Path, arch: str, encoder: str) -> Path:
    from seglib.train import TrainConfig, train

    cfg = TrainConfig(data=data, arch=arch, encoder=encoder, epochs=1, batch_size=8, max_steps_per_epoch=2,
                      patience=0, seed=0, val_fraction=0.5)
    train(cfg, run_dir=out)
    return out


def _photos(root: Path, m: int) -> Path:
    """A folder of 4 labeled 1500x1100 photos and M unlabeled ones (smooth colour fields and noise)."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for sub in ("images", "masks"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[0:1100, 0:1500]
    for k in range(m + 4):
        phase = rng.uniform(0, 6.28, 3)
        rgb = np.stack([127 + 100 * np.sin(xx / (80 + 20 * c) + phase[c]) for c in range(3)], -1)
        rgb = np.clip(rgb + rng.normal(0, 12, rgb.shape), 0, 255).astype(np.uint8)
        Image.fromarray(rgb).save(root / "images" / f"p{k:04d}.jpg", quality=88)
        if k < 4:
            Image.fromarray((rgb[..., 0] > 127).astype(np.uint8)).save(root / "masks" / f"p{k:04d}.png")
    return root


def _bare_forward(data: str, run: Path, ids: list[str]) -> float:
    """Seconds for the run's bare forward passes over ``ids`` (whole images, batch 1, no cache)."""
    import torch

    from seglib.data import open_dataset
    from seglib.predict import dataset_layout, open_members

    ds = open_dataset(data)
    member = open_members([str(run)], dataset_layout(ds))[0][0]
    model = member.load("cpu")
    start = time.perf_counter()
    with torch.inference_mode():
        for i in ids:
            img = ds.image(i)
            img = img[..., None] if img.ndim == 2 else img[..., :3]   # the demo is grey (one channel)
            x = torch.from_numpy(np.ascontiguousarray(img)).float().permute(2, 0, 1)[None] / 255
            h, w = x.shape[-2:]
            x = torch.nn.functional.pad(x, (0, -w % 32, 0, -h % 32))
            model(x)
    return time.perf_counter() - start


def measure(name: str, data: str, runs: list[Path]) -> None:
    from seglib.data import open_dataset
    from seglib.edit import label_next as ln

    ds = open_dataset(data)
    pool = ln.candidates(ds)
    times = {}
    t = time.perf_counter()
    ln.label_next(ds, [str(runs[0])], pool)
    times["cold, one run"] = time.perf_counter() - t
    t = time.perf_counter()
    ln.label_next(ds, [str(r) for r in runs], pool)
    times["a second run added"] = time.perf_counter() - t
    t = time.perf_counter()
    ln.label_next(ds, [str(r) for r in runs], pool[1:])
    times["after a save (pool - 1), both cached"] = time.perf_counter() - t
    bare = _bare_forward(data, runs[0], pool)
    print(f"\n{name}: {len(pool):,} unlabeled images")
    for k, v in times.items():
        print(f"  {k:40s} {v:8.1f} s   ({v / bare:5.2f}x the bare forward passes of one run, {bare:.1f} s)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--small", type=int, default=10_000, help="unlabeled 64x128 images")
    ap.add_argument("--photos", type=int, default=1_000, help="unlabeled 1500x1100 photos")
    ap.add_argument("--quick", action="store_true", help="2,000 small images and 12 photos")
    args = ap.parse_args()
    if args.quick:
        args.small, args.photos = 2_000, 12
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        os.environ["SEGLIB_DATA_DIR"] = str(root / "seglib-data")
        from seglib.data.demo import write_demo

        npz = root / "small.npz"
        write_demo(npz, n=60, seed=0, n_test=args.small)    # the test split is unlabeled
        runs = [_train(str(npz), root / "unet", "Unet", "mobilenet_v2"),
                _train(str(npz), root / "segformer", "Segformer", "mit_b0")]
        measure("64x128 demo", str(npz), runs)
        photos = _photos(root / "photos", args.photos)
        runs = [_train(str(photos), root / "p-unet", "Unet", "mobilenet_v2"),
                _train(str(photos), root / "p-segformer", "Segformer", "mit_b0")]
        measure("1500x1100 photos", str(photos), runs)


if __name__ == "__main__":
    main()
