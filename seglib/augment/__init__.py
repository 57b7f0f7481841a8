"""Build, preview, check and serialise albumentations pipelines for segmentation.

>>> from seglib.augment import build_compose, load_pipeline, save_pipeline, preview, check_pipeline
>>> steps = [{"name": "HorizontalFlip", "params": {}, "p": 0.5},
...          {"name": "RandomBrightnessContrast", "params": {}, "p": 0.5}]
>>> save_pipeline("light", build_compose(steps))      # <data_dir>/pipelines/light.json (A.save format)
>>> compose = load_pipeline("light", seed=0)          # or load_pipeline("/path/to/file.yaml")
>>> pictures = gallery(ds, ds.fingerprint(), ids, steps, draws=4, seed=0, opacity=0.4)  # the page's preview, cached
"""
from __future__ import annotations

from .pictures import Gallery, GalleryRow, gallery
from .pipeline import (
    PipelineError,
    build_compose,
    build_transform,
    default_steps,
    list_pipelines,
    load_pipeline,
    new_step,
    pipeline_path,
    pipelines_dir,
    save_pipeline,
    steps_from_compose,
    to_json,
    to_python,
)
from .preview import Finding, check_pipeline, pick_images, preview
from .registry import (
    GROUPS,
    IGNORE_INDEX,
    TRANSFORMS,
    Param,
    TransformSpec,
    coerce,
    default_p,
    default_params,
    names,
)

__all__ = ["PipelineError", "build_compose", "build_transform", "default_steps", "list_pipelines", "load_pipeline",
           "new_step", "pipeline_path", "pipelines_dir", "save_pipeline", "steps_from_compose", "to_json", "to_python",
           "Finding", "check_pipeline", "pick_images", "preview", "Gallery", "GalleryRow", "gallery", "GROUPS",
           "IGNORE_INDEX", "TRANSFORMS", "Param", "TransformSpec", "coerce", "default_p", "default_params", "names"]
