"""How many clicks does each one-click tool of the Label page need to segment an object?

The standard click simulator (seglib.edit.clicks: each next click at the interior point of the
largest error region farthest from its boundary, positive or negative by its side) clicks on
objects of datasets made here or at hand, for each brush-free tool:

  superpixels   SLIC regions of about 16 px; a positive click adds the region under it, a negative one removes it
  wand          the Fill tool by colour (tolerance 12): adds / removes the 4-connected pixels of about that colour
  model assist  Snap to model: a click inside a region where a trained run (a quick U-Net trained on the set's
                other images) disagrees with the mask takes the model's answer there
  SAM 2         transformers' Sam2Model from the Hugging Face cache, each click refining the last mask
                (only when real weights are cached: random weights say nothing about clicks)

and prints NoC@85, NoC@90 (mean clicks to reach 85% / 90% IoU; an object that never does counts
20) and the share of objects never reaching 90% within 20 clicks. Then the latency of SAM 2
hiera-tiny on this machine's CPU (the image embedding, then each click) on a 480x360 and a
2000x1500 image, with the real architecture (random weights when the download is impossible).

Objects: connected components (8-connected, at least 64 px) of the object classes, in images
the assist model never saw. Sets: demo (the 64x128 terrain's classes other than background),
membrane (the ISBI 2012 cells, when ../shared/datasets/isbi2012_membrane is present), street
(480x360 frames: buildings, cars, poles, trees) and aerial (256x256: buildings, trees, ponds).

    .venv/bin/python bench/bench_clicks.py            # every set, 40 objects each, ~15 min on 2 CPU cores
    .venv/bin/python bench/bench_clicks.py --quick    # 10 objects a set, shorter training: a few minutes
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from click_sets import STREET_CLASSES, street_scenes  # noqa: E402
from label_error_sets import AERIAL_CLASSES, aerial_scenes  # noqa: E402

from seglib.edit import clicks, sam, superpixels, wand  # noqa: E402

MEMBRANE = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "isbi2012_membrane" / "data" / \
    "membrane" / "train"
MIN_AREA = 64


# --- the sets ------------------------------------------------------------------------------------
def demo_set(n: int, seed: int):
    from seglib.data.demo import clean_terrain

    images, masks = clean_terrain(n, seed)
    return images, masks, None, [c for c in np.unique(masks) if c != 0]


def membrane_set(n: int, seed: int):
    if not MEMBRANE.is_dir():
        return None
    files = sorted((MEMBRANE / "image").glob("*.png"))[:n]
    images = np.stack([cv2.imread(str(f), cv2.IMREAD_GRAYSCALE) for f in files])
    masks = np.stack([(cv2.imread(str(MEMBRANE / "label" / f.name), cv2.IMREAD_GRAYSCALE) > 127).astype(np.uint8)
                      for f in files])
    return images, masks, ["membrane", "cell"], [1]


def street_set(n: int, seed: int):
    images, masks = street_scenes(n, seed)
    return images, masks, STREET_CLASSES, [1, 4, 5, 6]


def aerial_set(n: int, seed: int):
    images, masks = aerial_scenes(n, seed, size=256)
    return images, masks, AERIAL_CLASSES, [1, 3, 5]


SETS = {"demo": (demo_set, 300), "membrane": (membrane_set, 30), "street": (street_set, 120),
        "aerial": (aerial_set, 160)}


def objects_of(masks: np.ndarray, ids: list[int], classes: list[int], limit: int, seed: int) -> list[tuple]:
    """(image index, class, bool mask) of objects in images ``ids``, at most ``limit``, sampled."""
    found = []
    for i in ids:
        for c in classes:
            n, comp, stats, _ = cv2.connectedComponentsWithStats((masks[i] == c).astype(np.uint8), connectivity=8)
            found += [(i, int(c), k) for k in range(1, n) if stats[k, cv2.CC_STAT_AREA] >= MIN_AREA]
    rng = np.random.default_rng(seed)
    picked = [found[k] for k in sorted(rng.choice(len(found), min(limit, len(found)), replace=False))]
    out = []
    for i, c, k in picked:
        _, comp = cv2.connectedComponents((masks[i] == c).astype(np.uint8), connectivity=8)
        out.append((i, c, comp == k))
    return out


# --- the assist model ----------------------------------------------------------------------------
def assist_predictions(images, masks, names, train_ids, eval_ids, epochs: int, root: Path) -> dict[int, np.ndarray]:
    """A quick U-Net trained on ``train_ids``; its predictions of ``eval_ids``."""
    from seglib.data import open_dataset
    from seglib.predict import dataset_layout, open_members, predict
    from seglib.train import TrainConfig, train

    path = root / "set.npz"
    np.savez(path, images=images, masks=masks)
    if names:
        path.with_name("set.classes.json").write_text(json.dumps([{"id": i, "name": n} for i, n in enumerate(names)]))
    ds = open_dataset(str(path))
    ids = list(ds.ids)
    val = [ids[i] for i in train_ids[-max(2, len(train_ids) // 10):]]
    cfg = TrainConfig.quick(str(path), train_ids=[ids[i] for i in train_ids], val_ids=val, epochs=epochs,
                            batch_size=8, max_steps_per_epoch=40)
    train(cfg, root / "run", callbacks=())
    layout = dataset_layout(ds)
    members, problems = open_members([root / "run"], layout)
    assert members, problems
    pred = predict(ds, members, ids=[ids[i] for i in eval_ids], device="cpu", use_cache=False, layout=layout)
    column = pred.columns[members[0].name]
    return {i: np.asarray(column.mask(ids[i])) for i in eval_ids}


def snap_tool(model: np.ndarray):
    """Snap to model on one object (``model``: the run's pixels of the object's class): a click
    in a 4-connected region where the mask and the model disagree takes the model's answer there."""
    state = {"mask": None}

    def tool(cs) -> np.ndarray:
        if len(cs) == 1 or state["mask"] is None:
            state["mask"] = np.zeros(model.shape, bool)
        m = state["mask"]
        c = cs[-1]
        differ = (m != model).astype(np.uint8)
        if differ[c.y, c.x]:
            _, comp = cv2.connectedComponents(differ, connectivity=4)
            where = comp == comp[c.y, c.x]
            m[where] = model[where]
        return m.copy()
    return tool


# --- one set -------------------------------------------------------------------------------------
def run_set(name: str, args, segmenter) -> dict | None:
    make, n = SETS[name]
    made = make(max(20, n // (2 if args.quick else 1)), args.seed)
    if made is None:
        print(f"[{name}] skipped: {MEMBRANE} is not here")
        return None
    images, masks, names, classes = made
    k = len(images)
    train_ids, eval_ids = list(range(int(k * 0.7))), list(range(int(k * 0.7), k))
    objs = objects_of(masks, eval_ids, classes, args.objects, args.seed)
    print(f"[{name}] {k} images {images.shape[1]}x{images.shape[2]}, {len(objs)} objects "
          f"(median {int(np.median([o[2].sum() for o in objs]))} px)", flush=True)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        preds = assist_predictions(images, masks, names, train_ids, eval_ids, args.epochs, Path(tmp))
    print(f"[{name}] assist model trained and predicted in {time.perf_counter() - t0:.0f} s", flush=True)
    seg_cache: dict[int, np.ndarray] = {}
    tools = {
        "superpixels": lambda i, c: superpixels.click_tool(
            seg_cache.setdefault(i, superpixels.superpixels(images[i], size=16))),
        "wand": lambda i, c: wand.click_tool(images[i], wand.DEFAULT_TOLERANCE),
        "model assist": lambda i, c: snap_tool(preds[i] == c),
    }
    if segmenter is not None:
        tools["SAM 2"] = lambda i, c: segmenter.click_tool(images[i], f"{name}/{i}")
    table = {}
    for tool_name, make_tool in tools.items():
        results = [clicks.clicks_to_iou(make_tool(i, c), truth, max_clicks=clicks.MAX_CLICKS) for i, c, truth in objs]
        table[tool_name] = clicks.summarise(results)
        row = table[tool_name]
        print(f"[{name}] {tool_name:<13} NoC@85 {row['noc@85']:5.2f}  NoC@90 {row['noc@90']:5.2f}  "
              f"never 90% in 20: {row['failed@90']:.0%}  ({row['ms_per_click']:.1f} ms a click)", flush=True)
    return {"images": k, "size": list(images.shape[1:3]), "objects": len(objs), "tools": table}


def sam_latency(segmenter: sam.Segmenter, repeats: int = 5) -> dict:
    """Seconds for the image embedding (once per image window), then per click, on a 480x360 and a
    2000x1500 image (whose window is a 1024 px square around the click)."""
    rng = np.random.default_rng(0)
    out = {}
    for h, w in ((360, 480), (1500, 2000)):
        image = (rng.random((h, w, 3)) * 255).astype(np.uint8)
        cl = [clicks.Click(w // 2, h // 2, True)]
        start = time.perf_counter()
        first = segmenter.segment(image, f"lat{h}", cl)
        embed_and_click = time.perf_counter() - start
        times = []
        for r in range(repeats):
            more = cl + [clicks.Click(w // 2 + 20 * (r + 1), h // 2 + 10, bool(r % 2))]
            start = time.perf_counter()
            segmenter.segment(image, f"lat{h}", more, previous=first)
            times.append(time.perf_counter() - start)
        click = float(np.median(times))
        out[f"{w}x{h}"] = {"embedding_s": embed_and_click - click, "click_s": click, "window": list(first.window.shape)}
        print(f"SAM 2 {segmenter.name} on {segmenter.device}, {w}x{h}: image embedding "
              f"{embed_and_click - click:.2f} s (window {first.window.shape[1]}x{first.window.shape[0]}), "
              f"then {click * 1000:.0f} ms a click", flush=True)
    return out


def superpixel_latency() -> dict:
    """Seconds to cut a 480x360 and a 2000x1500 photo-like image into superpixels (once per image
    and setting; a click after that is a lookup)."""
    images, _ = street_scenes(1, 1)
    out = {}
    for w, h in ((480, 360), (2000, 1500)):
        image = cv2.resize(images[0], (w, h), interpolation=cv2.INTER_CUBIC)
        for method in superpixels.METHODS:
            start = time.perf_counter()
            superpixels.superpixels(image, size=16 if w == 480 else 32, method=method)
            out[f"{method} {w}x{h}"] = time.perf_counter() - start
            print(f"superpixels {method} on {w}x{h}: {out[f'{method} {w}x{h}']:.2f} s", flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sets", default=",".join(SETS), help=f"comma-separated, of {', '.join(SETS)}")
    ap.add_argument("--objects", type=int, default=40, help="objects clicked per set")
    ap.add_argument("--epochs", type=int, default=6, help="epochs of the assist model")
    ap.add_argument("--sam-model", default=sam.DEFAULT, help="the SAM 2 model to use when cached")
    ap.add_argument("--quick", action="store_true", help="10 objects a set, half the images, 3 epochs")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, help="write the results here")
    args = ap.parse_args()
    if args.quick:
        args.objects, args.epochs = min(args.objects, 10), min(args.epochs, 3)
    import torch

    torch.set_num_threads(max(1, os.cpu_count() or 1))
    segmenter = None
    if sam.cached_folder(args.sam_model) is not None:
        segmenter = sam.Segmenter.load(args.sam_model)
        print(f"SAM 2: {args.sam_model} from the Hugging Face cache, on {segmenter.device}")
    else:
        print(f"SAM 2: {args.sam_model} is not in the Hugging Face cache here (this machine cannot download it), so "
              "its clicks are not measured; its latency is, with the real architecture and random weights")
    results = {"sets": {}, "sam2_model": args.sam_model if segmenter else None}
    for name in [s for s in args.sets.split(",") if s]:
        if name not in SETS:
            raise SystemExit(f"--sets: {name!r} is not one of {', '.join(SETS)}")
        got = run_set(name, args, segmenter)
        if got:
            results["sets"][name] = got
    timed = segmenter or sam.Segmenter.random(device="cpu")
    results["sam2_latency"] = {"model": timed.name, "device": timed.device, **sam_latency(timed)}
    results["superpixel_seconds"] = superpixel_latency()
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
