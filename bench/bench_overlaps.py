"""Benchmark: the overlap detector on photos cut from big aerial scenes (issue 22's case).

Makes (in a temporary folder, or --keep DIR) N JPEG photos of 1500x1100 (quality 90) cut at
random offsets from S synthetic aerial scenes of 2,000-3,000 px a side (the texture of
tests/crop_datasets.aerial: luminance noise at four scales under a tint, small roofs), so each
photo shares pixels with ~N/S others of its scene and none with the rest. Then, each in a child
process that reports wall time and peak resident memory above what it held after its imports:

  decode    a plain pass: every photo decoded at the detector's working scale (PIL draft, 1/4), grey,
            nothing kept: the floor of any method that looks at the pixels
  overlaps  the detectors' shared pass, then the overlap detector (its own pass: ORB keypoints and
            thumbnails; LSH candidates, translations, the pixel check): pairs and groups found; peak
            memory after the shared pass and after both
  demo      the default demo (3,640 images 64x128): every other detector, then the overlap
            detector, and its flags against the demo's truth file

and scores the pairs found against the true placements: precision (a pair from two scenes is
wrong), recall of the pairs sharing >= 20% and >= 50% of a photo, offset error, groups vs scenes.

    .venv/bin/python bench/bench_overlaps.py [--n 350] [--sources 20] [--keep DIR] [--only decode,overlaps,demo]
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # crop_datasets: the scenes the tests cut small crops from
W, H = 1500, 1100


# --- the dataset -------------------------------------------------------------------------------
def make_dataset(root: Path, n: int, n_sources: int, seed: int = 0) -> dict:
    """N photos in ``root`` (ids ``src07_0123``) and their placements {id: [source, x, y]}."""
    from crop_datasets import aerial
    from PIL import Image

    rng = np.random.default_rng(seed)
    sizes = rng.integers(2000, 3001, (n_sources, 2))
    which = rng.integers(0, n_sources, n)
    root.mkdir(parents=True, exist_ok=True)
    placed = {}
    for s in range(n_sources):  # one scene in memory at a time
        w, h = (int(v) for v in sizes[s])
        scene = aerial(1000 + s, w, h)
        for k in np.flatnonzero(which == s):
            x, y = int(rng.integers(0, w - W + 1)), int(rng.integers(0, h - H + 1))
            name = f"src{s:02d}_{k:04d}"
            Image.fromarray(scene[y : y + H, x : x + W]).save(root / f"{name}.jpg", quality=90)
            placed[name] = [s, x, y]
    (root.parent / f"{root.name}.truth.json").write_text(json.dumps(placed))
    return placed


def share(placed: dict, a: str, b: str) -> float:
    (sa, xa, ya), (sb, xb, yb) = placed[a], placed[b]
    if sa != sb:
        return 0.0
    return max(0, W - abs(xa - xb)) * max(0, H - abs(ya - yb)) / (W * H)


# --- measurements in a child process -------------------------------------------------------------
def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _child(what: str, data: str) -> dict:
    out: dict = {}
    from seglib.data import open_dataset
    from seglib.outliers import detect, features
    from seglib.outliers.keypoints import working_factor
    from seglib.outliers.overlaps import find_overlaps
    from seglib.stats import compute_stats

    ds = open_dataset(data)
    stats = compute_stats(ds)
    base = _rss_mb()
    if what == "decode":
        from PIL import Image

        f = working_factor(stats.shape)
        t = time.perf_counter()
        for i in ds.ids:
            with Image.open(ds.file_of(i)) as im:
                im.draft("L", (im.size[0] // f, im.size[1] // f))
                im.convert("L").load()
        out["decode"] = time.perf_counter() - t
        out["factor"] = f
    elif what == "overlaps":
        t = time.perf_counter()
        features.features_for(ds, stats)
        out["shared_pass"] = time.perf_counter() - t
        out["peak_growth_after_shared_pass_mb"] = round(_peak_mb() - base, 1)
        t = time.perf_counter()
        o = find_overlaps(ds, stats)
        out["overlaps"] = time.perf_counter() - t
        out["pairs"] = [[o.ids[a], o.ids[b], float(dx), float(dy)] for a, b, dx, dy in zip(o.a, o.b, o.dx, o.dy,
                                                                                           strict=True)]
        out["groups"] = {i: int(g) for i, g in zip(o.ids, o.groups, strict=True)}
    elif what == "demo":
        from seglib.data.demo import truth_path
        from seglib.outliers import DETECTORS

        others = [n for n in DETECTORS if n != "overlap"]
        t = time.perf_counter()
        detect(ds, stats, detectors=others, use_cache=False)
        out["other_detectors"] = time.perf_counter() - t
        out["peak_growth_after_other_detectors_mb"] = round(_peak_mb() - base, 1)
        t = time.perf_counter()
        flags = detect(ds, stats, detectors=["overlap"], use_cache=False)
        out["overlap_detector"] = time.perf_counter() - t
        truth = json.loads(truth_path(data).read_text())
        every = {i for ids in truth.values() for i in ids}
        out["overlap_flags"] = len(flags)
        out["overlap_flags_outside_truth"] = len(set(flags.image_id) - every)
    else:
        raise SystemExit(f"unknown measurement {what}")
    out["peak_growth_mb"] = round(_peak_mb() - base, 1)
    return out


def measure(what: str, data: Path, env: dict) -> dict:
    res = subprocess.run([sys.executable, __file__, "--child", what, "--data", str(data)], env=env,
                         capture_output=True, text=True, cwd=ROOT)
    if res.returncode != 0:
        return {"error": res.stderr[-2000:]}
    return json.loads(res.stdout.strip().splitlines()[-1])


def score(placed: dict, found: dict) -> dict:
    """Pairs and groups found against the placements."""
    pairs = {(a, b): (dx, dy) for a, b, dx, dy in found["pairs"]}
    wrong = [p for p in pairs if share(placed, *p) == 0]
    offset_err = [abs(dx - (placed[a][1] - placed[b][1])) + abs(dy - (placed[a][2] - placed[b][2]))
                  for (a, b), (dx, dy) in pairs.items() if (a, b) not in wrong]
    truth = {}
    for a, b in itertools.combinations(sorted(placed), 2):
        if (s := share(placed, a, b)) > 0:
            truth[(a, b)] = s
    hit = lambda lo: np.mean([(p in pairs or p[::-1] in pairs) for p, s in truth.items() if s >= lo])  # noqa: E731
    groups, scene = found["groups"], {i: placed[i][0] for i in placed}
    members: dict[int, set] = {}
    for i, g in groups.items():
        members.setdefault(g, set()).add(scene[i])
    return {"pairs_found": len(pairs), "precision": 1 - len(wrong) / max(1, len(pairs)),
            "recall_share_ge_0.2": hit(0.2), "recall_share_ge_0.5": hit(0.5), "recall_any_overlap": hit(1e-9),
            "offset_error_max_px": max(offset_err, default=0.0),
            "groups_with_two_scenes": sum(len(v) > 1 for v in members.values()),
            "scenes_in_more_than_one_group": sum(len({groups[i] for i in placed if scene[i] == s}) > 1
                                                 for s in set(scene.values()))}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=350)
    ap.add_argument("--sources", type=int, default=20)
    ap.add_argument("--keep", default=None, help="make (or reuse) the photos in this folder")
    ap.add_argument("--only", default="decode,overlaps,demo")
    ap.add_argument("--child", default=None)
    ap.add_argument("--data", default=None)
    args = ap.parse_args()
    if args.child:
        print(json.dumps({k: round(v, 3) if isinstance(v, float) else v
                          for k, v in _child(args.child, args.data).items()}))
        return
    tmp = Path(tempfile.mkdtemp(prefix="bench-overlaps-"))
    data = Path(args.keep) if args.keep else tmp / "crops"
    truth_file = data.parent / f"{data.name}.truth.json"
    try:
        if not truth_file.exists() or len(json.loads(truth_file.read_text())) != args.n:
            t = time.perf_counter()
            shutil.rmtree(data, ignore_errors=True)
            make_dataset(data, args.n, args.sources)
            print(f"made {args.n} photos of {W}x{H} from {args.sources} scenes in {time.perf_counter() - t:.0f} s: "
                  f"{data}", file=sys.stderr)
        placed = json.loads(truth_file.read_text())
        results = {}
        for what in args.only.split(","):
            target = data
            if what == "demo":
                from seglib.data.demo import write_demo

                target = tmp / "demo" / "mars_demo.npz"
                target.parent.mkdir(exist_ok=True)
                write_demo(target, seed=0)
            env = {**os.environ, "SEGLIB_CACHE_DIR": str(tmp / f"cache-{what}"), "SEGLIB_DATA_DIR": str(tmp / "data"),
                   "NO_ALBUMENTATIONS_UPDATE": "1", "HF_HUB_OFFLINE": "1", "MPLBACKEND": "Agg"}
            results[what] = measure(what, target, env)
        if "overlaps" in results and "pairs" in results["overlaps"]:
            found = results["overlaps"]
            results["score"] = score(placed, found)
            found["pairs"], found["groups"] = len(found["pairs"]), len(set(found["groups"].values()))
        if "decode" in results and "overlaps" in results and "decode" in results["decode"]:
            results["ratio_overlap_pass_to_plain_decode"] = round(results["overlaps"]["overlaps"]
                                                                  / results["decode"]["decode"], 2)
        if "demo" in results and "overlap_detector" in results["demo"]:
            d = results["demo"]
            results["ratio_demo_overlap_to_other_detectors"] = round(d["overlap_detector"] / d["other_detectors"], 2)
        print(json.dumps(results, indent=1))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
