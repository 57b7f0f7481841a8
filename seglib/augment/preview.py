"""Preview draws of a pipeline on image/mask pairs, and checks for harmful pipelines.

>>> rows = preview(compose, [(img, mask), ...], draws=4, seed=0)   # rows[i][k] = (image, mask)
>>> for f in check_pipeline(steps, [(img, mask)]): print(f.level, f.message)
"""
from __future__ import annotations

from dataclasses import dataclass

import albumentations as A
import numpy as np

from .pipeline import PipelineError, build_transform
from .registry import ALREADY_GREY, IGNORE_INDEX, INTERPOLATION, NOT_FOR_GREY, TRANSFORMS, quiet

__all__ = ["Finding", "preview", "check_pipeline", "pick_images"]

Pair = tuple[np.ndarray, np.ndarray | None]
_INTERP_NAME = {v: k for k, v in INTERPOLATION.items()}


@dataclass(frozen=True)
class Finding:
    """Something a pipeline does that can hurt training. level: error | warning | info."""

    level: str
    step: int | None
    transform: str
    message: str


def _apply(t, image: np.ndarray, mask: np.ndarray | None) -> Pair:
    with quiet(NOT_FOR_GREY, ALREADY_GREY):  # check_pipeline says it once, as a finding
        if mask is None:
            return t(image=image)["image"], None
        out = t(image=image, mask=mask)
        return out["image"], out["mask"]


def pick_images(ids: list[str], n: int, seed: int = 0) -> list[str]:
    """``n`` ids drawn without replacement for a preview (all if fewer), in their dataset order;
    the same seed picks the same images."""
    rng = np.random.default_rng(seed)
    return [ids[i] for i in sorted(rng.choice(len(ids), size=min(int(n), len(ids)), replace=False))]


def preview(compose: A.Compose, pairs: list[Pair], draws: int = 4, seed: int | None = 0,
            prepare=None) -> list[list[Pair]]:
    """``draws`` augmented copies of every pair, in a fixed order: the same seed gives the same pixels.

    Args:
        pairs: uint8 images (H, W) or (H, W, 3) with uint8 (H, W) masks (or None).
        prepare: the training input policy, ``(image, mask) -> (image, mask)`` (a random crop, a
            resize: ``seglib.train.inputs``), applied before the pipeline in every draw, as in
            training; pairs without a mask are then not prepared.
    Returns:
        rows[i][k] = (image, mask) of draw k of pair i; mask None where the pair had none.
    Raises:
        PipelineError naming the transform that failed.
    """
    compose.set_random_seed(seed)
    rows = []
    for image, mask in pairs:
        row = []
        for _ in range(draws):
            im, m = prepare(image, mask) if prepare is not None and mask is not None else (image, mask)
            try:
                row.append(_apply(compose, im, m))
            except Exception as e:
                raise PipelineError(f"{_culprit(compose, image, mask)}: {str(e).splitlines()[0]}") from None
        rows.append(row)
    return rows


def _culprit(compose: A.Compose, image, mask) -> str:
    """The first transform of the pipeline that fails on this pair on its own (for the message)."""
    for t in compose.transforms:
        try:
            t_one = A.Compose([t], seed=0)
            _apply(t_one, image, mask)
        except Exception:
            return type(t).__name__
    return "the pipeline"


# --- checks ---------------------------------------------------------------------------------
def _static(k: int, step: dict, grayscale: bool, sizes: set[tuple[int, int]]) -> list[Finding]:
    name, params = step["name"], step.get("params", {})
    spec = TRANSFORMS.get(name)
    out = []
    odd = sorted((h, w) for h, w in sizes if h != w)
    if spec is not None and spec.swaps_hw and odd:
        h, w = odd[0]
        out.append(Finding("error", k, name, f"{name} turns {h}x{w} images into {w}x{h} (HxW) on some draws: "
                                             "images of one batch will not stack. Use it on square images only."))
    if spec is not None and spec.needs_rgb and grayscale:
        out.append(Finding("warning", k, name, f"{name} needs RGB images; on this grayscale data it does "
                                               "nothing useful (or fails). Remove it."))
    mi = params.get("mask_interpolation", 0)
    if mi not in (0, None):
        out.append(Finding("error", k, name, f"{name} resamples masks with '{_INTERP_NAME.get(mi, mi)}' "
                                             "interpolation, which blends class ids into ids of other classes. "
                                             "Use 'nearest'."))
    if spec is not None and spec.note and "Deprecated" in spec.note:
        out.append(Finding("info", k, name, spec.note))
    return out


def _dynamic(k: int, step: dict, pairs: list[Pair], draws: int) -> list[Finding]:
    """Run the step alone (p=1) on the samples: failures, shape changes, invented mask values."""
    name, params = step["name"], step.get("params", {})
    spec = TRANSFORMS.get(name)
    try:
        t = A.Compose([build_transform({**step, "p": 1.0})], seed=k)
    except PipelineError as e:
        return [Finding("error", k, name, str(e))]
    shapes, new_values = set(), set()
    for image, mask in pairs:
        for _ in range(draws):
            try:
                img2, mask2 = _apply(t, image, mask)
            except Exception as e:
                h, w = image.shape[:2]
                return [Finding("error", k, name, f"{name} fails on {h}x{w} images: {str(e).splitlines()[0]}")]
            if img2.shape[:2] != image.shape[:2]:
                shapes.add((image.shape[:2], img2.shape[:2]))
            if mask is not None:
                new_values |= set(np.unique(mask2).tolist()) - set(np.unique(mask).tolist())
    new_values.discard(IGNORE_INDEX)  # borders filled with it are left out of training: nothing wrong
    out = []
    if shapes and not (spec and (spec.changes_shape or spec.swaps_hw)):
        (h, w), (h2, w2) = sorted(shapes)[0]
        out.append(Finding("error", k, name, f"{name} turns {h}x{w} images into {h2}x{w2} (HxW): images of one "
                                             "batch will not stack. Use it on square images only."))
    if new_values:
        fill = params.get("fill_mask")
        vals = ", ".join(str(v) for v in sorted(new_values))
        why = (f"border fill (fill_mask={fill}) adds mask value {vals} where pixels come from outside the image; "
               f"set fill_mask to {IGNORE_INDEX} (ignored by training) or use a reflect border"
               if fill is not None and set(new_values) <= {int(np.ravel(fill)[0])}
               else f"creates mask values {vals} that were not in the input masks")
        out.append(Finding("warning" if "border" in why else "error", k, name, f"{name}: {why}."))
    return out


def check_pipeline(steps: list[dict], pairs: list[Pair], draws: int = 4) -> list[Finding]:
    """Findings for each step, errors first. ``pairs``: a few real samples of the dataset."""
    grayscale = all(img.ndim == 2 or img.shape[-1] == 1 for img, _ in pairs) if pairs else False
    sizes = {img.shape[:2] for img, _ in pairs}
    findings = []
    for k, step in enumerate(steps):
        findings += _static(k, step, grayscale, sizes)
        if pairs:
            findings += _dynamic(k, step, pairs, draws)
    shapes = _output_shapes(steps, pairs, draws)
    # Images that already come in several sizes train as they are (each batch is padded, the padding
    # not scored): only a pipeline that turns one input size into several is a mistake.
    if len(shapes) > 1 and len(sizes) <= 1:
        listed = ", ".join(f"{h}x{w}" for h, w in sorted(shapes))
        findings.append(Finding("error", None, "pipeline",
                                f"the pipeline outputs images of different sizes ({listed}): a training batch "
                                "needs one size; add a Resize or crop at the end."))
    order = {"error": 0, "warning": 1, "info": 2}
    return sorted(_dedupe(findings), key=lambda f: (order[f.level], f.step if f.step is not None else 1 << 30))


def _output_shapes(steps: list[dict], pairs: list[Pair], draws: int) -> set[tuple[int, int]]:
    if not steps or not pairs:
        return set()
    try:
        compose = A.Compose([build_transform(s) for s in steps], seed=0)
        return {_apply(compose, img, m)[0].shape[:2] for img, m in pairs for _ in range(max(draws, 4))}
    except Exception:  # the per-step checks name the failing transform
        return set()


def _dedupe(findings: list[Finding]) -> list[Finding]:
    return list(dict.fromkeys(findings))
