"""A trained run's (or an ensemble's) prediction of one image, for the editor's assistance.

>>> pred = predict_one(ds, ["checkpoints/unet", "checkpoints/segformer"], "00012")

Predictions depend on the image only, so they are made on the files' view of the dataset and
cached under its files' fingerprint: saving a corrected mask does not predict the image again.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..predict import Ensemble, dataset_layout, open_members, predict


class AssistError(Exception):
    """No usable run: the message says why."""


def predict_one(ds, run_dirs: Sequence[str], image_id: str, ensemble: str = "mean", tta: bool = False,
                device: str = "auto", tile: int | None = None) -> np.ndarray:
    """(H, W) uint8 class ids predicted for ``image_id`` by the runs (their ``ensemble`` when
    there are several: mean, weighted or vote). Raises AssistError naming what cannot be used."""
    files = ds.original()
    layout = dataset_layout(files)
    members, problems = open_members(list(run_dirs), layout)
    if not members:
        raise AssistError(problems[0] if problems else "choose a trained run")
    ensembles = []
    if len(members) > 1:
        kind = "mean" if ensemble == "weighted" else ensemble  # weights need a fitting pass: not for one image
        ensembles = [Ensemble(kind, tuple(m.name for m in members), name="ensemble")]
    pred = predict(files, members, ensembles, [image_id], tta=tta, device=device, layout=layout,
                   fingerprint=files.fingerprint(), tile=tile)
    column = pred.columns[ensembles[0].name if ensembles else members[0].name]
    if image_id not in column:
        why = dict(pred.skipped).get(image_id, "it could not be read")
        raise AssistError(f"{image_id}: not predicted ({why})")
    return np.array(column.mask(image_id), np.uint8)
