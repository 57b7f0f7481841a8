"""Folder datasets: find image/mask pairs in a folder tree (:func:`scan_folder`) and serve
them (:class:`FolderDataset`).

Recognised layouts (at any depth, several side by side):
  images/ + masks/   (also image/ + label/, img/ + labels/, JPEGImages/ + SegmentationClass/ ...)
  Tile 3/images/x.jpg + Tile 3/masks/x.png  (one pair of folders per tile)
  test/ + testannot/ (CamVid; also train/ + train_labels/, val/ + val_masks/)
Image and mask are matched by relative path and file stem; extensions may differ, and a mask
stem may carry a suffix such as ``_mask`` or CamVid's ``_L``. Images without a mask form the
unlabeled split. A folder with no recognised layout is a flat folder of unlabeled images.
A new batch of images received elsewhere joins as unlabeled images from their own folders
(``FolderDataset(root, unlabeled=["/data/batch-7"])``, ids ``batch-7/<name>``): a mask saved for
one in the review store makes it labeled, and the dataset's folder stays as it was.

How masks are read (the encoding) and the class map made up without a class file:
:mod:`seglib.data.encoding`. Both are cached under the dataset's fingerprint, so a second open
reads no pixel.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np

from .. import cache
from .classmap import CLASS_FILE_NAMES, ClassMap, class_file_state, find_class_file
from .dataset import CLASS_MAP_FILE, SegDataset, digest, file_state
from .encoding import infer_class_map, present_values, recognise_encoding
from .io import (
    IMAGE_EXTENSIONS,
    ReadError,
    palette_colours,
    read_image,
    read_image_reduced,
    read_mask_file,
)
from .report import Report

CLASSES_CACHE_VERSION = 1

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


def _walk_images(root: Path, report: Report | None = None) -> dict[PurePosixPath, list[str]]:
    """{relative dir: sorted image file names}, hidden folders skipped, order deterministic.

    Linked subfolders are followed once the real tree is listed. Each real folder is listed
    once: a link to a folder that contains it (a cycle) is not followed, and a folder reached a
    second way counts once (where it was first found); both are noted in ``report``."""
    found: dict[PurePosixPath, list[str]] = {}
    seen: dict[str, PurePosixPath] = {}  # real path of each folder listed -> where it was listed
    links: list[tuple[PurePosixPath, str]] = []  # linked subfolders, followed after the real tree

    def note(rel: PurePosixPath, words: str, code: str) -> None:
        if report is not None:
            report.add(root / rel, f"{words}; not followed", code, excluded=False)

    def walk(top: str, top_rel: PurePosixPath) -> None:
        for dirpath, dirnames, filenames in os.walk(top):  # followlinks=False: links are queued
            rel = top_rel / Path(dirpath).relative_to(top).as_posix()
            real = os.path.realpath(dirpath)
            if real in seen:
                dirnames[:] = []
                note(rel, f"reached through a link, but already read as {seen[real].as_posix()}", "link_repeat")
                continue
            seen[real] = rel
            real_dirs = []
            for d in sorted(d for d in dirnames if not d.startswith(".")):
                full = os.path.join(dirpath, d)
                if os.path.islink(full):
                    links.append((rel / d, full))
                else:
                    real_dirs.append(d)
            dirnames[:] = real_dirs
            files = sorted(f for f in filenames if _is_image(f))
            if files:
                found[rel] = files

    walk(str(root), PurePosixPath("."))
    while links:  # links inside linked folders are appended and followed in turn
        rel, full = links.pop(0)
        target = os.path.realpath(full)
        if not os.path.isdir(target):
            continue  # a broken link, or a link to a file
        if Path(os.path.realpath(os.path.dirname(full))).is_relative_to(target):
            note(rel, "link to a folder that contains it (a cycle)", "link_cycle")
            continue
        walk(full, rel)
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
    files = _walk_images(root, report)
    if not files:
        report.add(root, f"no image files found in this folder or below it (looked for {' '.join(IMAGE_EXTENSIONS)} "
                   "files, e.g. in images/ + masks/)", "empty")
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


def scan_unlabeled(folder: str | Path, report: Report) -> list[Sample]:
    """Every image below ``folder`` (those under a mask folder's name left out) as an unlabeled
    sample with the id ``FOLDER_NAME/<path without extension>``."""
    folder = Path(folder)
    files = _walk_images(folder, report)
    if not files:
        report.add(folder, f"no image files found in this folder of unlabeled images (looked for "
                   f"{' '.join(IMAGE_EXTENSIONS)} files)", "empty")
    samples = []
    for d, names in sorted(files.items()):
        if any(p.name.lower() in MASK_DIR_NAMES for p in (d, *d.parents)):
            continue
        for n in names:
            rel = (d / n).with_suffix("")
            samples.append(Sample(f"{folder.name}/{rel.as_posix().lstrip('./')}", folder / d / n, None))
    return sorted(samples, key=lambda s: natural_key(s.image_id))


def natural_key(image_id: str) -> tuple:
    """'img10' sorts after 'img9'; numbers before words at the same place."""
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p.lower()) for p in re.split(r"(\d+)", image_id) if p)


# --- the dataset --------------------------------------------------------------------------
class FolderDataset(SegDataset):
    kind = "folder"

    def __init__(self, root: Path, class_map_path: Path | None = None, unlabeled=()):
        super().__init__(root)
        self.samples: dict[str, Sample] = {}
        for s in scan_folder(root, self.report):
            self.samples[s.image_id] = s
        self.unlabeled_folders = [Path(u).expanduser() for u in unlabeled]
        for folder in self.unlabeled_folders:
            for s in scan_unlabeled(folder, self.report):
                if s.image_id in self.samples:
                    self.report.add(s.image_path, f"another image has the id '{s.image_id}' "
                                    f"({self.samples[s.image_id].image_path}); left this one out", "duplicate_id")
                    continue
                self.samples[s.image_id] = s
        self._ids = list(self.samples)
        self._labeled = {i: s.labeled for i, s in self.samples.items()}
        self.class_map_path = class_map_path or find_class_file(root) or root / CLASS_MAP_FILE
        self._init_classes()

    def file_of(self, image_id: str, what: str = "image") -> str:
        s = self.samples[image_id]
        return str(s.mask_path if what == "mask" else s.image_path)

    def image(self, image_id: str) -> np.ndarray:
        return read_image(self.samples[image_id].image_path)

    def _read_reduced(self, image_id: str, shorter: int, longer: int) -> tuple[np.ndarray, tuple[int, int], int]:
        return read_image_reduced(self.samples[image_id].image_path, shorter, longer)

    def raw_mask(self, image_id: str) -> tuple[np.ndarray, str]:
        raw, mode, palette = read_mask_file(self.samples[image_id].mask_path)
        if mode == "P" and self.encoding == "rgb":
            return palette_colours(palette)[raw], "RGB"  # a colour-coded dataset reads it by colour
        return raw, mode

    def _file_mask_palette(self, image_id: str) -> tuple[np.ndarray, str, list | None]:
        return read_mask_file(self.samples[image_id].mask_path)

    def files_fingerprint(self) -> str:
        root = self.source
        # The class files by their contents too: an edit that keeps size and mtime changes the classes.
        parts = [self.kind, class_file_state(self.class_map_path)]
        parts += [class_file_state(root / n) for n in CLASS_FILE_NAMES if root / n != self.class_map_path]
        for s in self.samples.values():
            parts.append(file_state(s.image_path))
            if s.mask_path:
                parts.append(file_state(s.mask_path))
        return digest(parts)

    def _sample_masks(self, k: int = 16) -> list[tuple[np.ndarray, str, list | None]]:
        """Up to ``k`` masks spread over the dataset; an eighth of a small one (at least 4): the
        statistics pass reads every mask anyway, and learns the values and colours not sampled."""
        labeled = self.labeled_ids
        if not labeled:
            return []
        k = min(k, len(labeled), max(4, -(-len(labeled) // 8)))
        idx = np.unique(np.linspace(0, len(labeled) - 1, k).round().astype(int))
        out = []
        for i in idx:
            try:
                out.append(read_mask_file(self.samples[labeled[i]].mask_path))
            except ReadError:
                continue  # reported by the full pass
        return out

    def _load_class_file(self) -> ClassMap | None:
        if not self.class_map_path.exists():
            return None
        try:
            given = ClassMap.load(self.class_map_path)
        except ValueError as e:
            self.report.add(self.class_map_path, f"{str(e).split(': ', 1)[-1]}; names and colours made up instead",
                            "bad_class_map", excluded=False)
            return None
        self.class_map_file = str(self.class_map_path)
        return given

    def _classes_key(self) -> str:
        return f"{self.files_fingerprint()}-v{CLASSES_CACHE_VERSION}"

    def _init_classes(self) -> None:
        """Recognise the mask encoding from a sample and set up the class map (both cached)."""
        given = self._load_class_file()
        key = self._classes_key()
        hit = _load_quietly(key)
        if hit is not None and (given is not None or hit["class_map"]):
            self.encoding = hit["encoding"]
            self.set_class_map(given if given is not None else ClassMap.from_list(hit["class_map"]))
            self.class_map.inferred = given is None
            return
        # Each mask with its distinct values (RGB ones: None), found once for both uses below.
        sample = [(raw, mode, pal, None if mode == "RGB" else present_values(raw))
                  for raw, mode, pal in self._sample_masks()]
        self.encoding = recognise_encoding(sample, given)
        self.set_class_map(given if given is not None else infer_class_map(sample, self.encoding))
        self.remember_classes(key)

    def remember_classes(self, key: str | None = None) -> None:
        """Cache the encoding and the class map (when inferred) under the dataset's fingerprint;
        the statistics pass calls it again once it has met every mask's values or colours."""
        doc = {"encoding": self.encoding, "class_map": self.class_map.to_list() if self.class_map.inferred else []}
        try:
            cache.save("classes", key or self._classes_key(), {}, meta=doc)
        except OSError:
            pass  # a read-only cache costs the next open a sample of masks, nothing else


def _load_quietly(key: str) -> dict | None:
    try:
        hit = cache.load("classes", key)
    except OSError:
        return None
    return hit["meta"] if hit is not None and "meta" in hit else None
