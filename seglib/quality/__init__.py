"""Out-of-fold label quality: every labeled image scored by a model that never trained on it.

>>> from seglib.quality import cross_validate, score_labels
>>> cross_validate(TrainConfig(data="data/demo/mars_demo.npz", epochs=8), "quality/unet", k=5)
>>> scores = score_labels(open_dataset("data/demo/mars_demo.npz"), "quality/unet")
>>> scores.table.head()            # most suspicious first, with the reasons in words
"""
from .crossval import DEFAULT_FOLDS, cross_validate, default_out, plan_folds, read_manifest
from .folds import FoldPlan, assign_folds, fold_dir
from .regions import Finding, find_regions
from .score import LabelScores, load_scores, score_labels

__all__ = ["DEFAULT_FOLDS", "FoldPlan", "Finding", "LabelScores", "assign_folds", "cross_validate", "default_out",
           "find_regions",
           "fold_dir", "load_scores", "plan_folds", "read_manifest", "score_labels"]
