"""Training engine vs a bare PyTorch loop: throughput and quality, same model/data/batch/process.

    .venv/bin/python bench/bench_train.py                 # 600 demo images, 3 epochs, 3 seeds, CPU
    .venv/bin/python bench/bench_train.py --n 2600 --epochs 8 --device cuda
    .venv/bin/python bench/bench_train.py --defaults      # + default config and a SegFormer on the demo
    .venv/bin/python bench/bench_train.py --encoder-weights imagenet               # from the Hugging Face cache
    .venv/bin/python bench/bench_train.py --encoder-weights imagenet --make-cache  # no internet: a cache made here

Prints images/s of both loops and their ratio (engine / bare, want >= 0.95), and the validation
mIoU of both on the same split, averaged over seeds (want |difference| <= 0.02). The bare loop is what a notebook
does: a shuffled DataLoader, an smp model, smp's focal + dice losses, AdamW, argmax, IoU.
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
from torch.utils.data import DataLoader  # noqa: E402

from seglib.data import open_dataset, write_demo  # noqa: E402
from seglib.data.torch_dataset import SegTorchDataset  # noqa: E402
from seglib.metrics import ConfusionMatrix, scores  # noqa: E402
from seglib.train import TrainConfig, train  # noqa: E402
from seglib.train.distributed import resolve_device  # noqa: E402


def make_cache(encoder: str, name: str, cache: Path) -> None:
    """A Hugging Face cache entry as smp asks for it (repo, revision, config.json, model.safetensors),
    holding a randomly initialised encoder: throughput does not depend on the values."""
    from huggingface_hub import constants
    from safetensors.torch import save_file

    from seglib import pretrained

    src = pretrained.source(encoder, name)
    net = (__import__("timm").create_model(encoder[3:], pretrained=False) if src.is_timm
           else smp.encoders.get_encoder(encoder, weights=None))
    commit = src.revision or "0" * 40
    snap = cache / ("models--" + src.repo_id.replace("/", "--")) / "snapshots" / commit
    snap.mkdir(parents=True, exist_ok=True)
    (snap.parent.parent / "refs").mkdir(exist_ok=True)
    (snap.parent.parent / "refs" / "main").write_text(commit)
    save_file({k: v.contiguous().clone() for k, v in net.state_dict().items()}, str(snap / "model.safetensors"))
    (snap / "config.json").write_text('{"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}')
    os.environ["HF_HUB_CACHE"] = str(cache)
    constants.HF_HUB_CACHE = str(cache)


def bare_model(arch, encoder, weights):
    """smp's own pretrained model (from the cache) and the encoder's mean/std for grey input."""
    if not weights:
        return smp.create_model(arch, encoder_name=encoder, encoder_weights=None, in_channels=1, classes=5), None
    from seglib import pretrained

    src = pretrained.require(encoder, weights)
    name, w, extra = pretrained.smp_arguments(src)
    norm = pretrained.normalization(encoder, weights, 1)
    model = smp.create_model(arch, encoder_name=name, encoder_weights=w, in_channels=1, classes=5, **extra)
    return model, (norm["mean"][0], norm["std"][0])


def bare_loop(ds, train_ids, val_ids, arch, encoder, epochs, batch, lr, device, seed, schedule="none", weights=None):
    """Ten lines of PyTorch: the baseline."""
    torch.manual_seed(seed)
    model, norm = bare_model(arch, encoder, weights)
    model = model.to(device)
    mean, std = norm or (0.0, 1.0)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    focal = smp.losses.FocalLoss("multiclass", ignore_index=255)
    dice = smp.losses.DiceLoss("multiclass", ignore_index=255)
    gen = torch.Generator().manual_seed(seed)
    loader = DataLoader(SegTorchDataset(ds, train_ids), batch_size=batch, shuffle=True, generator=gen)
    # The engine's "cosine": per batch down to 1% of the rate, so the last epoch is a settled model.
    sched = (torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs * len(loader), eta_min=lr * 0.01)
             if schedule == "cosine" else None)
    seen, train_time = 0, 0.0
    for _ in range(epochs):
        model.train()
        t0 = time.perf_counter()
        for x, y in loader:
            x, y = (x.to(device) - mean) / std, y.to(device)
            out = model(x)
            loss = focal(out, y) + dice(out, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            if sched is not None:
                sched.step()
            seen += len(x)
        if device.type == "cuda":
            torch.cuda.synchronize()
        train_time += time.perf_counter() - t0
    model.eval()
    cm = ConfusionMatrix(5)
    with torch.no_grad():
        for x, y in DataLoader(SegTorchDataset(ds, val_ids), batch_size=batch):
            cm.update(model((x.to(device) - mean) / std).argmax(1), y.to(device))
    names = [ds.class_map.name_of(c) for c in range(5)]
    return seen / train_time, scores(cm.numpy(), names)


def engine_run(data, train_ids, val_ids, arch, encoder, epochs, batch, lr, device, seed, out, schedule="none",
               weights=None):
    cfg = TrainConfig(data=str(data), train_ids=train_ids, val_ids=val_ids, arch=arch, encoder=encoder,
                      encoder_weights=weights,
                      epochs=epochs, batch_size=batch, lr=lr, sampler="uniform", scheduler=schedule, grad_clip=0,
                      patience=0, loss="focal+dice", device=str(device), seed=seed, leave_out_excluded=False)
    result = train(cfg, run_dir=out)
    from seglib.train import RunFolder

    history = RunFolder(out).read_history()
    seen = sum(r["images_per_s"] * r["train_time"] for r in history)
    last = history[-1]
    return seen / sum(r["train_time"] for r in history), last, result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=600)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--arch", default="Unet")
    ap.add_argument("--encoder", default="resnet18")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seeds", type=int, default=3, help="repeat both loops with this many seeds")
    ap.add_argument("--schedule", choices=["none", "cosine"], default="none",
                    help="learning-rate schedule of both loops (cosine: the last epoch varies less with the seed)")
    ap.add_argument("--defaults", action="store_true", help="also train the default config and a SegFormer")
    ap.add_argument("--encoder-weights", help="pretrained weights smp lists (imagenet, ...), from the HF cache")
    ap.add_argument("--make-cache", action="store_true",
                    help="put random weights into a temporary HF cache under that name first (no internet)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    tmp = Path(tempfile.mkdtemp(prefix="bench-train-"))
    os.environ.setdefault("SEGLIB_DATA_DIR", str(tmp / "data"))
    if args.encoder_weights and args.make_cache:
        make_cache(args.encoder, args.encoder_weights, tmp / "hf-hub")
    data = tmp / "demo.npz"
    write_demo(data, n=args.n, seed=0, n_test=0)
    ds = open_dataset(data)
    ids = ds.labeled_ids
    rng = np.random.default_rng(0)
    val_ids = sorted(rng.choice(ids, size=len(ids) // 10, replace=False).tolist())
    train_ids = [i for i in ids if i not in set(val_ids)]
    print(f"{args.arch}/{args.encoder}, {len(train_ids)} train / {len(val_ids)} val images 64x128, batch {args.batch}, "
          f"{args.epochs} epochs, schedule {args.schedule}, weights {args.encoder_weights or 'random'}, {device}, "
          f"torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads")

    # Warm up both paths once (first convolutions allocate and pick kernels).
    bare_loop(ds, train_ids[: args.batch * 2], val_ids[:4], args.arch, args.encoder, 1, args.batch, args.lr, device, 0,
              weights=args.encoder_weights)
    bare, eng = [], []
    for seed in range(args.seeds):  # short runs vary with the seed: compare means, not one draw
        ips, sc = bare_loop(ds, train_ids, val_ids, args.arch, args.encoder, args.epochs, args.batch, args.lr,
                            device, seed, args.schedule, args.encoder_weights)
        bare.append((ips, sc["miou"], sc["miou_no_bg"]))
        ips, last, _ = engine_run(data, train_ids, val_ids, args.arch, args.encoder, args.epochs, args.batch,
                                  args.lr, device, seed, tmp / f"run-engine-{seed}", args.schedule,
                                  args.encoder_weights)
        eng.append((ips, last["miou"], last["miou_no_bg"]))
        print(f"seed {seed}: bare {bare[-1][0]:6.1f} img/s mIoU {bare[-1][1]:.4f} | "
              f"engine {eng[-1][0]:6.1f} img/s mIoU {eng[-1][1]:.4f}", flush=True)
    b, e = np.array(bare), np.array(eng)
    print(f"bare loop : {b[:, 0].mean():7.1f} img/s   val mIoU {b[:, 1].mean():.4f} +- {b[:, 1].std():.4f}  "
          f"(no bg {b[:, 2].mean():.4f})")
    print(f"engine    : {e[:, 0].mean():7.1f} img/s   val mIoU {e[:, 1].mean():.4f} +- {e[:, 1].std():.4f}  "
          f"(no bg {e[:, 2].mean():.4f})")
    print(f"throughput ratio engine/bare = {e[:, 0].mean() / b[:, 0].mean():.3f}   (want >= 0.95)")
    print(f"mean mIoU difference engine-bare = {e[:, 1].mean() - b[:, 1].mean():+.4f}   (want within 0.02)")

    if args.defaults:
        for label, over in [("default (Unet/resnet18, focal+dice, oversample rare)", {}),
                            ("SegFormer/mit_b0", {"arch": "Segformer", "encoder": "mit_b0"})]:
            t0 = time.perf_counter()
            cfg = TrainConfig(data=str(data), epochs=args.epochs, device=str(device), leave_out_excluded=False, **over)
            res = train(cfg, run_dir=tmp / f"run-{over.get('arch', 'default')}")
            v = res["val"]
            per = ", ".join(f"{k} {x:.3f}" if x is not None else f"{k} -" for k, x in v["per_class_iou"].items())
            print(f"{label}: {time.perf_counter() - t0:.0f} s, best epoch {res['best_epoch']}, "
                  f"mIoU {v['miou']:.4f}, no bg {v['miou_no_bg']:.4f}; {per}")


if __name__ == "__main__":
    main()
