"""The Augment preview as finished pictures, kept so that reopening the page draws nothing.

:func:`gallery` reads the chosen image/mask pairs, checks the pipeline on them as training feeds
it (after the input policy's crop or resize), draws seeded copies of each, lays the masks over
the images and encodes every picture. Drawing 8 photos x 4 draws costs seconds (the overlays of
full-size photos most of it), so the result is kept in an in-process LRU that every browser
session shares, keyed by everything the pictures depend on: the pipeline's albumentations JSON,
the image ids, draws, seed, mask opacity, the input policy, the dataset fingerprint and the
class colours.

>>> g = gallery(ds, ds.fingerprint(), ["00003"], steps, draws=4, seed=0, opacity=0.4)
>>> g.rows[0].draws[0]          # (bytes, mime) of draw 1 of image 00003
>>> g.ignored_share             # share of the drawn mask pixels that training leaves out
"""
from __future__ import annotations

import json
from collections.abc import Callable, Hashable
from dataclasses import dataclass

import numpy as np

from ..cache import LRU
from ..viz import encode, overlay
from .pipeline import PipelineError, build_compose, to_json
from .preview import Finding, check_pipeline, preview
from .registry import IGNORE_INDEX

__all__ = ["Gallery", "GalleryRow", "GALLERIES", "gallery"]

Picture = tuple[bytes, str]   # encoded bytes and their mime type, as st.image takes them
Prepare = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]
CHECKED_PAIRS = 4             # check_pipeline runs every step alone on this many pairs


@dataclass(frozen=True)
class GalleryRow:
    image_id: str
    original: Picture
    draws: tuple[Picture, ...]


@dataclass(frozen=True)
class Gallery:
    """rows: one per readable image; findings: check_pipeline's; unreadable: "id: why" of the
    images that could not be read; error: why the draws failed (no rows then); ignored_share:
    the share of the drawn masks' pixels at :data:`IGNORE_INDEX` (filled borders, unknown
    colours), which training leaves out of its losses and metrics."""

    rows: tuple[GalleryRow, ...]
    findings: tuple[Finding, ...]
    unreadable: tuple[str, ...] = ()
    error: str | None = None
    ignored_share: float = 0.0


# 8 galleries: a few pipelines and seeds of one session, or one for each of a few sessions;
# 8 photos x 5 JPEG pictures are a few MB.
GALLERIES: LRU[Gallery] = LRU(8)


def gallery(ds, fingerprint: str, ids: list[str], steps: list[dict], draws: int, seed: int, opacity: float,
            prepare: Prepare | None = None, policy: Hashable = None) -> Gallery:
    """The preview of ``steps`` on the images ``ids`` of ``ds``, drawn once per key.

    Args:
        fingerprint: the dataset's (``ds.fingerprint()``, read once by the caller: a folder
            stats every file for it).
        prepare: the training input policy applied before the pipeline in every draw (a crop
            or resize, ``seglib.train.inputs.input_transform``), or None for whole images.
        policy: what ``prepare`` does, as a hashable value (its part of the key); required
            with ``prepare``.
    """
    if prepare is not None and policy is None:
        raise ValueError("gallery: a prepare function needs its policy, the part of the cache key it sets")
    key = (fingerprint, tuple((c.id, c.color) for c in ds.class_map), tuple(ids), _pipeline_key(steps),
           int(draws), int(seed), round(float(opacity), 4), policy if prepare is not None else None)
    return GALLERIES.get_or_compute(key, lambda: _draw(ds, ids, steps, int(draws), int(seed), float(opacity),
                                                       prepare))


def _pipeline_key(steps: list[dict]) -> str:
    """The pipeline's serialised form: albumentations' JSON, or the steps themselves when they
    do not build (the drawing then reports why)."""
    try:
        return to_json(steps)
    except PipelineError:
        return json.dumps(steps, sort_keys=True, default=repr)


def _draw(ds, ids: list[str], steps: list[dict], draws: int, seed: int, opacity: float,
          prepare: Prepare | None) -> Gallery:
    pairs, shown, unreadable = [], [], []
    for image_id in ids:
        image, mask, problems = ds.load_pair(image_id)
        if image is None:
            unreadable.append(f"{image_id}: " + "; ".join(p.problem for p in problems))
            continue
        pairs.append((image, mask))
        shown.append(image_id)
    if not pairs:
        return Gallery((), (), tuple(unreadable))
    checked = [prepare(i, m) if prepare is not None and m is not None else (i, m) for i, m in pairs[:CHECKED_PAIRS]]
    findings = tuple(check_pipeline(steps, checked))  # on what the pipeline will get: crops, when cropping
    try:
        drawn = preview(build_compose(steps), pairs, draws, seed, prepare=prepare)
    except PipelineError as e:
        return Gallery((), findings, tuple(unreadable), str(e))

    def picture(image: np.ndarray, mask: np.ndarray | None) -> Picture:
        return encode(overlay(image, mask, ds.class_map, opacity))

    rows, ignored, total = [], 0, 0
    for image_id, (image, mask), row in zip(shown, pairs, drawn, strict=True):
        for _, m in row:
            if m is not None:
                ignored += int(np.count_nonzero(m == IGNORE_INDEX))
                total += m.size
        rows.append(GalleryRow(image_id, picture(image, mask), tuple(picture(i, m) for i, m in row)))
    return Gallery(tuple(rows), findings, tuple(unreadable), None, ignored / total if total else 0.0)
