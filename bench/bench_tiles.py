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
  to what one forward call of the windows alone takes (as many windows as predict() gives one call:
  ``seglib.predict.infer.per_call``, on a CPU 2 of 512 whatever --batch), the image as float32 and its
  probability map. Memory must grow with the image no faster than the probability map does; the rest is
  the window batch's activations;
- the Compare page's pass (``--compare``, issue 22): 8 photos up to 3.7 MP with masks, two runs
  (U-Net/mobilenet_v2 and U-Net/resnet18, random weights, trained on 512-px crops) and their mean
  ensemble through the library call the page makes (``predict`` of the runs' shared validation
  images, then ``Comparison``), in a fresh process: the peak resident memory above the process
  with the models loaded, what stays resident after it, what the per-image table adds; and the
  ratio of the peak to the float32 probability map of the largest photo;
- one 20 MP drone photo (``--drone``, 5472x3648 RGB): one run, then two runs and their mean
  ensemble, the same way (want well under 2 GB above the resident process).
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
from seglib.predict.infer import forward_probs, per_call  # noqa: E402
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
    with torch.no_grad():       # one forward call of windows alone: what the windows cost whatever the image
        forward_probs(model, torch.rand(per_call("cpu", batch, window * window), 3, window, window))
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
          f"batch size {args.batch} ({per_call('cpu', args.batch, args.window ** 2)} windows a call), "
          f"{CLASSES} classes ({torch.get_num_threads()} threads):")
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
                  f"one forward call of windows alone peaks +{doc['window_mb']:,.0f} MB; predict() peaks "
                  f"+{added:,.0f} MB over "
                  f"the resident {doc['before_mb']:,.0f} MB, {doc['seconds']:.1f} s; image float32 "
                  f"{image_mb:,.0f} MB, probability map float32 {probs_mb:,.0f} MB; "
                  f"(added - window batch) / probability map = {(added - doc['window_mb']) / probs_mb:.2f}")
    if len(rows) >= 2:
        (a_px, a_mb), (b_px, b_mb) = rows[0], rows[-1]
        per_px = (a_mb - b_mb) / (a_px - b_px) * 2**20
        print(f"  growth with the image: {per_px:.1f} bytes per pixel (the float32 probability map alone is "
              f"{CLASSES * 4} bytes per pixel)")


# ---- 3. the Compare page's pass over big photos (issue 22) -----------------------------------

# The held-out aerial validation tiles of issue 22: 8 photos, the largest 3.7 MP.
COMPARE_SIZES = "1817x2061,2149x1479,1900x1700,2000x1500,1600x1600,1800x1300,1500x1400,1200x1100"
DRONE_SIZE = "5472x3648"


def scene(h: int, w: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A smooth RGB scene (h, w, 3) and its mask of CLASSES classes (regions of a few hundred px)."""
    import cv2

    rng = np.random.default_rng(seed)
    field = cv2.resize(rng.uniform(0, 1, (max(2, h // 300), max(2, w // 300))).astype(np.float32), (w, h),
                       interpolation=cv2.INTER_CUBIC)
    mask = np.digitize(field, np.linspace(0.15, 0.85, CLASSES - 1)).astype(np.uint8)
    colors = rng.uniform(30, 220, (CLASSES, 3)).astype(np.float32)
    image = colors[mask] * (0.8 + 0.4 * field[..., None])
    return np.clip(image, 0, 255).astype(np.uint8), mask


def _run_folder(path: Path, data: Path, encoder: str, window: int, val_ids: list[str], seed: int) -> Path:
    """A run folder of a U-Net with random weights that trained on ``window``-px crops of ``data``
    and kept ``val_ids`` for validation (so the page's "validation images" split holds them all)."""
    from seglib.train.config import TrainConfig
    from seglib.train.runs import RunFolder

    classes = json.loads((data / "classes.json").read_text())
    run = RunFolder(path)
    spec = ModelSpec("Unet", encoder, 3, CLASSES)
    cfg = TrainConfig(data=str(data), arch="Unet", encoder=encoder, val_ids=val_ids,
                      resolved={"model": spec.to_dict(), "in_channels": 3, "num_classes": CLASSES,
                                "class_map": classes, "input": {"mode": "crop", "size": window, "why": "bench"}})
    run.path.mkdir(parents=True, exist_ok=True)
    run.write_config(cfg.to_dict())
    torch.manual_seed(seed)
    run.save_weights("best", build_model(spec).net.state_dict(), 1, {})
    return run.path


def make_photos(root: Path, sizes: list[tuple[int, int]], encoders: list[str], window: int) -> tuple[Path, list[Path]]:
    """A folder of JPEG photos of ``sizes`` (H, W) with PNG masks and a classes.json, and one run
    folder per encoder that kept all of them for validation."""
    from PIL import Image

    data = root / "photos"
    (data / "images").mkdir(parents=True)
    (data / "masks").mkdir()
    classes = [{"id": k, "name": f"class{k}", "color": f"#{40 * k:02x}{255 - 40 * k:02x}80", "ignore": False}
               for k in range(CLASSES)]
    (data / "classes.json").write_text(json.dumps(classes))
    ids = []
    for k, (h, w) in enumerate(sizes):
        image, mask = scene(h, w, k)
        ids.append(f"tile{k:02d}")
        Image.fromarray(image).save(data / "images" / f"{ids[-1]}.jpg", quality=90)
        Image.fromarray(mask).save(data / "masks" / f"{ids[-1]}.png")
    runs = [_run_folder(root / f"run_{enc}", data, enc, window, ids, seed) for seed, enc in enumerate(encoders)]
    return data, runs


def compare_child(data: str, runs: list[str]) -> None:
    """In a fresh process: the peak resident memory of the Compare page's pass over ``data``
    (ui/compare.py's ``comparison``: predict the runs' shared validation images with the runs and
    their mean ensemble, the library's default batch size, the disk cache on; then Comparison),
    above the process with the models loaded; then what the per-image table adds."""
    import gc

    from seglib.data import open_dataset
    from seglib.predict import Comparison, Ensemble, dataset_layout, open_members, predict, shared_val_ids
    from seglib.predict.prob_cache import PROBS

    ds = open_dataset(data)
    lay = dataset_layout(ds)
    members, problems = open_members(runs, lay, source="this dataset")
    assert not problems, problems
    names = tuple(m.name for m in members)
    ensembles = [Ensemble("mean", names, name="mean ensemble")] if len(names) >= 2 else []
    ids = shared_val_ids(members, ds)
    fingerprint = ds.fingerprint()
    window = members[0].config.resolved["input"]["size"]
    with torch.no_grad():   # a resident app has run its models before: their first call's one-off memory
        for m in members:
            forward_probs(m.load("cpu"), torch.rand(1, 3, window, window))
    gc.collect()
    before = _status_mb("VmRSS")
    _reset_peak()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    t = time.perf_counter()
    cmp = Comparison(predict(ds, members, ensembles, ids, tta=False, layout=lay, fingerprint=fingerprint,
                             tile=None, progress=lambda done, total: None))
    seconds = time.perf_counter() - t
    peak = _status_mb("VmHWM")
    after = resource.getrusage(resource.RUSAGE_SELF)
    gc.collect()
    held = _status_mb("VmRSS")
    _reset_peak()
    cmp.per_image()
    table_peak = _status_mb("VmHWM") - held
    pixels = [cmp.columns[names[0]].shapes.prod(1).max()] if ids else [0]
    print(json.dumps({"before_mb": before, "peak_mb": peak - before, "held_mb": held - before,
                      "probs_held_mb": PROBS.nbytes / 2**20, "table_mb": table_peak, "seconds": seconds,
                      "images": len(cmp.ids), "columns": len(cmp.names), "largest_px": int(max(pixels)),
                      "user_s": after.ru_utime - usage.ru_utime, "sys_s": after.ru_stime - usage.ru_stime,
                      "faults": after.ru_minflt - usage.ru_minflt,
                      "threads": torch.get_num_threads()}))


def _compare_run(args, tmp: Path, sizes: list[tuple[int, int]], encoders: list[str], what: str) -> dict:
    case = tmp / f"case{len(list(tmp.iterdir()))}"
    data, runs = make_photos(case, sizes, encoders, args.window)
    env = {**os.environ, "SEGLIB_DATA_DIR": str(case / "seglib-data")}
    out = subprocess.run([sys.executable, __file__, "--compare-child", str(data), ",".join(map(str, runs))],
                         capture_output=True, text=True, env=env, check=False)
    if out.returncode:
        print(out.stderr[-3000:])
        raise SystemExit(f"the Compare-like run ({what}) failed")
    doc = json.loads(out.stdout.strip().splitlines()[-1])
    probs_mb = CLASSES * doc["largest_px"] * 4 / 2**20
    print(f"  {what}: {doc['images']} images x {doc['columns']} columns, {doc['seconds']:.0f} s (CPU user "
          f"{doc['user_s']:.0f} s, system {doc['sys_s']:.1f} s, {doc['faults'] / 1e6:.2f}M page faults): peak "
          f"+{doc['peak_mb']:,.0f} MB over the resident {doc['before_mb']:,.0f} MB (models loaded); "
          f"+{doc['held_mb']:,.0f} MB stays resident after (held probabilities {doc['probs_held_mb']:,.0f} MB); "
          f"per-image table +{doc['table_mb']:,.0f} MB; peak / float32 probability map of the largest image "
          f"({probs_mb:,.0f} MB) = {doc['peak_mb'] / probs_mb:.1f}")
    return doc


def compare(args) -> None:
    encoders = args.encoders.split(",")
    print(f"the Compare page's pass (predict + Comparison), U-Net/{' and U-Net/'.join(encoders)} on the CPU, "
          f"random weights trained on {args.window}-px crops, {CLASSES} classes, "
          f"{torch.get_num_threads()} threads:")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if args.compare:
            sizes = [_size(s) for s in args.compare.split(",")]
            largest = max(h * w for h, w in sizes) / 1e6
            _compare_run(args, tmp, sizes, encoders, f"{len(sizes)} photos up to {largest:.1f} MP, "
                                                     f"{len(encoders)} runs + mean")
        if args.drone:
            h, w = _size(args.drone)
            _compare_run(args, tmp, [(h, w)], encoders[:1], f"one {w}x{h} photo ({h * w / 1e6:.0f} MP), 1 run")
            if len(encoders) >= 2:
                _compare_run(args, tmp, [(h, w)], encoders, f"one {w}x{h} photo, {len(encoders)} runs + mean")


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
    p.add_argument("--compare", default=COMPARE_SIZES, help="photos of the Compare-like pass, WxH,... ('': none)")
    p.add_argument("--drone", default=DRONE_SIZE, help="one big photo, WxH ('': none)")
    p.add_argument("--encoders", default="mobilenet_v2,resnet18", help="the runs of the Compare-like passes")
    p.add_argument("--no-overhead", action="store_true")
    p.add_argument("--device", default="cpu")
    p.add_argument("--child", nargs=2, metavar=("DATA", "RUN"), help=argparse.SUPPRESS)
    p.add_argument("--compare-child", nargs=2, metavar=("DATA", "RUNS"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        memory_child(*args.child, args.batch, args.window)
        return
    if args.compare_child:
        compare_child(args.compare_child[0], args.compare_child[1].split(","))
        return
    if not args.no_overhead:
        overhead(args, torch.device(args.device))
    if not args.no_memory:
        memory(args)
    if args.compare or args.drone:
        compare(args)


if __name__ == "__main__":
    main()
