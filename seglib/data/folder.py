"""Find image/mask pairs in a folder tree.

Recognised layouts (at any depth, several side by side):
  images/ + masks/   (also image/ + label/, img/ + labels/, JPEGImages/ + SegmentationClass/ ...)
  Tile 3/images/x.jpg + Tile 3/masks/x.png  (one pair of folders per tile)
  test/ + testannot/ (CamVid; also train/ + train_labels/, val/ + val_masks/)
Image and mask are matched by relative path and file stem; extensions may differ, and a mask
stem may carry a suffix such as ``_mask`` or CamVid's ``_L``. Images without a mask form the
unlabeled split. A folder with no recognised layout is a flat folder of unlabeled images.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from .io import IMAGE_EXTENSIONS
from .report import Report

IMAGE_DIR_NAMES = {"images", "image", "imgs", "img", "jpegimages", "inputs", "input", "rgb", "frames"}
MASK_DIR_NAMES = {"masks", "mask", "labels", "label", "annotations", "annotation", "annot", "gt",
                  "groundtruth", "ground_truth", "segmentationclass", "segmentations", "seg"}
MASK_DIR_SUFFIXES = ("annot", "_annot", "_labels", "_label", "_masks", "_mask", "_gt", "-masks", "-labels")
MASK_STEM_SUFFIXES = ("", "_mask", "_masks", "_label", "_labels", "_L", "_gt", "_seg", "-mask", "-label")


@dataclass(frozen=True)
class Sample:
    image_id: str
    image_path: Path
    mask_path: Path | None

    @property
    def labeled(self) -> bool:
        return self.mask_path is not None


def _is_image(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS) and not name.startswith(".")


def _walk_images(root: Path) -> dict[PurePosixPath, list[str]]:
    """{relative dir: sorted image file names}, hidden folders skipped, order deterministic."""
    found: dict[PurePosixPath, list[str]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        rel = PurePosixPath(Path(dirpath).relative_to(root).as_posix())
        files = sorted(f for f in filenames if _is_image(f))
        if files:
            found[rel] = files
    return found


def _mask_dir_partner(mask_dir: PurePosixPath, all_dirs: set[PurePosixPath]) -> PurePosixPath | None:
    """The image folder that a mask folder annotates: a sibling named images/image/..., or the
    sibling whose name the mask folder's name extends (CamVid test -> testannot)."""
    parent, name = mask_dir.parent, mask_dir.name.lower()
    siblings = sorted(d for d in all_dirs if d.parent == parent and d != mask_dir)
    for suffix in MASK_DIR_SUFFIXES:
        if name.endswith(suffix) and len(name) > len(suffix):
            stem = mask_dir.name[: len(mask_dir.name) - len(suffix)]
            for s in siblings:
                if s.name == stem:
                    return s
    if name in MASK_DIR_NAMES:
        for s in siblings:
            if s.name.lower() in IMAGE_DIR_NAMES:
                return s
    return None


def _subtree(files: dict[PurePosixPath, list[str]], top: PurePosixPath,
             dropped: list | None = None) -> dict[PurePosixPath, PurePosixPath]:
    """{path relative to top without extension: file path relative to root} below ``top``.
    A second file with the same stem (x.png beside x.jpg) goes to ``dropped`` as (kept, dropped)."""
    out: dict[PurePosixPath, PurePosixPath] = {}
    for d, names in files.items():
        if d == top or top in d.parents or top == PurePosixPath("."):
            for n in names:
                full = d / n
                rel = full.relative_to(top) if top != PurePosixPath(".") else full
                key = rel.with_suffix("")
                if key in out:
                    if dropped is not None:
                        dropped.append((out[key], full))
                    continue
                out[key] = full
    return out


def _image_id(image_dir: PurePosixPath, rel_stem: PurePosixPath) -> str:
    """Relative path without extension; a generic images/ folder name is dropped from it."""
    base = image_dir.parent if image_dir.name.lower() in IMAGE_DIR_NAMES else image_dir
    return (base / rel_stem).as_posix().lstrip("./") if base != PurePosixPath(".") else rel_stem.as_posix()


def scan_folder(root: str | Path, report: Report) -> list[Sample]:
    """Pair images with masks below ``root``; every problem goes into ``report``."""
    root = Path(root)
    files = _walk_images(root)
    if not files:
        report.add(root, f"no image files found (looked for {' '.join(IMAGE_EXTENSIONS)})", "empty")
        return []
    dirs = set()
    for d in files:
        dirs.add(d)
        dirs.update(p for p in d.parents if p != PurePosixPath("."))
    all_dirs = {d for d in dirs}
    pairs: list[tuple[PurePosixPath, PurePosixPath]] = []  # (image dir, mask dir)
    for d in sorted(all_dirs):
        partner = _mask_dir_partner(d, all_dirs)
        if partner is not None:
            pairs.append((partner, d))
    mask_dirs = {m for _, m in pairs}

    def under_mask_dir(d: PurePosixPath) -> bool:
        return d in mask_dirs or any(p in mask_dirs for p in d.parents)

    # Images in recognised image folders; if there are none, every image not under a mask folder.
    loose_images = {d: n for d, n in files.items() if not under_mask_dir(d)}
    samples: dict[str, Sample] = {}
    claimed: set[PurePosixPath] = set()
    for image_dir, mask_dir in sorted(set(pairs)) if pairs else [(PurePosixPath("."), None)]:
        same_stem: list = []
        images = _subtree(loose_images, image_dir, same_stem)
        for kept, extra in same_stem:
            claimed.add(extra)
            report.add(root / extra, f"another image has the same name ({kept.name}); kept that one, left this out",
                       "duplicate_id")
        masks = _subtree(files, mask_dir) if mask_dir is not None else {}
        used_masks = set()
        for rel_stem, img_rel in sorted(images.items()):
            if img_rel in claimed:
                continue
            claimed.add(img_rel)
            mask_rel = None
            for suffix in MASK_STEM_SUFFIXES:
                cand = rel_stem.with_name(rel_stem.name + suffix)
                if cand in masks:
                    mask_rel = masks[cand]
                    used_masks.add(cand)
                    break
            image_id = _image_id(image_dir, rel_stem)
            if image_id in samples:
                report.add(root / img_rel, f"another image has the id '{image_id}' "
                           f"({samples[image_id].image_path}); left this one out", "duplicate_id", None)
                continue
            if mask_rel is None and mask_dir is not None:
                report.add(root / img_rel, f"image has no mask in {mask_dir.as_posix()}/; kept as unlabeled",
                           "image_without_mask", image_id, excluded=False)
            samples[image_id] = Sample(image_id, root / img_rel, root / mask_rel if mask_rel else None)
        for stem, mask_rel in sorted(masks.items()):
            if stem not in used_masks:
                report.add(root / mask_rel, f"mask has no image in {image_dir.as_posix()}/; left out",
                           "mask_without_image")
    # Images outside any recognised layout, when layouts exist elsewhere: unlabeled.
    if pairs:
        for d, names in sorted(loose_images.items()):
            for n in names:
                rel = d / n
                if rel in claimed:
                    continue
                image_id = rel.with_suffix("").as_posix()
                if image_id not in samples:
                    samples[image_id] = Sample(image_id, root / rel, None)
    return sorted(samples.values(), key=lambda s: natural_key(s.image_id))


def natural_key(image_id: str) -> tuple:
    """'img10' sorts after 'img9'; numbers before words at the same place."""
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p.lower()) for p in re.split(r"(\d+)", image_id) if p)
