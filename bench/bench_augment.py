"""Augmentation throughput: the saved-and-loaded pipeline vs the same Compose built directly
(ratio ~1 expected), the 8 x 4 preview time, and training-Dataset loading with 0 vs 2 workers.

    .venv/bin/python bench/bench_augment.py [--n 2000]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=2000, help="demo images")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-augment-"))
    os.environ["SEGLIB_DATA_DIR"] = str(tmp)
    import torch
    from torch.utils.data import DataLoader

    from seglib.augment import build_compose, load_pipeline, new_step, preview, save_pipeline
    from seglib.data import open_dataset
    from seglib.data.demo import write_demo
    from seglib.data.torch_dataset import SegTorchDataset

    write_demo(tmp / "demo.npz", n=args.n, seed=0, n_test=0)
    ds = open_dataset(tmp / "demo.npz")
    hw = ds.image(ds.labeled_ids[0]).shape[:2]
    names = ["HorizontalFlip", "Affine", "ElasticTransform", "RandomBrightnessContrast", "GaussNoise", "CLAHE"]
    steps = [new_step(n, hw) for n in names]
    steps[1]["params"]["rotate"] = (-15.0, 15.0)
    save_pipeline("bench", build_compose(steps))
    pairs = [(ds.image(i), ds.mask(i)) for i in ds.labeled_ids[:500]]

    def rate(compose) -> float:
        compose.set_random_seed(0)
        t = time.perf_counter()
        for img, m in pairs:
            compose(image=img, mask=m)
        return len(pairs) / (time.perf_counter() - t)
    rate(build_compose(steps))  # warm-up: first calls pay for imports and cv2 caches
    runs = [(rate(build_compose(steps)), rate(load_pipeline("bench"))) for _ in range(3)]
    direct, loaded = max(r[0] for r in runs), max(r[1] for r in runs)  # best of 3, interleaved
    print(f"augment: direct Compose {direct:,.0f} img/s, saved+loaded {loaded:,.0f} img/s, "
          f"ratio loaded/direct = {loaded / direct:.2f}")

    t = time.perf_counter()
    preview(build_compose(steps), pairs[:8], draws=4, seed=0)
    print(f"preview 8 images x 4 draws ({hw[0]}x{hw[1]}): {1000 * (time.perf_counter() - t):.1f} ms")

    train = SegTorchDataset(ds, transform=load_pipeline("bench"), seed=0)
    results = {}
    for workers in (0, 2):
        loader = DataLoader(train, batch_size=32, shuffle=True, num_workers=workers,
                            generator=torch.Generator().manual_seed(0))
        t = time.perf_counter()
        n = sum(len(x) for x, _ in loader)
        results[workers] = n / (time.perf_counter() - t)
    print(f"DataLoader ({len(train)} images, batch 32): num_workers=0 {results[0]:,.0f} img/s, "
          f"num_workers=2 {results[2]:,.0f} img/s, ratio 2/0 = {results[2] / results[0]:.2f} "
          f"(on {os.cpu_count()} CPUs)")

if __name__ == "__main__":
    main()
