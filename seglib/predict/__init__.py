"""Predictions of trained runs and their ensembles on any dataset, and what to learn from them.

>>> from seglib.predict import open_members, dataset_layout, predict, Ensemble, Comparison
>>> layout = dataset_layout(ds)
>>> members, problems = open_members(["checkpoints/unet", "checkpoints/segformer"], layout)
>>> pred = predict(ds, members, [Ensemble("mean", ("unet", "segformer"))], ds.labeled_ids, tta=True)
>>> cmp = Comparison(pred)
>>> cmp.scores_table()                    # mIoU, Dice, ... and IoU per class, one row per column
>>> cmp.beats("segformer", "unet")        # per-image mIoU differences, biggest first

Modules: :mod:`.members` (run folders checked against a dataset), :mod:`.infer` (batches, TTA),
:mod:`.ensemble` (mean / weighted / vote, weight fitting), :mod:`.column` (one column's stored
results), :mod:`.run` (the cached prediction pass), :mod:`.compare` (metrics and tables),
:mod:`.quality` (cleanlab label quality), :mod:`.embeddings` (a learned map for the Review page),
:mod:`.export` (masks as PNG / npz / zip).
"""
from __future__ import annotations

from .column import Column
from .compare import METRICS, ORDERS, Comparison, best_cells
from .embeddings import embedding_projection, encoder_embeddings
from .ensemble import KINDS, CrossFit, Ensemble, fit_weights
from .export import masks_zip, write_masks
from .members import (
    Layout,
    Member,
    RunChoice,
    dataset_layout,
    default_runs,
    open_member,
    open_members,
    run_choices,
)
from .quality import LabelQuality, label_quality
from .run import Predictions, fit_ensemble, predict, shared_val_ids

__all__ = ["Column", "METRICS", "ORDERS", "Comparison", "best_cells", "KINDS", "CrossFit", "Ensemble", "fit_weights",
           "masks_zip", "write_masks", "Layout", "Member", "RunChoice", "run_choices", "default_runs", "dataset_layout",
           "open_member",
           "open_members", "Predictions", "fit_ensemble", "predict", "shared_val_ids", "embedding_projection",
           "encoder_embeddings", "LabelQuality", "label_quality"]
