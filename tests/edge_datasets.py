"""Small edge-case datasets for the robustness matrix (tests/test_robustness_*.py).

``EDGE_DATASETS`` maps a name to a builder ``build(root: Path) -> Path`` that writes a tiny folder
dataset (``images/`` + ``masks/``, a ``classes.json`` where the case needs one) under ``root`` and
returns its path. ``normal`` is the reference: the same three classes, grey 32x64 images; the tiny
run that evaluate/predict use in the CLI matrix is trained on it.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

H, W = 32, 64
# background, thing, and a void class that metrics and losses skip (CamVid's "unlabelled").
CLASSES = [{"id": 0, "name": "background", "color": "#000000"},
           {"id": 1, "name": "thing", "color": "#E6194B"},
           {"id": 2, "name": "void", "color": "#808080", "ignore": True}]


def _grey(seed: int, h: int = H, w: int = W) -> np.ndarray:
    rng = np.random.default_rng(seed)
    ramp = np.linspace(40, 200, w, dtype=np.float32)[None, :].repeat(h, 0)
    return np.clip(ramp + rng.normal(0, 12, (h, w)), 0, 255).astype(np.uint8)


def _mask(seed: int, h: int = H, w: int = W, void: bool = True) -> np.ndarray:
    """Background with a 'thing' rectangle and, if ``void``, a strip of the ignore class."""
    rng = np.random.default_rng(1000 + seed)
    m = np.zeros((h, w), np.uint8)
    y, x = int(rng.integers(0, h // 2)), int(rng.integers(0, w // 2))
    m[y : y + h // 3, x : x + w // 3] = 1
    if void:
        m[-2:, :] = 2
    return m


def _folders(root: Path, classes: list[dict] | None = CLASSES, masks: bool = True) -> Path:
    (root / "images").mkdir(parents=True)
    if masks:
        (root / "masks").mkdir()
    if classes is not None:
        (root / "classes.json").write_text(json.dumps(classes))
    return root


def _pairs(root: Path, n: int, sizes=None, classes=CLASSES) -> Path:
    _folders(root, classes)
    for k in range(n):
        h, w = sizes[k % len(sizes)] if sizes else (H, W)
        Image.fromarray(_grey(k, h, w)).save(root / "images" / f"img{k}.png")
        Image.fromarray(_mask(k, h, w)).save(root / "masks" / f"img{k}.png")
    return root


def normal(root: Path) -> Path:
    """Eight grey 32x64 pairs, three classes (one ignored)."""
    return _pairs(root, 8)


def empty(root: Path) -> Path:
    """images/ and masks/ folders with no file in them."""
    return _folders(root, classes=None)


def one_image(root: Path) -> Path:
    """A single labeled pair."""
    return _pairs(root, 1)


def unlabeled_only(root: Path) -> Path:
    """Four images and no mask at all."""
    _folders(root, classes=None, masks=False)
    for k in range(4):
        Image.fromarray(_grey(k)).save(root / "images" / f"img{k}.png")
    return root


def one_class(root: Path) -> Path:
    """Four pairs whose masks are all class 0, no classes.json: a one-class dataset."""
    _folders(root, classes=None)
    for k in range(4):
        Image.fromarray(_grey(k)).save(root / "images" / f"img{k}.png")
        Image.fromarray(np.zeros((H, W), np.uint8)).save(root / "masks" / f"img{k}.png")
    return root


def all_ignored(root: Path) -> Path:
    """Four pairs whose masks are entirely the ignore class: not one pixel to score."""
    _folders(root)
    for k in range(4):
        Image.fromarray(_grey(k)).save(root / "images" / f"img{k}.png")
        Image.fromarray(np.full((H, W), 2, np.uint8)).save(root / "masks" / f"img{k}.png")
    return root


def many_sizes(root: Path) -> Path:
    """Six pairs of six sizes, odd ones included (not multiples of 32)."""
    return _pairs(root, 6, sizes=[(32, 64), (64, 64), (33, 47), (40, 96), (64, 32), (29, 71)])


def tiff_16bit_float(root: Path) -> Path:
    """Grey TIFF images, two 16-bit (PIL mode I;16) and two 32-bit float (mode F, values 0..1)."""
    _folders(root)
    for k in range(4):
        grey = _grey(k).astype(np.float32) / 255
        if k < 2:
            Image.fromarray((grey * 65535).astype(np.uint16)).save(root / "images" / f"img{k}.tif")
        else:
            Image.fromarray(grey, mode="F").save(root / "images" / f"img{k}.tif")
        Image.fromarray(_mask(k)).save(root / "masks" / f"img{k}.png")
    return root


def rgba_png(root: Path) -> Path:
    """Colour RGBA PNG images (alpha half transparent), index masks."""
    _folders(root)
    for k in range(4):
        g = _grey(k)
        rgba = np.stack([g, 255 - g, np.full_like(g, 60 * k), np.full_like(g, 128)], -1)
        Image.fromarray(rgba, mode="RGBA").save(root / "images" / f"img{k}.png")
        Image.fromarray(_mask(k)).save(root / "masks" / f"img{k}.png")
    return root


def palette_unknown(root: Path) -> Path:
    """Palette (mode P) masks; one holds 40 pixels of index 7, a class classes.json does not know."""
    _folders(root)
    palette = [0, 0, 0, 230, 25, 75, 128, 128, 128] + [255, 0, 255] * 253
    for k in range(4):
        Image.fromarray(_grey(k)).save(root / "images" / f"img{k}.png")
        m = _mask(k)
        if k == 1:
            m[:4, :10] = 7
        p = Image.fromarray(m, mode="P")
        p.putpalette(palette)
        p.save(root / "masks" / f"img{k}.png")
    return root


def unreadable_only(root: Path) -> Path:
    """Three image files that are not images (their masks are fine): found, but none usable."""
    _folders(root)
    for k in range(3):
        (root / "images" / f"img{k}.png").write_bytes(b"not a png")
        Image.fromarray(_mask(k)).save(root / "masks" / f"img{k}.png")
    return root


# name -> builder; the CLI and page matrices parametrise over these (``normal`` is the reference).
EDGE_DATASETS: dict[str, Callable[[Path], Path]] = {
    "empty": empty,
    "one_image": one_image,
    "unlabeled_only": unlabeled_only,
    "one_class": one_class,
    "all_ignored": all_ignored,
    "many_sizes": many_sizes,
    "tiff_16bit_float": tiff_16bit_float,
    "rgba_png": rgba_png,
    "palette_unknown": palette_unknown,
    "unreadable_only": unreadable_only,
}


def build(name: str, base: Path) -> Path:
    """The dataset ``name`` written to ``base / name``."""
    builder = normal if name == "normal" else EDGE_DATASETS[name]
    return builder(Path(base) / name)
