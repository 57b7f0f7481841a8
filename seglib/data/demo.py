"""The embedded demo dataset: Mars-like terrain with injected problems and a truth file.

64x128 grayscale, 5 classes (background, soil, bedrock, sand, big rock) with the shape and
imbalance of the Kaggle Mars set: background largest, big rock under 1% of pixels. Each class
has its own texture so that a model can learn it. Deterministic for a seed: the same seed
writes the same bytes.

Injected problems (the truth file lists the image ids each one touched):
  alien           ~4%: unrelated images that all carry one identical mask
  duplicate       exact copies (both members of each pair are listed)
  near_duplicate  copies with a small brightness shift and noise (both members listed)
  label_noise     masks with a region relabeled or the mask shifted
  blank           constant images;  saturated: images clipped to white
"""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from ..atomic import atomic_write
from .dataset import npz_image_id

H, W = 64, 128
CLASSES = [
    {"id": 0, "name": "background", "color": "#000000", "ignore": False},
    {"id": 1, "name": "soil", "color": "#8B4513", "ignore": False},
    {"id": 2, "name": "bedrock", "color": "#1F77B4", "ignore": False},
    {"id": 3, "name": "sand", "color": "#F2C94C", "ignore": False},
    {"id": 4, "name": "big rock", "color": "#E6194B", "ignore": False},
]
PROBLEM_KINDS = ("alien", "duplicate", "near_duplicate", "label_noise", "blank", "saturated")


def _smooth_field(rng: np.random.Generator, n: int, cells: tuple[int, int]) -> np.ndarray:
    """(n, H, W) float32 smooth noise: coarse random grid upsampled with bicubic."""
    coarse = rng.standard_normal((n, cells[0], cells[1])).astype(np.float32)
    return np.stack([cv2.resize(c, (W, H), interpolation=cv2.INTER_CUBIC) for c in coarse])


def _terrain_masks(rng: np.random.Generator, n: int) -> np.ndarray:
    """(n, H, W) uint8 masks: sky/far background above a wavy horizon, three ground classes
    by argmax of smooth fields, and a few small rocks in some images."""
    yy = np.arange(H, dtype=np.float32)[None, :, None]
    horizon = rng.uniform(16, 40, (n, 1, 1)).astype(np.float32)
    wave = _smooth_field(rng, n, (2, 6))[:, :1, :] * 4.0  # one row of smooth noise per image
    masks = np.zeros((n, H, W), np.uint8)
    fields = np.stack([_smooth_field(rng, n, (3, 5)) for _ in range(3)], axis=1)  # (n, 3, H, W)
    bias = (rng.normal(0, 0.6, (n, 3, 1, 1)).astype(np.float32)
            + np.array([0.35, 0.0, -0.1], np.float32)[None, :, None, None])
    ground = np.argmax(fields + bias, axis=1).astype(np.uint8) + 1
    below = yy > horizon + wave
    masks[below] = ground[below]
    # Big rocks: small ellipses in about a third of the images, on the ground.
    xx = np.arange(W, dtype=np.float32)[None, :]
    yv = np.arange(H, dtype=np.float32)[:, None]
    for i in np.flatnonzero(rng.random(n) < 0.35):
        for _ in range(rng.integers(1, 3)):
            cy = rng.uniform(float(horizon[i, 0, 0]) + 6, H - 3)
            cx = rng.uniform(4, W - 4)
            ry, rx = rng.uniform(1.5, 3.5), rng.uniform(2.0, 5.0)
            rock = ((yv - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0
            masks[i][rock] = 4
    return masks


def _render(rng: np.random.Generator, masks: np.ndarray) -> np.ndarray:
    """(n, H, W) uint8 images whose texture depends on the class of each pixel."""
    n = len(masks)
    yy = np.arange(H, dtype=np.float32)[None, :, None]
    xx = np.arange(W, dtype=np.float32)[None, None, :]
    fine = rng.standard_normal((n, H, W)).astype(np.float32)
    phase = rng.uniform(0, 2 * np.pi, (n, 1, 1)).astype(np.float32)
    swirl = _smooth_field(rng, n, (4, 8))
    textures = [
        28 + 22 * (1 - yy / H) + 2 * fine,                                      # background: dark, smooth
        105 + 14 * fine + 6 * swirl,                                            # soil: granular
        150 + 16 * np.sin(0.9 * yy + 3 * swirl + phase) + 4 * fine,             # bedrock: layered strata
        175 + 9 * np.sin(0.55 * xx + 0.35 * yy + 2 * swirl + phase) + 2 * fine,  # sand: ripples
        215 - 1.2 * (yy % 7) + 3 * fine,                                         # big rock: bright
    ]
    img = np.zeros((n, H, W), np.float32)
    for cls, tex in enumerate(textures):
        img = np.where(masks == cls, tex, img)
    gain = rng.uniform(0.8, 1.15, (n, 1, 1)).astype(np.float32)
    img = img * gain + rng.uniform(-12, 12, (n, 1, 1)).astype(np.float32)
    img = np.stack([cv2.GaussianBlur(im, (3, 3), 0.6) for im in img])  # soften class edges
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def _aliens(rng: np.random.Generator, n: int) -> np.ndarray:
    """Unrelated pictures: concentric rings and checkerboards, nothing like terrain."""
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    out = np.zeros((n, H, W), np.uint8)
    for i in range(n):
        cy, cx = rng.uniform(10, H - 10), rng.uniform(20, W - 20)
        r = np.hypot(yy - cy, xx - cx)
        if i % 2:
            pic = 128 + 110 * np.sin(r / rng.uniform(2, 5))
        else:
            k = rng.integers(6, 14)
            pic = np.where(((yy // k) + (xx // k)) % 2 == 0, 230.0, 25.0) - 0.4 * r
        out[i] = np.clip(pic + rng.normal(0, 4, (H, W)), 0, 255).astype(np.uint8)
    return out


def _corrupt_label(rng: np.random.Generator, mask: np.ndarray) -> np.ndarray:
    """Relabel one ground class as another inside a band, or shift the whole mask."""
    m = mask.copy()
    if rng.random() < 0.5:
        dx = int(rng.choice([-1, 1]) * rng.integers(8, 16))
        m = np.roll(m, dx, axis=1)
        m = np.roll(m, int(rng.integers(4, 8)), axis=0)
    else:
        present = [c for c in (1, 2, 3) if (m == c).any()]
        src = int(rng.choice(present)) if present else 1
        dst = int(rng.choice([c for c in (1, 2, 3) if c != src]))
        x0 = int(rng.integers(0, W // 2))
        band = np.zeros_like(m, bool)
        band[:, x0 : x0 + W // 2] = True
        m[band & (m == src)] = dst
        m[: H // 6][m[: H // 6] == 0] = src  # and paint part of the sky as ground
    return m


def generate(n: int = 2600, seed: int = 0, n_test: int | None = None):
    """Make the demo arrays in memory.

    Returns:
        images (n, H, W) uint8, masks (n, H, W) uint8, test (n_test, H, W) uint8 and the truth
        dict {kind: sorted list of image ids}.
    """
    if n < 50:
        raise ValueError(f"demo needs at least 50 images to hold its injected problems, got n={n}")
    rng = np.random.default_rng(seed)
    n_test = round(n * 0.4) if n_test is None else n_test
    masks = _terrain_masks(rng, n)
    images = _render(rng, masks)
    test = _render(rng, _terrain_masks(rng, n_test)) if n_test else np.zeros((0, H, W), np.uint8)

    counts = {"alien": max(2, round(0.04 * n)), "duplicate": max(1, round(0.005 * n)),
              "near_duplicate": max(1, round(0.005 * n)), "label_noise": max(1, round(0.02 * n)),
              "blank": max(1, round(0.002 * n)), "saturated": max(1, round(0.002 * n))}
    order = iter(rng.permutation(n).tolist())
    take = lambda k: [next(order) for _ in range(k)]  # noqa: E731 - disjoint draws
    touched: dict[str, list[int]] = {k: [] for k in PROBLEM_KINDS}

    alien_idx = take(counts["alien"])
    images[alien_idx] = _aliens(rng, len(alien_idx))
    masks[alien_idx] = masks[alien_idx[0]]  # one identical mask for all of them
    touched["alien"] = alien_idx
    for kind in ("duplicate", "near_duplicate"):
        for _ in range(counts[kind]):
            src, dst = take(2)
            img = images[src].astype(np.float32)
            if kind == "near_duplicate":
                img = img + rng.choice([-1, 1]) * rng.uniform(6, 12) + rng.normal(0, 2.5, img.shape)
            images[dst] = np.clip(np.rint(img), 0, 255).astype(np.uint8)
            masks[dst] = masks[src]
            touched[kind] += [src, dst]
    for i in take(counts["label_noise"]):
        masks[i] = _corrupt_label(rng, masks[i])
        touched["label_noise"].append(i)
    for i in take(counts["blank"]):
        images[i] = int(rng.integers(0, 20))
        touched["blank"].append(i)
    for i in take(counts["saturated"]):
        images[i] = np.clip(images[i].astype(np.int32) * 4 + 120, 0, 255).astype(np.uint8)
        images[i][images[i] < 250] = 255
        touched["saturated"].append(i)
    truth = {k: sorted(npz_image_id(i, n) for i in v) for k, v in touched.items()}
    return images, masks, test, truth


def clean_terrain(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(images, masks) of the demo's terrain with nothing injected: every label right. For
    measuring detectors of label errors (seglib.quality.inject adds known ones)."""
    rng = np.random.default_rng(seed)
    masks = _terrain_masks(rng, n)
    return _render(rng, masks), masks


def truth_path(npz_path: str | Path) -> Path:
    p = Path(npz_path)
    return p.with_name(p.name[: -len(p.suffix)] + ".truth.json") if p.suffix else p.with_name(p.name + ".truth.json")


def write_demo(out: str | Path, n: int = 2600, seed: int = 0, n_test: int | None = None) -> dict:
    """Write the demo .npz (Kaggle Mars layout, class map embedded) and its truth file.

    Returns a summary dict with the paths and the counts of each injected problem.
    """
    out = Path(out)
    if out.suffix != ".npz":
        out = out.with_suffix(".npz") if not out.is_dir() else out / "mars_demo.npz"
    out.parent.mkdir(parents=True, exist_ok=True)
    images, masks, test, truth = generate(n, seed, n_test)
    training_set = np.stack([images, masks], axis=1)  # (N, 2, H, W) like the Kaggle file
    arrays = {"training_set": training_set, "test_set": test, "class_map": np.array(json.dumps(CLASSES))}

    def write_npz(tmp):
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)

    atomic_write(out, write_npz)
    tp = truth_path(out)
    atomic_write(tp, lambda tmp: Path(tmp).write_text(json.dumps(truth, indent=1, sort_keys=True)))
    return {"path": str(out), "truth": str(tp), "n_images": int(n), "n_test": int(len(test)), "seed": seed,
            "problems": {k: len(v) for k, v in truth.items()}}
