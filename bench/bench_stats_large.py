"""Benchmark: seglib stats on large images against one plain PIL decoding pass over the same files.

Makes, in a temporary folder (deleted at the end unless --keep):
  - photos: N (default 300) 1500x1100 JPEG photos with index PNG masks (6 classes);
  - tiles: 40 aerial-like tiles of mixed sizes (500..2100 px a side), JPEG images with colour
    masks, a Supervisely ``classes.json`` ({"classes": [{"title", "color"}]}), a quarter of the
    masks saved as palette PNGs whose palettes order the colours differently.
For each it prints, every figure measured in a fresh process (nothing warm from generating):
  - plain: every image and mask decoded once with PIL (np.asarray(Image.open(f))), one thread;
  - cold: open_dataset + compute_stats(use_cache=False), and its ratio to plain (wall clock and
    CPU time of all threads: on a shared machine the CPU ratio is the steadier one);
  - warm: open_dataset + compute_stats with the cache filled (what a page load or a second
    ``seglib stats`` pays), in seconds;
  - peak RSS growth of the cold pass (ru_maxrss after minus before), for all N photos and for
    a quarter of them: it must not grow with the number of images beyond per-image features.

    .venv/bin/python bench/bench_stats_large.py [--n 300] [--tiles 40] [--keep]
    .venv/bin/python bench/bench_stats_large.py --n 2000     # the README figure
"""
from __future__ import annotations

import argparse
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
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

COLOURS = {"Building": "#3C1098", "Land": "#8429F6", "Road": "#6EC1E4", "Vegetation": "#FEDD3A",
           "Water": "#E2A929", "Unlabeled": "#9B9B9B"}


def _field(rng, h: int, w: int, cells: int = 8) -> np.ndarray:
    """A smooth random (h, w) field in 0..255: a few random cells blown up bicubically."""
    small = Image.fromarray(rng.integers(0, 256, (cells, cells), dtype=np.uint8))
    return np.asarray(small.resize((w, h), Image.BICUBIC))


def _photo(rng, h: int, w: int) -> np.ndarray:
    base = np.stack([_field(rng, h, w) for _ in range(3)], -1).astype(np.int16)
    return np.clip(base + rng.integers(-12, 13, (h, w, 3), dtype=np.int16), 0, 255).astype(np.uint8)


def make_photos(root: Path, n: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i in range(n):
        h, w = 1100, 1500
        Image.fromarray(_photo(rng, h, w)).save(root / "images" / f"{i:05d}.jpg", quality=90)
        mask = (_field(rng, h, w, 6).astype(np.uint16) * 6 // 256).astype(np.uint8)
        Image.fromarray(mask).save(root / "masks" / f"{i:05d}.png")


def make_tiles(root: Path, n: int, seed: int = 1) -> None:
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    rgb = np.array([[int(c[k : k + 2], 16) for k in (1, 3, 5)] for c in COLOURS.values()], np.uint8)
    (root / "classes.json").write_text(json.dumps(
        {"classes": [{"title": t, "shape": "polygon", "color": c, "geometry_config": {}} for t, c in COLOURS.items()]}))
    for i in range(n):
        h, w = (int(v) for v in rng.integers(500, 2101, 2))
        Image.fromarray(_photo(rng, h, w)).save(root / "images" / f"tile_{i:03d}.jpg", quality=90)
        labels = (_field(rng, h, w, 5).astype(np.uint16) * len(rgb) // 256).astype(np.uint8)
        if i % 4 == 3:  # a palette PNG, its palette in another order than the class list
            order = rng.permutation(len(rgb))
            im = Image.fromarray(np.argsort(order).astype(np.uint8)[labels], "P")
            im.putpalette(rgb[order].ravel().tolist())
            im.save(root / "masks" / f"tile_{i:03d}.png")
        else:
            Image.fromarray(rgb[labels]).save(root / "masks" / f"tile_{i:03d}.png")


def _files(root: Path) -> list[Path]:
    return sorted(p for d in ("images", "masks") for p in (root / d).iterdir())


# --- measurements, each in a fresh process -------------------------------------------------
def _measure(what: str, root: str) -> dict:
    from seglib.data import open_dataset  # imported before the clocks start: not part of any figure
    from seglib.stats import compute_stats
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0, c0 = time.perf_counter(), time.process_time()
    out: dict = {}
    if what == "plain":
        for p in _files(Path(root)):
            with Image.open(p) as im:
                np.asarray(im)
    else:
        t_open = time.perf_counter()
        ds = open_dataset(root)
        out["open_s"] = time.perf_counter() - t_open
        stats = compute_stats(ds, use_cache=(what == "warm"))
        out.update(from_cache=stats.from_cache, n=len(stats.ids), classes=ds.class_map.names,
                   encoding=ds.encoding, problems=len(ds.report))
    out.update(wall_s=time.perf_counter() - t0, cpu_s=time.process_time() - c0,
               rss_growth_mb=(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0) / 1024)
    return out


def measure(what: str, root: Path, env: dict) -> dict:
    cmd = [sys.executable, __file__, "--measure", what, str(root)]
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def report(name: str, root: Path, env: dict) -> dict:
    plain = measure("plain", root, env)
    cold = measure("cold", root, env)
    warm = measure("warm", root, env)  # the cold run filled the cache
    mb = sum(p.stat().st_size for p in _files(root)) / 1e6
    print(f"{name}: {cold['n']} images, {mb:.0f} MB, {cold['encoding']} masks, classes {cold['classes']}")
    print(f"  plain PIL pass     {plain['wall_s']:7.2f} s   cpu {plain['cpu_s']:7.2f} s")
    print(f"  stats cold         {cold['wall_s']:7.2f} s   cpu {cold['cpu_s']:7.2f} s   "
          f"ratio {cold['wall_s'] / plain['wall_s']:.2f}x wall, {cold['cpu_s'] / plain['cpu_s']:.2f}x cpu   "
          f"(open {cold['open_s']:.2f} s)   peak RSS +{cold['rss_growth_mb']:.0f} MB")
    print(f"  stats warm         {warm['wall_s']:7.2f} s   (open {warm['open_s']:.2f} s, cache hit: "
          f"{warm['from_cache']})")
    return cold


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=300, help="1500x1100 photos (default 300; 2000 for the README)")
    ap.add_argument("--tiles", type=int, default=40, help="colour-mask tiles (default 40)")
    ap.add_argument("--keep", action="store_true", help="keep the generated data (the path is printed)")
    ap.add_argument("--measure", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.measure:
        print(json.dumps(_measure(*args.measure)))
        return
    tmp = Path(tempfile.mkdtemp(prefix="bench-stats-large-"))
    env = dict(os.environ, SEGLIB_DATA_DIR=str(tmp / "seglib"), SEGLIB_CACHE_DIR=str(tmp / "cache"))
    try:
        t = time.perf_counter()
        make_tiles(tmp / "tiles", args.tiles)
        make_photos(tmp / "photos", args.n)
        quarter = tmp / "photos_quarter"
        for d in ("images", "masks"):
            (quarter / d).mkdir(parents=True)
            for p in sorted((tmp / "photos" / d).iterdir())[: max(1, args.n // 4)]:
                os.link(p, quarter / d / p.name)
        print(f"generated in {time.perf_counter() - t:.0f} s under {tmp}\n")
        report("colour tiles", tmp / "tiles", env)
        full = report("photos", tmp / "photos", env)
        part = measure("cold", quarter, env)
        print(f"  peak RSS growth of a cold pass: +{part['rss_growth_mb']:.0f} MB for {part['n']} photos, "
              f"+{full['rss_growth_mb']:.0f} MB for {full['n']}")
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
