"""Click and box segmentation with SAM 2 (Hugging Face transformers' ``Sam2Model``), from the
Hugging Face cache like the encoders' weights: nothing downloads while labeling.

>>> fetch("sam2.1-hiera-tiny")                     # the one call that uses the network
>>> sam = Segmenter.load("sam2.1-hiera-tiny")      # SamMissing (one line: how to fetch) when not cached
>>> out = sam.segment(image, "00012", [Click(120, 80, True)])
>>> out = sam.segment(image, "00012", clicks + [Click(90, 60, False)], previous=out)   # refined
>>> out.box, out.pixels                            # where the mask is, and its bool pixels there

The image embedding (SAM 2's image encoder, the slow part: seconds on a CPU) is computed once per
image and window and kept, so each click only runs the prompt encoder and mask decoder. A big
image is not shrunk to the model's 1024 px: the window is a 1024 px square of the image around
the first click (or box), as large as the prompts need, at the model's resolution.
"""
from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .. import viz
from .clicks import Click
from .raster import Box

DEFAULT = "sam2.1-hiera-tiny"
MODELS = {  # name: Hugging Face repo (transformers weights)
    "sam2.1-hiera-tiny": "facebook/sam2.1-hiera-tiny",
    "sam2.1-hiera-small": "facebook/sam2.1-hiera-small",
    "sam2.1-hiera-base-plus": "facebook/sam2.1-hiera-base-plus",
    "sam2.1-hiera-large": "facebook/sam2.1-hiera-large",
    "sam2-hiera-tiny": "facebook/sam2-hiera-tiny",
    "sam2-hiera-small": "facebook/sam2-hiera-small",
    "sam2-hiera-base-plus": "facebook/sam2-hiera-base-plus",
    "sam2-hiera-large": "facebook/sam2-hiera-large",
}
FILES = ("config.json", "model.safetensors")
SIDE = 1024                        # the model's input: a square of 1024 px
MEAN = np.array([0.485, 0.456, 0.406], np.float32)   # ImageNet's, as Sam2ImageProcessor normalises
STD = np.array([0.229, 0.224, 0.225], np.float32)
WHOLE_IMAGE_UP_TO = 1.5            # an image at most 1.5 x SIDE on its longer side is embedded whole
MARGIN = 64                        # px kept around the prompts inside a window
EMBEDDINGS_KEPT = 4


class SamMissing(Exception):
    """The SAM 2 model is not in the Hugging Face cache, or cannot be fetched: one line saying how."""


def is_sam_name(name: str) -> bool:
    """True for a SAM 2 model name (``sam2.1-hiera-tiny``) or a repo that looks like one."""
    return name in MODELS or "sam2" in name.lower()


def repo_of(name: str) -> str:
    if name in MODELS:
        return MODELS[name]
    if "/" in name:
        return name
    raise SamMissing(f"{name!r} is not a SAM 2 model: one of {', '.join(MODELS)} or a Hugging Face repo id")


def fetch_command(name: str) -> str:
    return f"seglib weights fetch {name}"


def cached_folder(name: str = DEFAULT) -> Path | None:
    """The cache snapshot holding the model's files, else None. Never uses the network."""
    from huggingface_hub import try_to_load_from_cache

    found = [try_to_load_from_cache(repo_of(name), f) for f in FILES]
    if not all(isinstance(p, str) for p in found):
        return None
    return Path(found[0]).parent


def listing() -> list[dict]:
    """One row per known SAM 2 model: name, repo, cached, folder, bytes (of the weights file)."""
    rows = []
    for name, repo in MODELS.items():
        folder = cached_folder(name)
        size = (folder / FILES[-1]).stat().st_size if folder is not None else None
        rows.append({"model": name, "repo_id": repo, "cached": folder is not None,
                     "folder": str(folder) if folder else None, "bytes": size})
    return rows


def missing_message(name: str = DEFAULT) -> str:
    from ..pretrained import cache_dir

    folder = "models--" + repo_of(name).replace("/", "--")
    return (f"SAM 2 model {name} is not in the Hugging Face cache ({cache_dir()}): run `{fetch_command(name)}` "
            f"(or press Download on the Label page) on a machine with internet; air-gapped: copy the folder "
            f"{folder} from such a machine's cache")


def fetch(name: str = DEFAULT, progress: Callable[[int, int | None], None] | None = None,
          timeout: float = 20.0) -> Path:
    """Download the model's config and weights into the hub cache; the snapshot folder. Raises
    SamMissing in one line when the hub cannot be reached."""
    from .. import pretrained

    found = cached_folder(name)
    if found is not None:
        return found
    from huggingface_hub import constants, hf_hub_download

    repo = repo_of(name)
    problem = pretrained._unreachable(constants.ENDPOINT, timeout)
    if problem:
        raise SamMissing(f"cannot reach {constants.ENDPOINT} ({problem}) to download {repo}: "
                         + missing_message(name))
    bar = pretrained._progress_class(progress) if progress else None
    try:
        with pretrained._online(), pretrained._quiet_hub():
            for f in FILES:
                hf_hub_download(repo, f, etag_timeout=timeout, tqdm_class=bar if f == FILES[-1] else None)
    except Exception as e:  # no network, a proxy, a gated repo: one line, never a traceback
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise SamMissing(f"cannot download {repo} ({type(e).__name__}: {first}); " + missing_message(name)) from None
    return cached_folder(name)


# --- prompts and windows -------------------------------------------------------------------------
def window_for(shape: tuple[int, int], clicks: Sequence[Click], box: tuple[float, float, float, float] | None,
               keep: Box | None = None, side: int = SIDE) -> Box:
    """The part of an (H, W) image the model sees: all of it when it is small enough, else a
    square of ``side`` px (larger when the prompts need it) around the prompts; ``keep`` (the
    window of the clicks before) when it still holds every prompt with a margin."""
    h, w = shape
    if max(h, w) <= side * WHOLE_IMAGE_UP_TO:
        return Box.of(shape)
    xs = [c.x for c in clicks] + ([box[0], box[2]] if box else [])
    ys = [c.y for c in clicks] + ([box[1], box[3]] if box else [])
    if not xs:
        return Box.of(shape)
    x0, x1, y0, y1 = min(xs) - MARGIN, max(xs) + MARGIN, min(ys) - MARGIN, max(ys) + MARGIN
    if keep is not None and keep.x0 <= max(x0, 0) and keep.y0 <= max(y0, 0) and keep.x1 >= min(x1, w) \
            and keep.y1 >= min(y1, h):
        return keep
    size_y, size_x = min(h, max(side, int(y1 - y0))), min(w, max(side, int(x1 - x0)))
    cy, cx = (y0 + y1) / 2, (x0 + x1) / 2
    top = int(min(max(cy - size_y / 2, 0), h - size_y))
    left = int(min(max(cx - size_x / 2, 0), w - size_x))
    return Box(top, left, top + size_y, left + size_x)


def model_input(image: np.ndarray, window: Box) -> np.ndarray:
    """float32 (1, 3, 1024, 1024): the window resized to the model's square and normalised as
    transformers' Sam2ImageProcessor does (bilinear, 1/255, ImageNet mean and std)."""
    rgb = viz.to_rgb(image)[window.slices]
    x = cv2.resize(np.ascontiguousarray(rgb), (SIDE, SIDE), interpolation=cv2.INTER_LINEAR).astype(np.float32) / 255
    x = (x - MEAN) / STD
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None])


@dataclass
class SamResult:
    """A SAM 2 mask: its box in the image and bool pixels there, what the next click refines."""

    box: Box                       # where the mask's pixels are (the window when it is empty)
    pixels: np.ndarray             # bool, box.shape
    window: Box                    # the image part the model saw
    logits: np.ndarray             # float32 (256, 256): the low-resolution mask, the next click's input
    score: float                   # the model's own IoU estimate

    def full(self, shape: tuple[int, int]) -> np.ndarray:
        out = np.zeros(shape, bool)
        out[self.box.slices] = self.pixels
        return out


def _device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


class Segmenter:
    """A SAM 2 model ready for clicks, with the embeddings of the last few image windows."""

    def __init__(self, model, name: str, device: str = "cpu"):
        self.model = model.eval().to(device)
        self.name = name
        self.device = device
        self._embeddings: OrderedDict = OrderedDict()
        self._lock = threading.Lock()   # one model, many browser sessions: one forward at a time

    @classmethod
    def load(cls, name: str = DEFAULT, device: str = "auto") -> Segmenter:
        """The cached model (SamMissing, saying how to fetch it, when it is not there)."""
        folder = cached_folder(name)
        if folder is None:
            raise SamMissing(missing_message(name))
        from transformers import Sam2Config, Sam2Model
        from transformers.utils import logging as hf_logging

        raw = json.loads((folder / "config.json").read_text())
        # The hub's checkpoints are the video model's (model_type sam2_video): its image part is a
        # Sam2Model with the same three sub-configs; the memory modules are not needed for one image.
        config = Sam2Config(**{k: raw[k] for k in ("vision_config", "prompt_encoder_config", "mask_decoder_config")
                               if k in raw})
        level, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
        hf_logging.set_verbosity_error()   # the video checkpoint's memory weights are unused on purpose
        hf_logging.disable_progress_bar()
        try:
            model = Sam2Model.from_pretrained(str(folder), config=config)
        except (OSError, ValueError, RuntimeError) as e:
            raise SamMissing(f"SAM 2 model {name} in {folder} cannot be read ({type(e).__name__}: "
                             f"{str(e).splitlines()[0][:160]}); fetch it again with `{fetch_command(name)}`") from None
        finally:
            hf_logging.set_verbosity(level)
            if bars:
                hf_logging.enable_progress_bar()
        return cls(model, name, _device(device))

    @classmethod
    def random(cls, device: str = "cpu", seed: int = 0) -> Segmenter:
        """SAM 2 hiera-tiny's architecture (transformers' default Sam2Config) with random weights:
        for timing where the download is impossible."""
        import torch
        from transformers import Sam2Config, Sam2Model

        torch.manual_seed(seed)
        return cls(Sam2Model(Sam2Config()), "sam2.1-hiera-tiny (random weights)", _device(device))

    def embedding(self, image: np.ndarray, key: str, window: Box):
        """The image encoder's features of ``window`` of the image ``key`` (computed once, kept)."""
        import torch

        k = (key, window)
        if k in self._embeddings:
            self._embeddings.move_to_end(k)
            return self._embeddings[k]
        x = torch.from_numpy(model_input(image, window)).to(self.device)
        with torch.inference_mode():
            feats = self.model.get_image_embeddings(x)
        self._embeddings[k] = feats
        while len(self._embeddings) > EMBEDDINGS_KEPT:
            self._embeddings.popitem(last=False)
        return feats

    def has_embedding(self, key: str, window: Box) -> bool:
        return (key, window) in self._embeddings

    def segment(self, image: np.ndarray, key: str, clicks: Sequence[Click],
                box: tuple[float, float, float, float] | None = None, previous: SamResult | None = None) -> SamResult:
        """The mask for the clicks (x, y pixel indices; positive or negative) and an optional box
        (x0, y0, x1, y1), refined from ``previous`` (the mask of the clicks before) when given."""
        import torch

        if not clicks and box is None:
            raise ValueError("SAM 2 needs a click or a box")
        h, w = image.shape[:2]
        window = window_for((h, w), clicks, box, previous.window if previous else None)
        sy, sx = SIDE / window.shape[0], SIDE / window.shape[1]
        with self._lock:
            feats = self.embedding(image, key, window)
            kwargs = {}
            if clicks:
                pts = [[(c.x - window.x0 + 0.5) * sx, (c.y - window.y0 + 0.5) * sy] for c in clicks]
                kwargs["input_points"] = torch.tensor([[pts]], dtype=torch.float32, device=self.device)
                kwargs["input_labels"] = torch.tensor([[[int(c.positive) for c in clicks]]], device=self.device)
            if box is not None:
                b = [(box[0] - window.x0) * sx, (box[1] - window.y0) * sy, (box[2] - window.x0 + 1) * sx,
                     (box[3] - window.y0 + 1) * sy]
                kwargs["input_boxes"] = torch.tensor([[b]], dtype=torch.float32, device=self.device)
            refine = previous is not None and previous.window == window
            if refine:
                kwargs["input_masks"] = torch.from_numpy(previous.logits)[None, None].to(self.device)
            # one click alone is ambiguous (a wheel or the car?): SAM's three masks, the best by
            # its own estimate; later prompts settle it, as SAM's own predictor does
            multi = len(clicks) == 1 and box is None and not refine
            with torch.inference_mode():
                out = self.model(image_embeddings=feats, multimask_output=multi, **kwargs)
            scores = out.iou_scores[0, 0].float()
            best = int(torch.argmax(scores))
            low = out.pred_masks[0, 0, best].float()
            up = torch.nn.functional.interpolate(low[None, None], size=window.shape, mode="bilinear",
                                                 align_corners=False)[0, 0]
            inside = (up > 0).cpu().numpy()
            logits = low.cpu().numpy().astype(np.float32)
        rows, cols = np.flatnonzero(inside.any(axis=1)), np.flatnonzero(inside.any(axis=0))
        if len(rows):
            part = Box(int(rows[0]), int(cols[0]), int(rows[-1]) + 1, int(cols[-1]) + 1)
            found = Box(window.y0 + part.y0, window.x0 + part.x0, window.y0 + part.y1, window.x0 + part.x1)
            pixels = inside[part.slices]
        else:
            found, pixels = window, inside
        return SamResult(found, np.ascontiguousarray(pixels), window, logits, float(scores[best]))

    def click_tool(self, image: np.ndarray, key: str):
        """The model as the click simulator sees it (seglib.edit.clicks): each call refines the
        mask of the clicks before."""
        state: dict = {}

        def tool(clicks) -> np.ndarray:
            prev = state.get("result") if len(clicks) > 1 else None
            state["result"] = self.segment(image, key, clicks, previous=prev)
            return state["result"].full(image.shape[:2])
        return tool
