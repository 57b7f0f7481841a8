"""A small copy of the public "Semantic segmentation of aerial imagery" layout, as its users get it:
"Tile N/images/*.jpg" + "Tile N/masks/*.png" (RGB colour masks) and a Supervisely classes.json
whose six colours are none of the six colours the masks use (the generator idea of
bench/bench_stats_large.py's ``make_tiles``, at a few dozen pixels a side so tests stay fast)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

# The masks' real colours, most pixels first (bands of these shares, top to bottom).
MASK_COLOURS = {"Land (unpaved area)": "#8429F6", "Building": "#3C1098", "Road": "#6EC1E4",
                "Vegetation": "#FEDD3A", "Water": "#E2A929", "Unlabeled": "#9B9B9B"}
SHARES = (0.40, 0.20, 0.15, 0.12, 0.08, 0.05)
# The class file as shipped: the same classes in another order, each with a colour no mask uses.
FILE_CLASSES = [("Water", "#50E3C2"), ("Land (unpaved area)", "#F5A623"), ("Road", "#DE597F"),
                ("Building", "#D0021B"), ("Vegetation", "#417505"), ("Unlabeled", "#4A4A4A")]


def hex_rgb(colour: str) -> tuple[int, int, int]:
    return tuple(int(colour[k : k + 2], 16) for k in (1, 3, 5))


def band_labels(h: int, w: int) -> np.ndarray:
    """(h, w) indices into MASK_COLOURS: horizontal bands of about SHARES of the rows."""
    edges = np.round(np.cumsum((0,) + SHARES) * h).astype(int)
    rows = np.searchsorted(edges[1:], np.arange(h), side="right")
    return np.broadcast_to(np.minimum(rows, len(SHARES) - 1)[:, None], (h, w)).astype(np.uint8)


def write_aerial(root: Path, sizes=((40, 60), (50, 40)), per_tile: int = 2, class_file: bool = True) -> Path:
    """Tiles of ``per_tile`` images each, one image per size in ``sizes`` (H, W) in turn."""
    rng = np.random.default_rng(0)
    rgb = np.array([hex_rgb(c) for c in MASK_COLOURS.values()], np.uint8)
    for k, (h, w) in enumerate(sizes):
        tile = root / f"Tile {k // per_tile + 1}"
        (tile / "images").mkdir(parents=True, exist_ok=True)
        (tile / "masks").mkdir(parents=True, exist_ok=True)
        name = f"image_part_{k % per_tile + 1:03d}"
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(tile / "images" / f"{name}.jpg")
        Image.fromarray(rgb[band_labels(h, w)]).save(tile / "masks" / f"{name}.png")
    if class_file:
        (root / "classes.json").write_text(json.dumps({"classes": [
            {"id": 9501230 + n, "title": t, "shape": "polygon", "color": c, "geometry_config": {}}
            for n, (t, c) in enumerate(FILE_CLASSES)]}))
    return root


def pixels_of(sizes, name: str) -> int:
    """Pixels of MASK_COLOURS[name] over images of ``sizes``."""
    k = list(MASK_COLOURS).index(name)
    return sum(int((band_labels(h, w) == k).sum()) for h, w in sizes)
