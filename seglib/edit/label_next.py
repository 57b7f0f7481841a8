"""Which unlabeled image to label next: the ones the models are least sure of, not ten of a kind.

>>> queue = label_next(ds, ["checkpoints/unet", "checkpoints/segformer"])
>>> queue.head()       # image_id, score, entropy, disagreement, similar_to, why (best first)
>>> label_next(ds, runs, strategy="kcenter")   # any of STRATEGIES; "random" and "kcenter" need no run

Each unlabeled image (without a label saved in the review store yet) is predicted by every run;
its score is the mean of the runs' pixel entropy (0: sure, 1: uniform) and, with several runs,
the share of pixels where a run disagrees with their pixelwise vote. Both come from each run's
cached column alone, so adding or retraining a run predicts only that run. With
``diverse`` the queue is reordered greedily: an image whose small grey thumbnail correlates
above ``similar`` with one already queued (near-identical frames of a video) goes after every
image that does not, so the top of the queue covers different scenes.
"""
from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import pandas as pd

from ..predict import dataset_layout, open_members, predict
from .assist import AssistError
from .strategies import NEEDS_RUNS, STRATEGIES  # noqa: F401  (named here by the page and the CLI)

THUMB = 16  # thumbnail side for the diversity test


def candidates(ds) -> list[str]:
    """Unlabeled images without a saved label (in the corrected view: still unlabeled)."""
    return [i for i in ds.ids if not ds.is_labeled(i)]


def label_next(ds, run_dirs: Sequence[str], ids: Sequence[str] | None = None, *, diverse: bool = True,
               similar: float = 0.95, tta: bool = False, device: str = "auto", progress=None,
               tile: int | None = None, strategy: str | None = None, seed: int = 0) -> pd.DataFrame:
    """The queue (see the module docstring), best first; ``ids`` default to :func:`candidates`.
    ``strategy``: one of STRATEGIES (default "score", or "uncertainty" when not ``diverse``)."""
    strategy = strategy or ("score" if diverse else "uncertainty")
    if strategy not in STRATEGIES:
        raise ValueError(f"label-next strategy {strategy!r}: one of {', '.join(STRATEGIES)}")
    ids = list(candidates(ds) if ids is None else ids)
    cols = ["image_id", "score", "entropy", "disagreement", "similar_to", "why"]
    if not ids:
        return pd.DataFrame(columns=cols)
    if strategy not in NEEDS_RUNS:   # random and k-center look at the images only
        labeled = [i for i in ds.ids if ds.is_labeled(i)] if strategy == "kcenter" else []
        thumbs = np.stack([_thumb(ds, i) for i in ids])
        known = np.stack([_thumb(ds, i) for i in labeled]) if labeled else None
        zeros = np.zeros(len(ids))
        return rank(ids, zeros, zeros, thumbs, similar, strategy=strategy, seed=seed, labeled=known)
    files = ds.original()
    layout = dataset_layout(files)
    members, problems = open_members(list(run_dirs), layout)
    if not members:
        raise AssistError(problems[0] if problems else "choose a trained run")
    # Only the runs' own columns, no ensemble column: each is cached on disk by its weights, so a
    # run added, retrained or dropped predicts that run alone (an ensemble needs every member's
    # probabilities, which are not kept on disk).
    pred = predict(files, members, [], ids, tta=tta, device=device, layout=layout, progress=progress,
                   fingerprint=files.fingerprint(), tile=tile)
    cols = [pred.columns[m.name] for m in members]
    done = [i for i in ids if all(i in c for c in cols)]
    entropy = np.array([np.mean([float(c.entropy_map(i).mean()) for c in cols]) for i in done])
    disagree = np.array([_disagreement([c.mask(i) for c in cols]) for i in done]) if len(cols) > 1 \
        else np.zeros(len(done))
    thumbs = np.stack([_thumb(ds, i) for i in done]) if done else np.zeros((0, THUMB * THUMB))
    return rank(done, entropy, disagree, thumbs if strategy == "score" else None, similar, strategy=strategy)


def _disagreement(masks: list[np.ndarray]) -> float:
    """The runs' mean share of pixels off their pixelwise vote (ties go to the earlier run)."""
    stack = np.stack(masks)
    agree = np.stack([(stack == m).sum(0) for m in stack])          # (K, H, W): runs agreeing with run k
    vote = np.take_along_axis(stack, agree.argmax(0)[None], 0)[0]
    return float(np.mean([(m != vote).mean() for m in stack]))


def kcenter_order(thumbs: np.ndarray, labeled: np.ndarray | None = None, start: int = 0) -> list[int]:
    """Greedy k-center (Sener & Savarese 2018, on thumbnails): each next index the farthest from
    every labeled row and every one chosen before it; the first is the farthest from the labeled
    rows, or ``start`` when there are none."""
    x = np.asarray(thumbs, np.float32)
    n = len(x)
    if labeled is not None and len(labeled):
        lab = np.asarray(labeled, np.float32)
        dist = np.min(((x[:, None, :] - lab[None, :, :]) ** 2).sum(-1), axis=1)
        first = int(np.argmax(dist)) if n else 0
    else:
        dist, first = np.full(n, np.inf, np.float32), start
    order: list[int] = []
    taken = np.zeros(n, bool)
    k = first
    for _ in range(n):
        order.append(k)
        taken[k] = True
        dist = np.minimum(dist, ((x - x[k]) ** 2).sum(-1))
        k = int(np.argmax(np.where(taken, -1.0, dist)))
    return order


def rank(ids: Sequence[str], entropy: np.ndarray, disagreement: np.ndarray, thumbs: np.ndarray | None = None,
         similar: float = 0.95, strategy: str | None = None, seed: int = 0,
         labeled: np.ndarray | None = None) -> pd.DataFrame:
    """Order images by ``strategy`` (see STRATEGIES; default "score" with ``thumbs``, else
    "uncertainty"). The score is the mean of entropy and disagreement (each 0..1), highest first;
    "score" pushes near-copies ((N, D) z-normalised ``thumbs`` correlating above ``similar``) of
    a queued image behind the rest; "kcenter" orders by ``thumbs`` (from the ``labeled`` rows)."""
    ids = list(ids)
    strategy = strategy or ("score" if thumbs is not None else "uncertainty")
    entropy, disagreement = np.asarray(entropy, float), np.asarray(disagreement, float)
    score = (entropy + disagreement) / 2
    if strategy == "entropy":
        score = entropy.copy()
    elif strategy == "disagreement":
        score = disagreement.copy()
    order = list(np.argsort(-score, kind="stable"))
    if strategy == "random":
        order = list(np.random.default_rng(seed).permutation(len(ids)))
    elif strategy == "kcenter" and thumbs is not None:
        order = kcenter_order(thumbs, labeled, start=int(order[0]) if order else 0)
    similar_to: dict[int, int] = {}
    if strategy == "score" and thumbs is not None and len(ids) > 1:
        picked: list[int] = []
        later: list[int] = []
        for k in order:
            if picked:
                corr = thumbs[picked] @ thumbs[k] / thumbs.shape[1]
                best = int(np.argmax(corr))
                if corr[best] >= similar:
                    similar_to[k] = picked[best]
                    later.append(k)
                    continue
            picked.append(k)
        order = picked + later
    rows = []
    for n, k in enumerate(order):
        twin = similar_to.get(k)
        why = f"entropy {entropy[k]:.2f}, runs disagree on {disagreement[k]:.0%} of pixels"
        if strategy == "random":
            why = f"random order (seed {seed})"
        elif strategy == "kcenter":
            why = "least like the labeled images and those queued before it" if n else "least like the labeled images"
        if twin is not None:
            why += f"; looks like {ids[twin]} (queued before it)"
        rows.append({"image_id": ids[k], "score": float(score[k]), "entropy": float(entropy[k]),
                     "disagreement": float(disagreement[k]), "similar_to": None if twin is None else ids[twin],
                     "why": why})
    return pd.DataFrame(rows, columns=["image_id", "score", "entropy", "disagreement", "similar_to", "why"])


def _thumb(ds, image_id: str) -> np.ndarray:
    """A THUMB x THUMB grey thumbnail as a z-normalised row (correlation = dot / D)."""
    img, _, _, _ = ds.load_pair_reduced(image_id, shorter=THUMB)
    if img is None:
        return np.zeros(THUMB * THUMB)
    grey = img if img.ndim == 2 else img[..., :3].mean(-1)
    small = cv2.resize(grey.astype(np.float32), (THUMB, THUMB), interpolation=cv2.INTER_AREA).ravel()
    std = small.std()
    return (small - small.mean()) / std if std > 1e-6 else np.zeros_like(small)
