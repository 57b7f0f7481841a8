"""The transforms the app offers: albumentations class, parameters with widget hints, kind.

Defaults come from the library itself (``inspect.signature`` of the class, or the value the
class stores after validation when the signature's default is a scalar shorthand for a range,
e.g. ``CLAHE(clip_limit=4.0)`` means ``(1.0, 4.0)``). A parameter without a library default
(crop and resize sizes) gets one derived from the image size (``auto``). One exception: the
mask's border fill (``fill_mask``) defaults to :data:`IGNORE_INDEX`, not albumentations' 0.

>>> spec = TRANSFORMS["Affine"]
>>> spec.spatial, [p.name for p in spec.params][:3]
(True, ['scale', 'translate_percent', 'rotate'])
>>> default_params("RandomCrop", image_hw=(64, 128))
{'height': 32, 'width': 64}
"""
from __future__ import annotations

import inspect
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import albumentations as A

from ..data.classmap import UNKNOWN_INDEX

__all__ = ["Param", "TransformSpec", "TRANSFORMS", "INTERPOLATION", "BORDER_MODE", "GROUPS", "IGNORE_INDEX",
           "default_params", "default_p", "library_defaults", "coerce", "names", "quiet"]

# The mask value that losses and metrics skip (seglib.metrics.IGNORE_INDEX, torch-free here). Pixels
# that a spatial step brings in from outside the image get it: albumentations' fill_mask=0 would
# label them as class 0 and train the model to see that class in every rotated corner.
IGNORE_INDEX = UNKNOWN_INDEX

# albumentations' UserWarnings that seglib silences, each by its message (a regex), and why:
SHIFT_SCALE_ROTATE = r"ShiftScaleRotate is a special case of Affine"  # offered for old pipelines; its note says so
NOT_VALID_ARGS = r"Argument\(s\) '.*' are not valid for transform"  # A.load drops arguments A.save wrote (2.0.x)
NOT_FOR_GREY = r".*not applicable to grayscale image"  # check_pipeline reports RGB-only steps on grey data once
ALREADY_GREY = r"The image is already gray"  # ToGray on grey data: nothing to do and nothing wrong


@contextmanager
def quiet(*messages: str) -> Iterator[None]:
    """Ignore albumentations' UserWarnings whose message matches one of ``messages`` (the
    constants above), and only those, inside the ``with`` block."""
    with warnings.catch_warnings():
        for message in messages:
            warnings.filterwarnings("ignore", message=message, category=UserWarning)
        yield


INTERPOLATION = {"nearest": 0, "linear": 1, "cubic": 2, "area": 3, "lanczos4": 4}
BORDER_MODE = {"constant": 0, "replicate": 1, "reflect": 2, "wrap": 3, "reflect_101": 4}


@dataclass(frozen=True)
class Param:
    """One widget. ``kind``: float, int, bool, choice (``choices`` label -> value), frange and
    irange (a (lo, hi) pair), pair (two ints, e.g. (height, width)).
    ``auto``: how to derive a default from the image (h, w) when the library has none."""

    name: str
    kind: str
    lo: float = 0.0
    hi: float = 1.0
    step: float | None = None
    choices: dict[str, Any] | None = None
    auto: str | None = None          # "h", "w", "h/2", "w/2", "hw", "side"
    default: Any = inspect.Parameter.empty  # overrides the library's when it is not widget-shaped
    help: str = ""


@dataclass(frozen=True)
class TransformSpec:
    name: str
    group: str
    spatial: bool                    # moves pixels: the mask must move with the image
    params: tuple[Param, ...] = ()
    needs_rgb: bool = False          # needs 3 channels to do anything (or to run at all)
    changes_shape: bool = False      # output size differs from the input by design
    swaps_hw: bool = False           # may swap height and width: harmless only on square images
    note: str = ""
    cls: type = field(init=False, repr=False)

    def __post_init__(self):
        object.__setattr__(self, "cls", getattr(A, self.name))


def _interp(name="interpolation"):
    return Param(name, "choice", choices=INTERPOLATION,
                 help="Masks must stay 'nearest': other modes blend class ids into ids that do not exist"
                 if name == "mask_interpolation" else "How image pixels are resampled")


def _border():
    return (Param("border_mode", "choice", choices=BORDER_MODE, help="How pixels moved in from outside are filled"),
            Param("fill_mask", "int", 0, 255, 1, default=IGNORE_INDEX,
                  help=f"Mask value of constant-filled borders: {IGNORE_INDEX} (the default here) is ignored by "
                       "training's losses and metrics; a class id would teach that class in every border"))


def _warp(*params):
    return (*params, _interp(), _interp("mask_interpolation"), *_border())


_R = "frange"
SPECS = [
    # --- spatial: flips and rotations --------------------------------------------------------
    TransformSpec("HorizontalFlip", "flip & rotate", True),
    TransformSpec("VerticalFlip", "flip & rotate", True),
    TransformSpec("RandomRotate90", "flip & rotate", True, swaps_hw=True,
                  note="Swaps height and width on non-square images"),
    TransformSpec("Transpose", "flip & rotate", True, swaps_hw=True,
                  note="Swaps height and width on non-square images"),
    TransformSpec("D4", "flip & rotate", True, swaps_hw=True,
                  note="The 8 flips/rotations of a square; non-square images change shape"),
    TransformSpec("Rotate", "flip & rotate", True,
                  _warp(Param("limit", _R, -180, 180, 1.0, help="Angle range, degrees"))),
    # --- spatial: affine and warps -----------------------------------------------------------
    TransformSpec("Affine", "affine & warp", True, _warp(
        Param("scale", _R, 0.25, 4.0, 0.05, help="Zoom factor range"),
        Param("translate_percent", _R, -0.5, 0.5, 0.01, default=(0.0, 0.0), help="Shift, fraction of the size"),
        Param("rotate", _R, -180, 180, 1.0, help="Angle range, degrees"),
        Param("shear", _R, -45, 45, 1.0, help="Shear range, degrees"))),
    TransformSpec("ShiftScaleRotate", "affine & warp", True, _warp(
        Param("shift_limit", _R, -0.5, 0.5, 0.01), Param("scale_limit", _R, -0.9, 1.0, 0.05),
        Param("rotate_limit", _R, -180, 180, 1.0)), note="Deprecated by albumentations 2 in favour of Affine"),
    TransformSpec("ElasticTransform", "affine & warp", True, _warp(
        Param("alpha", "float", 0.0, 500.0, 1.0, help="Displacement strength"),
        Param("sigma", "float", 1.0, 100.0, 1.0, help="Smoothness of the displacement field"))),
    TransformSpec("GridDistortion", "affine & warp", True, _warp(
        Param("num_steps", "int", 1, 20, 1), Param("distort_limit", _R, -1.0, 1.0, 0.05))),
    TransformSpec("OpticalDistortion", "affine & warp", True, _warp(Param("distort_limit", _R, -1.0, 1.0, 0.01))),
    TransformSpec("Perspective", "affine & warp", True, _warp(Param("scale", _R, 0.0, 0.5, 0.01))),
    # --- spatial: crops and resizes ----------------------------------------------------------
    TransformSpec("RandomCrop", "crop & resize", True, (Param("height", "int", 8, 4096, 8, auto="h/2"),
                                                        Param("width", "int", 8, 4096, 8, auto="w/2")),
                  changes_shape=True),
    TransformSpec("CenterCrop", "crop & resize", True, (Param("height", "int", 8, 4096, 8, auto="h/2"),
                                                        Param("width", "int", 8, 4096, 8, auto="w/2")),
                  changes_shape=True),
    TransformSpec("RandomResizedCrop", "crop & resize", True, (
        Param("size", "pair", 8, 4096, 8, auto="hw", help="Output (height, width)"),
        Param("scale", _R, 0.01, 1.0, 0.01, help="Area of the crop, fraction of the image"),
        Param("ratio", _R, 0.1, 10.0, 0.05, help="Aspect ratio range of the crop"),
        _interp(), _interp("mask_interpolation"))),
    TransformSpec("Resize", "crop & resize", True, (Param("height", "int", 8, 4096, 8, auto="h"),
                                                    Param("width", "int", 8, 4096, 8, auto="w"),
                                                    _interp(), _interp("mask_interpolation")), changes_shape=True),
    TransformSpec("PadIfNeeded", "crop & resize", True, (
        Param("min_height", "int", 8, 4096, 8, auto="side"), Param("min_width", "int", 8, 4096, 8, auto="side"),
        *_border()), changes_shape=True),
    # --- pixel: brightness and contrast ------------------------------------------------------
    TransformSpec("RandomBrightnessContrast", "brightness & contrast", False, (
        Param("brightness_limit", _R, -1.0, 1.0, 0.05), Param("contrast_limit", _R, -1.0, 1.0, 0.05))),
    TransformSpec("RandomGamma", "brightness & contrast", False,
                  (Param("gamma_limit", _R, 20, 300, 5.0, help="Percent"),)),
    TransformSpec("CLAHE", "brightness & contrast", False, (Param("clip_limit", _R, 1.0, 40.0, 0.5),
                                                           Param("tile_grid_size", "pair", 1, 64, 1))),
    TransformSpec("Equalize", "brightness & contrast", False,
                  (Param("mode", "choice", choices={"cv": "cv", "pil": "pil"}),)),
    TransformSpec("RandomToneCurve", "brightness & contrast", False, (Param("scale", "float", 0.0, 1.0, 0.01),)),
    TransformSpec("Posterize", "brightness & contrast", False, (Param("num_bits", "irange", 1, 8, 1),)),
    TransformSpec("Solarize", "brightness & contrast", False, (Param("threshold_range", _R, 0.0, 1.0, 0.01),)),
    TransformSpec("InvertImg", "brightness & contrast", False),
    # --- pixel: noise ------------------------------------------------------------------------
    TransformSpec("GaussNoise", "noise", False, (Param("std_range", _R, 0.0, 1.0, 0.01, help="Std, fraction of 255"),)),
    TransformSpec("MultiplicativeNoise", "noise", False, (Param("multiplier", _R, 0.0, 3.0, 0.05),
                                                          Param("elementwise", "bool"))),
    TransformSpec("ISONoise", "noise", False, (Param("color_shift", _R, 0.0, 1.0, 0.01),
                                               Param("intensity", _R, 0.0, 2.0, 0.05)), needs_rgb=True),
    # --- pixel: blur and sharpen -------------------------------------------------------------
    TransformSpec("GaussianBlur", "blur & sharpen", False, (Param("sigma_limit", _R, 0.0, 10.0, 0.1),)),
    TransformSpec("MotionBlur", "blur & sharpen", False,
                  (Param("blur_limit", "irange", 3, 31, 2, help="Odd kernel sizes"),)),
    TransformSpec("MedianBlur", "blur & sharpen", False,
                  (Param("blur_limit", "irange", 3, 31, 2, help="Odd kernel sizes"),)),
    TransformSpec("Downscale", "blur & sharpen", False, (Param("scale_range", _R, 0.05, 0.99, 0.01),)),
    TransformSpec("Sharpen", "blur & sharpen", False,
                  (Param("alpha", _R, 0.0, 1.0, 0.05), Param("lightness", _R, 0.0, 5.0, 0.1))),
    TransformSpec("Emboss", "blur & sharpen", False,
                  (Param("alpha", _R, 0.0, 1.0, 0.05), Param("strength", _R, 0.0, 5.0, 0.1))),
    # --- pixel: dropout (the mask is left alone unless fill_mask is set) ---------------------
    TransformSpec("CoarseDropout", "dropout", False, (
        Param("num_holes_range", "irange", 1, 32, 1), Param("hole_height_range", _R, 0.01, 1.0, 0.01),
        Param("hole_width_range", _R, 0.01, 1.0, 0.01))),
    # --- pixel: colour (RGB only) ------------------------------------------------------------
    TransformSpec("HueSaturationValue", "colour", False, (
        Param("hue_shift_limit", _R, -180, 180, 1.0), Param("sat_shift_limit", _R, -255, 255, 1.0),
        Param("val_shift_limit", _R, -255, 255, 1.0)), needs_rgb=True),
    TransformSpec("RGBShift", "colour", False, (
        Param("r_shift_limit", _R, -255, 255, 1.0), Param("g_shift_limit", _R, -255, 255, 1.0),
        Param("b_shift_limit", _R, -255, 255, 1.0)), needs_rgb=True),
    TransformSpec("ColorJitter", "colour", False, (
        Param("brightness", _R, 0.0, 3.0, 0.05), Param("contrast", _R, 0.0, 3.0, 0.05),
        Param("saturation", _R, 0.0, 3.0, 0.05), Param("hue", _R, -0.5, 0.5, 0.01)), needs_rgb=True),
    TransformSpec("ChannelShuffle", "colour", False, needs_rgb=True),
    TransformSpec("ToGray", "colour", False, needs_rgb=True),
    TransformSpec("ToSepia", "colour", False, needs_rgb=True),
]
TRANSFORMS: dict[str, TransformSpec] = {s.name: s for s in SPECS}
GROUPS: list[str] = list(dict.fromkeys(s.group for s in SPECS))


def names(spatial: bool | None = None) -> list[str]:
    """Offered transform names, optionally only the spatial (True) or pixel (False) ones."""
    return [s.name for s in SPECS if spatial is None or s.spatial == spatial]


@cache
def library_defaults(name: str) -> dict[str, Any]:
    """``{param: default}`` from the class signature, ``p`` included; required params absent."""
    sig = inspect.signature(TRANSFORMS[name].cls.__init__)
    return {k: v.default for k, v in sig.parameters.items()
            if k != "self" and v.default is not inspect.Parameter.empty}


def _auto(rule: str, hw: tuple[int, int]) -> Any:
    h, w = hw
    side = max(h, w)
    return {"h": h, "w": w, "h/2": max(8, h // 2), "w/2": max(8, w // 2), "hw": (h, w),
            "side": -(-side // 32) * 32}[rule]


def stored_form(name: str, param: str, value: Any) -> Any:
    """The value the class stores for a scalar shorthand (e.g. CLAHE clip_limit 4.0 -> (1.0, 4.0))."""
    with quiet(SHIFT_SCALE_ROTATE):
        try:
            stored = getattr(TRANSFORMS[name].cls(**{param: value}), param, value)
        except Exception:  # a class that needs other required args: the shorthand is symmetric
            stored = value
    return tuple(stored) if isinstance(stored, (tuple, list)) and len(stored) == 2 else (value, value)


def default_params(name: str, image_hw: tuple[int, int] = (256, 256)) -> dict[str, Any]:
    """Widget values of every offered parameter (``p`` not included), library defaults first."""
    lib = library_defaults(name)
    out: dict[str, Any] = {}
    for prm in TRANSFORMS[name].params:
        if prm.default is not inspect.Parameter.empty:
            value = prm.default
        elif prm.auto:  # sized to the data (PadIfNeeded's library default of 1024 is not)
            value = _auto(prm.auto, image_hw)
        else:
            value = lib[prm.name]
        if prm.kind in ("frange", "irange", "pair") and not isinstance(value, (tuple, list)):
            value = stored_form(name, prm.name, value) if prm.kind != "pair" else (value, value)
        out[prm.name] = coerce(prm, value)
    return out


def default_p(name: str) -> float:
    return float(library_defaults(name).get("p", 0.5))


def coerce(prm: Param, value: Any) -> Any:
    """A stored value in the widget's shape, or None when a widget cannot show it (e.g. an
    Affine scale that differs between x and y): such values are kept as they are."""
    if isinstance(value, dict) and set(value) == {"x", "y"}:
        if tuple(value["x"]) != tuple(value["y"]):
            return None
        value = value["x"]
    if prm.kind in ("frange", "irange", "pair"):
        if not isinstance(value, (tuple, list)) or len(value) != 2:
            return None
        cast = float if prm.kind == "frange" else int
        return (cast(value[0]), cast(value[1]))
    if prm.kind == "float":
        return float(value) if isinstance(value, (int, float)) else None
    if prm.kind == "int":
        return int(value) if isinstance(value, (int, float)) else None
    if prm.kind == "bool":
        return bool(value)
    if prm.kind == "choice":
        return value if value in prm.choices.values() else None
    return value
