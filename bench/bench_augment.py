"""Augmentation throughput: the saved-and-loaded pipeline vs the same Compose built directly
(ratio ~1 expected), the 8 x 4 preview time, the Augment page's preview pictures drawn vs taken
from their cache (what a second opening of the page costs), and training-Dataset loading with 0
vs 2 workers.

    .venv/bin/python bench/bench_augment.py [--n 2000] [--photos 8]
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

def _photos(root: Path, n: int, hw: tuple[int, int] = (1100, 1500)) -> Path:
    """``n`` smooth RGB JPEG photos of ``hw`` with 4-class PNG masks and a class file."""
    import json

    import cv2
    import numpy as np
    from PIL import Image

    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    (root / "classes.json").write_text(json.dumps([{"id": i, "name": f"class{i}"} for i in range(4)]))
    for k in range(n):
        rng = np.random.default_rng(k)
        field = cv2.resize(rng.uniform(0, 1, (6, 8)).astype(np.float32), hw[::-1], interpolation=cv2.INTER_CUBIC)
        mask = np.digitize(field, np.quantile(field, [0.4, 0.7, 0.9])).astype(np.uint8)
        image = rng.uniform(20, 235, (4, 3))[mask] * (0.8 + 0.4 * field[..., None])
        Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).save(root / "images" / f"p{k:03d}.jpg", quality=90)
        Image.fromarray(mask).save(root / "masks" / f"p{k:03d}.png")
    return root


def bench_preview_pictures(tmp: Path, demo, n_photos: int) -> None:
    """The page's preview (8 images x (original + 4 draws), default pipeline): drawn once, then
    the same key again from the cache, as a second opening of the page asks for it."""
    from seglib.augment import default_steps, gallery
    from seglib.augment.pictures import GALLERIES
    from seglib.data import open_dataset
    from seglib.train.inputs import input_transform

    photos = open_dataset(_photos(tmp / "photos", n_photos))
    crop = ({"mode": "crop", "size": 512}, ("crop", 512))
    for name, ds, (plan, policy) in (("demo 64x128, whole", demo, (None, None)),
                                      ("photos 1500x1100, whole", photos, (None, None)),
                                      ("photos 1500x1100, 512-px crops", photos, crop)):
        ids, steps = ds.labeled_ids[:8], default_steps(ds.image(ds.labeled_ids[0]).shape[:2])
        prepare = input_transform(plan, (), 1 / 3, 0) if plan else None
        fingerprint = ds.fingerprint()
        GALLERIES.clear()
        t = time.perf_counter()
        first = gallery(ds, fingerprint, ids, steps, 4, 0, 0.4, prepare, policy)
        drawn = time.perf_counter() - t
        t = time.perf_counter()
        again = gallery(ds, fingerprint, ids, steps, 4, 0, 0.4, prepare, policy)
        cached = time.perf_counter() - t
        assert again is first
        size = sum(len(p[0]) for r in first.rows for p in (r.original, *r.draws)) / 2**20
        print(f"preview pictures {len(ids)} x (1 + 4 draws), {name}: drawn {drawn:.2f} s, cached "
              f"{1e3 * cached:.3f} ms, ratio drawn/cached = {drawn / cached:,.0f} ({size:.1f} MB of pictures kept)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=2000, help="demo images")
    ap.add_argument("--photos", type=int, default=8, help="1500x1100 photos for the preview pictures")
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
    bench_preview_pictures(tmp, ds, args.photos)

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
