"""Outlier and duplicate detectors that score images and say why.

>>> from seglib.outliers import detect, DETECTORS
>>> flags = detect(ds, stats)              # all detectors; cached by ds.fingerprint()
>>> flags.head()                           # image_id, detector, reason, score (0..1), group
>>> flags[flags.group == "m1"]             # every image of one shared-mask group
>>> detect(ds, stats, options={"near_duplicate": {"min_corr": 0.97}})   # a detector's options

Detectors (``DETECTORS``, name -> ``fn(ds, stats) -> DataFrame``; add one with ``@detector``):
  exact_duplicate  byte-identical images, grouped (d1, d2, ...)
  near_duplicate   copies after brightness/contrast/noise changes, grouped (n1, ...); consecutive
                   frames of a video named once as a sequence (s1, ...); option min_corr
  overlap          crops of one source sharing part of their pixels at an offset (ORB keypoints,
                   a translation, a pixel check), grouped (o1, ...); option min_share
  shared_mask      one identical mask carried by different pictures, grouped (m1, ...)
  image_stats      blank, saturated, brightness/contrast/texture unlike the most similar images, odd size
  label_stats      single-class masks, classes out of place, fragmented masks
``label_quality_from_predictions`` scores labels against a model's predictions (cleanlab);
``shared_pixel_groups(flags)`` names the groups of images that share pixels (copies, sequences,
overlapping crops), which a train/validation split must not cut.
"""
from __future__ import annotations

from . import duplicates, overlaps, quality  # noqa: F401  (importing registers the detectors)
from .base import COLUMNS, DETECTORS, detector
from .core import cached_detections, detect, replace_detector
from .label_quality import label_quality_from_predictions
from .overlaps import shared_pixel_groups

__all__ = ["COLUMNS", "DETECTORS", "cached_detections", "detect", "detector", "label_quality_from_predictions",
           "replace_detector", "shared_pixel_groups"]
