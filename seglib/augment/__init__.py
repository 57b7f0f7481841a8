"""Build, preview, check and serialise albumentations pipelines for segmentation.

>>> from seglib.augment import build_compose, load_pipeline, save_pipeline, preview, check_pipeline
>>> steps = [{"name": "HorizontalFlip", "params": {}, "p": 0.5},
...          {"name": "RandomBrightnessContrast", "params": {}, "p": 0.5}]
>>> save_pipeline("light", build_compose(steps))      # <data_dir>/pipelines/light.json (A.save format)
>>> compose = load_pipeline("light", seed=0)          # or load_pipeline("/path/to/file.yaml")
"""
from __future__ import annotations

from .pipeline import (PipelineError, build_compose, build_transform, list_pipelines, load_pipeline,
                       pipeline_path, pipelines_dir, save_pipeline, steps_from_compose, to_python)
from .preview import Finding, check_pipeline, preview
from .registry import GROUPS, TRANSFORMS, Param, TransformSpec, coerce, default_p, default_params, names

__all__ = ["PipelineError", "build_compose", "build_transform", "list_pipelines", "load_pipeline", "pipeline_path",
           "pipelines_dir", "save_pipeline", "steps_from_compose", "to_python", "Finding", "check_pipeline",
           "preview", "GROUPS", "TRANSFORMS", "Param", "TransformSpec", "coerce", "default_p", "default_params",
           "names", "new_step"]


def new_step(name: str, image_hw: tuple[int, int] = (256, 256)) -> dict:
    """A step with the library's defaults (sizes derived from ``image_hw`` where it has none)."""
    if name not in TRANSFORMS:
        raise PipelineError(f"unknown transform '{name}'; offered: {', '.join(TRANSFORMS)}")
    return {"name": name, "params": default_params(name, image_hw), "p": default_p(name)}
