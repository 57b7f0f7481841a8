"""Full-resolution inference by sliding windows (seglib.tiling): what blending costs, and how much
memory predicting a big photo takes.

    .venv/bin/python bench/bench_tiles.py                       # U-Net/resnet18, windows of 512, CPU
    .venv/bin/python bench/bench_tiles.py --window 256 --size 1500x1200 --memory 4000x3000,2000x1500
    .venv/bin/python bench/bench_tiles.py --device cuda --no-memory

Prints:
- the time ratio of a bare loop over the windows (crop, batch, forward, softmax: what the model
  costs anyway) to seglib's tiled inference over the same windows (plus Gaussian weights,
  accumulation into the probability map, normalisation), both in this process, alternated,
  best of --repeats each (want >= 0.90);
- for each --memory size, in a fresh process: the peak resident memory that
  ``seglib.predict.predict`` adds when it predicts one RGB image of that size with a U-Net on
  the CPU (a run trained on 512-px crops, so windows of 512; the model loaded before), next
  to what one window batch alone takes, the image as float32 and its probability map. Memory must grow with the
  image no faster than the probability map does; the rest is the window batch's activations.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from seglib.models import ModelSpec, build_model  # noqa: E402
from seglib.predict.infer import forward_probs  # noqa: E402
from seglib.tiling import InferencePlan, window_starts  # noqa: E402

CLASSES = 5


def _size(text: str) -> tuple[int, int]:
    """'WxH' -> (H, W)."""
    w, h = (int(v) for v in text.lower().split("x"))
    return h, w


def _status_mb(field: str) -> float:
    """VmRSS (resident now) or VmHWM (peak resident) of this process, from /proc (Linux). Not
    ru_maxrss: that survives exec, so a child started by a big parent would report the parent's."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _reset_peak() -> bool:
    """Start VmHWM again from the resident set now (Linux >= 4.0)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


# ---- 1. blending overhead --------------------------------------------------------------------

def bare_loop(model, image: torch.Tensor, window: int, overlap: float, batch: int) -> None:
    """The same windows through the same model, with nothing kept: the floor tiling is measured against."""
    _, _, h, w = image.shape
    wh, ww = min(window, h), min(window, w)
    spots = [(y, x) for y in window_starts(h, wh, overlap) for x in window_starts(w, ww, overlap)]
    for s in range(0, len(spots), batch):
        crops = torch.stack([image[0, :, y : y + wh, x : x + ww] for y, x in spots[s : s + batch]])
        torch.softmax(model(crops).float(), 1)


def overhead(args, device: torch.device) -> None:
    h, w = _size(args.size)
    model = build_model(ModelSpec("Unet", args.encoder, 3, CLASSES)).to(device).eval()
    image = torch.rand(1, 3, h, w, device=device)
    plan = InferencePlan("tile", args.window, args.overlap)
    n = len(window_starts(h, min(args.window, h), args.overlap)) * len(window_starts(w, min(args.window, w),
                                                                                     args.overlap))
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    bare, tiled = [], []
    with torch.no_grad():
        bare_loop(model, image[..., : min(h, args.window), : min(w, args.window)], args.window, args.overlap, 1)
        for _ in range(args.repeats):        # alternated, so a busy moment hurts both alike
            sync()
            t = time.perf_counter()
            bare_loop(model, image, args.window, args.overlap, args.batch)
            sync()
            bare.append(time.perf_counter() - t)
            t = time.perf_counter()
            forward_probs(model, image, plan=plan, window_batch=args.batch)
            sync()
            tiled.append(time.perf_counter() - t)
    print(f"tiled inference, U-Net/{args.encoder}, {w}x{h} image, {n} windows of {args.window} "
          f"(overlap {args.overlap}), {args.batch} per batch, {device}:")
    print(f"  bare loop over the windows  {min(bare):7.2f} s   (runs: {', '.join(f'{v:.2f}' for v in bare)})")
    print(f"  seglib tiled, blended       {min(tiled):7.2f} s   (runs: {', '.join(f'{v:.2f}' for v in tiled)})")
    print(f"  ratio bare / tiled          {min(bare) / min(tiled):7.3f}   (want >= 0.90)")


# ---- 2. peak memory of predicting one big image ---------------------------------------------

def make_case(root: Path, h: int, w: int, encoder: str, window: int) -> tuple[Path, Path]:
    """A folder with one RGB image of h x w and a classes.json, and a run folder of a U-Net
    (random weights) that says it trained on ``window``-px crops."""
    from PIL import Image

    from seglib.train.config import TrainConfig
    from seglib.train.runs import RunFolder

    data = root / f"data_{w}x{h}"
    data.mkdir(parents=True)
    classes = [{"id": k, "name": f"class{k}", "color": f"#{40 * k:02x}{255 - 40 * k:02x}80", "ignore": False}
               for k in range(CLASSES)]
    (data / "classes.json").write_text(json.dumps(classes))
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(data / "photo.png")
    run = RunFolder(root / "run")
    if not run.file("config.json").exists():
        spec = ModelSpec("Unet", encoder, 3, CLASSES)
        cfg = TrainConfig(data=str(data), arch="Unet", encoder=encoder,
                          resolved={"model": spec.to_dict(), "in_channels": 3, "num_classes": CLASSES,
                                    "class_map": classes, "input": {"mode": "crop", "size": window, "why": "bench"}})
        run.path.mkdir(parents=True, exist_ok=True)
        run.write_config(cfg.to_dict())
        torch.manual_seed(0)
        run.save_weights("best", build_model(spec).net.state_dict(), 1, {})
    return data, run.path


def memory_child(data: str, run: str, batch: int, window: int) -> None:
    """In a fresh process: the peak resident memory predict() adds for the one image of ``data``."""
    from seglib.data import open_dataset
    from seglib.predict import dataset_layout, open_members, predict

    torch.set_num_threads(max(1, torch.get_num_threads()))
    ds = open_dataset(data)
    members, problems = open_members([run], dataset_layout(ds))
    assert not problems, problems
    model = members[0].load("cpu")
    loaded = _status_mb("VmRSS")
    _reset_peak()
    with torch.no_grad():       # one window batch alone: what the windows cost whatever the image
        forward_probs(model, torch.rand(batch, 3, window, window))
    window_peak = _status_mb("VmHWM")
    reset = _reset_peak()
    before = _status_mb("VmRSS") if reset else window_peak
    t = time.perf_counter()
    pred = predict(ds, members, [], ds.ids, device="cpu", batch_size=batch, use_cache=False)
    seconds = time.perf_counter() - t
    after = _status_mb("VmHWM")
    h, w = pred.columns[members[0].name].mask(ds.ids[0]).shape
    print(json.dumps({"loaded_mb": loaded, "window_mb": window_peak - loaded, "before_mb": before,
                      "after_mb": after, "seconds": seconds, "h": h, "w": w,
                      "inference": pred.columns[members[0].name].info["inference"]}))


def memory(args) -> None:
    sizes = [_size(s) for s in args.memory.split(",")]
    print(f"peak memory of predict() on one RGB image, U-Net/{args.encoder} on the CPU, windows of {args.window}, "
          f"{args.batch} per batch, {CLASSES} classes ({torch.get_num_threads()} threads):")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for h, w in sizes:
            data, run = make_case(Path(tmp), h, w, args.encoder, args.window)
            env = {**os.environ, "SEGLIB_DATA_DIR": str(Path(tmp) / "seglib-data")}
            out = subprocess.run([sys.executable, __file__, "--child", str(data), str(run), "--batch", str(args.batch),
                                  "--window", str(args.window)],
                                 capture_output=True, text=True, env=env, check=False)
            if out.returncode:
                print(out.stderr[-2000:])
                raise SystemExit(f"the memory run of {w}x{h} failed")
            doc = json.loads(out.stdout.strip().splitlines()[-1])
            added = doc["after_mb"] - doc["before_mb"]
            image_mb = 3 * h * w * 4 / 2**20
            probs_mb = CLASSES * h * w * 4 / 2**20
            rows.append((h * w, added))
            print(f"  {w}x{h} ({h * w / 1e6:.1f} Mpx): resident with the model loaded {doc['loaded_mb']:,.0f} MB; "
                  f"one window batch alone peaks +{doc['window_mb']:,.0f} MB; predict() peaks +{added:,.0f} MB over "
                  f"the resident {doc['before_mb']:,.0f} MB, {doc['seconds']:.1f} s; image float32 "
                  f"{image_mb:,.0f} MB, probability map float32 {probs_mb:,.0f} MB; "
                  f"(added - window batch) / probability map = {(added - doc['window_mb']) / probs_mb:.2f}")
    if len(rows) >= 2:
        (a_px, a_mb), (b_px, b_mb) = rows[0], rows[-1]
        per_px = (a_mb - b_mb) / (a_px - b_px) * 2**20
        print(f"  growth with the image: {per_px:.1f} bytes per pixel (the float32 probability map alone is "
              f"{CLASSES * 4} bytes per pixel)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--window", type=int, default=512)
    p.add_argument("--overlap", type=float, default=0.25)
    p.add_argument("--batch", type=int, default=4, help="windows per forward call")
    p.add_argument("--encoder", default="resnet18")
    p.add_argument("--size", default="2000x1500", help="image for the overhead ratio, WxH")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--memory", default="4000x3000,2000x1500", help="images for the memory runs, WxH,...")
    p.add_argument("--no-memory", action="store_true")
    p.add_argument("--no-overhead", action="store_true")
    p.add_argument("--device", default="cpu")
    p.add_argument("--child", nargs=2, metavar=("DATA", "RUN"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        memory_child(*args.child, args.batch, args.window)
        return
    if not args.no_overhead:
        overhead(args, torch.device(args.device))
    if not args.no_memory:
        memory(args)


if __name__ == "__main__":
    main()
