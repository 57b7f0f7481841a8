"""Which unlabeled image to label next: the ones the models are least sure of, not ten of a kind.

>>> queue = label_next(ds, ["checkpoints/unet", "checkpoints/segformer"])
>>> queue.head()       # image_id, score, entropy, disagreement, similar_to, why (best first)

Each unlabeled image (without a label saved in the review store yet) is predicted by every run
and their mean; its score is the mean of the ensemble's pixel entropy (0: sure, 1: uniform)
and, with several runs, the share of pixels where a run disagrees with the ensemble. With
``diverse`` the queue is reordered greedily: an image whose small grey thumbnail correlates
above ``similar`` with one already queued (near-identical frames of a video) goes after every
image that does not, so the top of the queue covers different scenes.
"""
from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import pandas as pd

from ..predict import Ensemble, dataset_layout, open_members, predict
from .assist import AssistError

THUMB = 16  # thumbnail side for the diversity test


def candidates(ds) -> list[str]:
    """Unlabeled images without a saved label (in the corrected view: still unlabeled)."""
    return [i for i in ds.ids if not ds.is_labeled(i)]


def label_next(ds, run_dirs: Sequence[str], ids: Sequence[str] | None = None, *, diverse: bool = True,
               similar: float = 0.95, tta: bool = False, device: str = "auto", progress=None,
               tile: int | None = None) -> pd.DataFrame:
    """The queue (see the module docstring), best first; ``ids`` default to :func:`candidates`."""
    ids = list(candidates(ds) if ids is None else ids)
    cols = ["image_id", "score", "entropy", "disagreement", "similar_to", "why"]
    if not ids:
        return pd.DataFrame(columns=cols)
    files = ds.original()
    layout = dataset_layout(files)
    members, problems = open_members(list(run_dirs), layout)
    if not members:
        raise AssistError(problems[0] if problems else "choose a trained run")
    ens = [Ensemble("mean", tuple(m.name for m in members), name="ensemble")] if len(members) > 1 else []
    pred = predict(files, members, ens, ids, tta=tta, device=device, layout=layout, progress=progress,
                   fingerprint=files.fingerprint(), tile=tile)
    final = pred.columns[ens[0].name if ens else members[0].name]
    done = [i for i in ids if i in final]
    entropy = np.array([float(final.entropy_map(i).mean()) for i in done])
    if len(members) > 1:
        disagree = np.array([np.mean([float((pred.columns[m.name].mask(i) != final.mask(i)).mean()) for m in members])
                             for i in done])
    else:
        disagree = np.zeros(len(done))
    thumbs = np.stack([_thumb(ds, i) for i in done]) if done else np.zeros((0, THUMB * THUMB))
    return rank(done, entropy, disagree, thumbs if diverse else None, similar)


def rank(ids: Sequence[str], entropy: np.ndarray, disagreement: np.ndarray, thumbs: np.ndarray | None = None,
         similar: float = 0.95) -> pd.DataFrame:
    """Order images by score (mean of entropy and disagreement, each 0..1), highest first; with
    ``thumbs`` ((N, D) z-normalised rows) push near-copies of a queued image behind the rest."""
    ids = list(ids)
    score = (np.asarray(entropy, float) + np.asarray(disagreement, float)) / 2
    order = list(np.argsort(-score, kind="stable"))
    similar_to: dict[int, int] = {}
    if thumbs is not None and len(ids) > 1:
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
    for k in order:
        twin = similar_to.get(k)
        why = f"entropy {entropy[k]:.2f}, runs disagree on {disagreement[k]:.0%} of pixels"
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
