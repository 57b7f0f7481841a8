"""Training on random crops of big photos: the engine (``input_mode="crop"``) vs a bare PyTorch loop
that decodes the same photos and takes the same-size random crops.

    .venv/bin/python bench/bench_train_crops.py                 # 24 photos 2000x1500, 512 crops, CPU
    .venv/bin/python bench/bench_train_crops.py --n 200 --steps 50 --device cuda

Prints the training images/s of both (steps only: validation, on whole images by tiles, is not
timed), alternating the two loops over ``--rounds`` so that a busy machine slows both alike, and
their ratio (engine / bare, want >= 0.95). Both decode every photo in full for each crop, as a
notebook would; the engine also centres a third of its crops on the rarest class.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import segmentation_models_pytorch as smp  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402
from torch.utils.data import DataLoader, Dataset, RandomSampler  # noqa: E402

from seglib.train import RunFolder, TrainConfig, train  # noqa: E402
from seglib.train.distributed import resolve_device  # noqa: E402


def make_photos(root: Path, n: int, h: int, w: int) -> list[str]:
    """RGB JPEG photos with index PNG masks of 3 classes (a road band, a rare class in small patches)."""
    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    yy, xx = np.mgrid[0:h, 0:w]
    for k in range(n):
        mask = np.zeros((h, w), np.uint8)
        mask[((yy + 3 * k) // 90) % 4 == 1] = 1
        for _ in range(3):
            y, x = rng.integers(0, h - 40), rng.integers(0, w - 40)
            mask[y : y + 40, x : x + 40] = 2
        image = np.stack([(xx + 7 * k) % 256, (yy * 2) % 256, (xx + yy) % 256], -1).astype(np.uint8)
        image[mask == 1] //= 3
        image[mask == 2] = (200, 30, 30)
        Image.fromarray(image).save(root / "images" / f"p{k:04d}.jpg", quality=90)
        Image.fromarray(mask).save(root / "masks" / f"p{k:04d}.png")
    return [f"p{k:04d}" for k in range(n)]


class BareCrops(Dataset):
    """Decode a photo and its mask with PIL, take a random square crop: what a notebook does."""

    def __init__(self, root: Path, ids: list[str], size: int):
        self.root, self.ids, self.size = root, ids, size

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int):
        image = np.asarray(Image.open(self.root / "images" / f"{self.ids[i]}.jpg").convert("RGB"))
        mask = np.asarray(Image.open(self.root / "masks" / f"{self.ids[i]}.png"))
        h, w = mask.shape
        top, left = np.random.randint(h - self.size + 1), np.random.randint(w - self.size + 1)
        image = image[top : top + self.size, left : left + self.size]
        mask = mask[top : top + self.size, left : left + self.size]
        x = torch.from_numpy(np.ascontiguousarray(np.moveaxis(image, -1, 0), dtype=np.float32)).div_(255)
        return x, torch.from_numpy(mask.astype(np.int64))


def bare_loop(root, ids, size, steps, batch, arch, encoder, device, seed) -> float:
    torch.manual_seed(seed)
    np.random.seed(seed)
    model = smp.create_model(arch, encoder_name=encoder, encoder_weights=None, in_channels=3, classes=3).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4)
    focal = smp.losses.FocalLoss("multiclass", ignore_index=255)
    dice = smp.losses.DiceLoss("multiclass", ignore_index=255)
    sampler = RandomSampler(ids, replacement=True, num_samples=steps * batch)
    loader = DataLoader(BareCrops(root, ids, size), batch_size=batch, sampler=sampler, drop_last=True)
    model.train()
    seen, t0 = 0, time.perf_counter()
    for x, y in loader:
        x, y = x.to(device), y.to(device)
        out = model(x)
        loss = focal(out, y) + dice(out, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        seen += len(x)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return seen / (time.perf_counter() - t0)


def engine_run(root, train_ids, val_ids, size, steps, batch, arch, encoder, device, seed, out) -> float:
    cfg = TrainConfig(data=str(root), train_ids=train_ids, val_ids=val_ids, arch=arch, encoder=encoder, epochs=1,
                      batch_size=batch, max_steps_per_epoch=steps, input_mode="crop", input_size=size,
                      sampler="uniform", scheduler="none", grad_clip=0, patience=0, loss="focal+dice",
                      device=str(device), seed=seed, leave_out_excluded=False, workers=0)
    train(cfg, run_dir=out)
    history = RunFolder(out).read_history()
    return sum(r["images_per_s"] * r["train_time"] for r in history) / sum(r["train_time"] for r in history)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=24, help="photos")
    ap.add_argument("--height", type=int, default=1500)
    ap.add_argument("--width", type=int, default=2000)
    ap.add_argument("--crop", type=int, default=512)
    ap.add_argument("--steps", type=int, default=12, help="training steps per loop and round")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--arch", default="Unet")
    ap.add_argument("--encoder", default="mobilenet_v2")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    tmp = Path(tempfile.mkdtemp(prefix="bench-crops-"))
    os.environ.setdefault("SEGLIB_DATA_DIR", str(tmp / "data"))
    root = tmp / "photos"
    ids = make_photos(root, args.n, args.height, args.width)
    train_ids, val_ids = ids[2:], ids[:2]
    print(f"{args.arch}/{args.encoder}, {len(train_ids)} photos {args.width}x{args.height} -> {args.crop} crops, "
          f"batch {args.batch}, {args.steps} steps a loop, {device}, {torch.get_num_threads()} threads")
    bare_loop(root, train_ids, args.crop, 2, args.batch, args.arch, args.encoder, device, 0)   # warm up
    bare, eng = [], []
    for r in range(args.rounds):
        bare.append(bare_loop(root, train_ids, args.crop, args.steps, args.batch, args.arch, args.encoder, device, r))
        eng.append(engine_run(root, train_ids, val_ids, args.crop, args.steps, args.batch, args.arch, args.encoder,
                              device, r, tmp / f"run-{r}"))
        print(f"round {r}: bare {bare[-1]:.2f} img/s | engine {eng[-1]:.2f} img/s", flush=True)
    print(f"throughput ratio engine/bare = {np.mean(eng) / np.mean(bare):.3f}   (want >= 0.95)")


if __name__ == "__main__":
    main()
