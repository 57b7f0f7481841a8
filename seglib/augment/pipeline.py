"""Pipelines as plain step lists, albumentations Compose objects, files and Python code.

A step is ``{"name": "Affine", "params": {"rotate": (-15, 15)}, "p": 0.5}``: the class name in
albumentations, its keyword arguments and its probability. Files are albumentations' own
serialisation (``A.save`` / ``A.load``, JSON or YAML), so training code that never heard of
seglib can read them.

>>> compose = build_compose([{"name": "HorizontalFlip", "params": {}, "p": 0.5}], seed=0)
>>> path = save_pipeline("flips", compose)            # <data_dir>/pipelines/flips.json
>>> load_pipeline("flips")                           # by name, or by any path
"""
from __future__ import annotations

import inspect
import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import albumentations as A

from .. import paths
from .registry import (
    BORDER_MODE,
    INTERPOLATION,
    NOT_VALID_ARGS,
    SHIFT_SCALE_ROTATE,
    TRANSFORMS,
    default_p,
    default_params,
    library_defaults,
    quiet,
    stored_form,
)

__all__ = ["PipelineError", "new_step", "default_steps", "build_transform", "build_compose", "steps_from_compose",
           "pipelines_dir", "list_pipelines", "save_pipeline", "load_pipeline", "pipeline_path", "to_json",
           "to_python", "SUFFIXES"]

SUFFIXES = {".json": "json", ".yaml": "yaml", ".yml": "yaml"}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._ -]{0,63}$")


class PipelineError(ValueError):
    """A pipeline cannot be built, saved or read; the message names the step or the file."""


def new_step(name: str, image_hw: tuple[int, int] = (256, 256)) -> dict:
    """A step with the library's defaults (sizes derived from ``image_hw`` where it has none)."""
    if name not in TRANSFORMS:
        raise PipelineError(f"unknown transform '{name}'; offered: {', '.join(TRANSFORMS)}")
    return {"name": name, "params": default_params(name, image_hw), "p": default_p(name)}


def default_steps(image_hw: tuple[int, int] = (256, 256)) -> list[dict]:
    """A light starting pipeline: horizontal flip, a small rotation (+-15 degrees) and brightness/contrast."""
    steps = [new_step(n, image_hw) for n in ("HorizontalFlip", "Affine", "RandomBrightnessContrast")]
    steps[1]["params"]["rotate"] = (-15.0, 15.0)
    return steps


def build_transform(step: dict) -> A.BasicTransform:
    name = step["name"]
    cls = getattr(A, name, None)
    if not isinstance(cls, type):
        raise PipelineError(f"unknown transform '{name}' (not in albumentations {A.__version__})")
    try:
        with quiet(SHIFT_SCALE_ROTATE):
            return cls(**step.get("params", {}), p=float(step.get("p", 0.5)))
    except (TypeError, ValueError) as e:
        raise PipelineError(f"{name}: {str(e).splitlines()[0]}") from None


def build_compose(steps: list[dict], seed: int | None = None) -> A.Compose:
    """``A.Compose`` of the steps; ``seed`` makes its draws repeatable (albumentations >= 2)."""
    return A.Compose([build_transform(s) for s in steps], seed=seed)


@cache
def _init_args(name: str) -> frozenset[str] | None:
    """The keyword arguments albumentations' class ``name`` takes (None: any, or unknown class)."""
    cls = getattr(A, name, None)
    if not isinstance(cls, type):
        return None
    params = inspect.signature(cls.__init__).parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return None
    return frozenset(p.name for p in params)


def steps_from_compose(compose: A.Compose) -> list[dict]:
    """The step list of a (flat) Compose, with every init argument albumentations serialises.

    ``A.to_dict`` also writes a few attributes that the class does not take (PadIfNeeded's
    ``padding``, RGBShift's noise settings in albumentations 2.0); they are left out, as
    ``A.from_dict`` drops them too."""
    steps = []
    for t in A.to_dict(compose)["transform"]["transforms"]:
        t = dict(t)
        name = t.pop("__class_fullname__").rsplit(".", 1)[-1]
        if "transforms" in t:
            raise PipelineError(f"nested {name} blocks are not supported by the editor; use the file as it is")
        p = float(t.pop("p", 0.5))
        accepted = _init_args(name)
        params = {k: v for k, v in t.items() if accepted is None or k in accepted}
        steps.append({"name": name, "params": _plain(params), "p": p})
    return steps


def _plain(value: Any) -> Any:
    """JSON-like values as the widgets expect them: lists become tuples."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return tuple(_plain(v) for v in value)
    return value


# --- files --------------------------------------------------------------------------------
def pipelines_dir() -> Path:
    d = paths.data_dir() / "pipelines"
    d.mkdir(parents=True, exist_ok=True)
    return d


def list_pipelines() -> list[str]:
    """Names of the saved pipelines, sorted."""
    return sorted({p.stem for p in pipelines_dir().iterdir() if p.suffix in SUFFIXES})


def pipeline_path(name_or_path: str | Path) -> Path:
    """The file of a saved pipeline name, or the path itself if it is a file."""
    p = Path(name_or_path).expanduser()
    if p.is_file():
        return p
    for suffix in SUFFIXES:
        cand = pipelines_dir() / f"{name_or_path}{suffix}"
        if cand.is_file():
            return cand
    known = ", ".join(list_pipelines()) or "none yet"
    raise PipelineError(f"{name_or_path}: no such file and no saved pipeline of that name (saved: {known})")


def save_pipeline(name: str, compose: A.Compose | list[dict], data_format: str = "json") -> Path:
    """Write ``<data_dir>/pipelines/<name>.json|yaml`` with ``A.save``; atomic; returns the path."""
    if not _NAME.match(name or ""):
        raise PipelineError(f"'{name}': a pipeline name is 1-64 letters, digits, spaces, '.', '_' or '-'")
    if data_format not in ("json", "yaml"):
        raise PipelineError(f"format must be json or yaml, not {data_format}")
    if isinstance(compose, list):
        compose = build_compose(compose)
    out = pipelines_dir() / f"{name}.{data_format}"
    tmp = out.with_name(f".{out.name}.tmp")
    A.save(compose, str(tmp), data_format=data_format)
    tmp.replace(out)
    for other in SUFFIXES:  # one file per name: the other format would shadow or confuse
        stale = out.with_suffix(other)
        if stale != out and stale.exists():
            stale.unlink()
    return out


def load_pipeline(name_or_path: str | Path, seed: int | None = None) -> A.Compose:
    """A saved pipeline by name (``<data_dir>/pipelines``) or any ``A.save`` file (.json/.yaml).

    albumentations does not store the seed; pass ``seed`` for repeatable draws."""
    path = pipeline_path(name_or_path)
    fmt = SUFFIXES.get(path.suffix.lower(), "json")
    try:
        with quiet(SHIFT_SCALE_ROTATE, NOT_VALID_ARGS):
            compose = A.load(str(path), data_format=fmt)
    except (json.JSONDecodeError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise PipelineError(f"{path}: not an albumentations pipeline ({type(e).__name__}: {e})") from None
    except Exception as e:  # yaml.YAMLError and friends, without importing yaml here
        raise PipelineError(f"{path}: cannot read ({type(e).__name__}: {e})") from None
    if not isinstance(compose, A.BaseCompose):
        compose = A.Compose([compose])
    compose.set_random_seed(seed)
    return compose


def to_json(steps: list[dict]) -> str:
    """The pipeline as albumentations' JSON (``A.to_dict``, what ``A.load`` reads), indented."""
    return json.dumps(A.to_dict(build_compose(steps)), indent=2)


# --- code ---------------------------------------------------------------------------------
_CV2 = {"interpolation": {v: f"cv2.INTER_{k.upper()}" for k, v in INTERPOLATION.items()},
        "border_mode": {v: f"cv2.BORDER_{k.upper()}" for k, v in BORDER_MODE.items()}}
_CV2["mask_interpolation"] = _CV2["interpolation"]


def _literal(key: str, value: Any) -> str:
    if key in _CV2 and value in _CV2[key]:
        return _CV2[key][value]
    if isinstance(value, float):
        return repr(round(value, 6))
    if isinstance(value, tuple):
        return "(" + ", ".join(_literal("", v) for v in value) + ("," if len(value) == 1 else "") + ")"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k!r}: {_literal('', v)}" for k, v in value.items()) + "}"
    return repr(value)


def _differs(name: str, key: str, value: Any) -> bool:
    """False when ``value`` is what the library does by default (also a scalar shorthand's
    stored form: ``rotate=0.0`` is ``(0.0, 0.0)``); the written code must draw identically."""
    lib = library_defaults(name) if name in TRANSFORMS else {}
    if key not in lib:
        return True
    same = [lib[key]]
    if isinstance(lib[key], (int, float)) and not isinstance(lib[key], bool) and isinstance(value, tuple):
        same.append(stored_form(name, key, lib[key]))
    def norm(v):
        return tuple(v) if isinstance(v, (list, tuple)) else v

    return all(norm(d) != norm(value) for d in same)


def to_python(steps: list[dict], seed: int | None = None) -> str:
    """Python source that builds the same Compose (only non-default arguments are written)."""
    lines = []
    for s in steps:
        args = [f"{k}={_literal(k, v)}" for k, v in s.get("params", {}).items() if _differs(s["name"], k, v)]
        args.append(f"p={_literal('p', float(s.get('p', 0.5)))}")
        lines.append(f"    A.{s['name']}({', '.join(args)}),")
    uses_cv2 = any(k in _CV2 for s in steps for k, v in s.get("params", {}).items() if _differs(s["name"], k, v))
    head = "import albumentations as A\n" + ("import cv2\n" if uses_cv2 else "")
    body = "\n".join(lines)
    seed_arg = f", seed={seed}" if seed is not None else ""
    return f"{head}\npipeline = A.Compose([\n{body}\n]{seed_arg})\n"
