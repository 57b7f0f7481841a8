"""What the Compare page and ``seglib evaluate`` read from predictions: per-image and per-dataset
metrics, confusion matrices, the images behind each confusion, and agreement without labels.

>>> cmp = Comparison(predict(ds, members, ensembles, ids))
>>> cmp.scores("unet")                       # the evaluate contract's dictionary
>>> cmp.per_image()                          # one row per image: mIoU and IoU per class per column
>>> cmp.beats("segformer", "unet").head()    # where SegFormer beats U-Net the most
>>> cmp.top_confusions("unet", true=3, pred=1)   # images where sand is taken for soil the most

Everything comes from the per-image confusion matrices and masks of the columns: no pixel is
predicted again, and tables of thousands of images take milliseconds.
"""
from __future__ import annotations

from functools import cached_property

import numpy as np
import pandas as pd

from ..metrics import normalized, per_image_scores, scores
from .column import Column
from .run import Predictions

# Orders of the per-image table (and of stepping through images): (label, needs labels).
ORDERS = {"a_beats_b": ("Where A beats B the most", True), "b_beats_a": ("Where B beats A the most", True),
          "worst": ("Worst first (A's mIoU)", True), "best": ("Best first (A's mIoU)", True),
          "least_agreement": ("Least agreement among the runs", False),
          "disagreement": ("Most disagreement between A and B", False),
          "least_confident": ("Least confident first (A)", False), "id": ("Image id", False)}
METRICS = {"miou": "mIoU", "miou_no_bg": "mIoU (no bg)", "pixel_accuracy": "pixel acc",
           "mean_pixel_accuracy": "mean pixel acc", "dice": "Dice"}


class Comparison:
    """Columns of one prediction run over the images they all hold (in the order asked for)."""

    def __init__(self, pred: Predictions):
        self.pred = pred
        self.layout = pred.layout
        self.names = pred.names
        self.columns: dict[str, Column] = pred.columns
        cols = list(self.columns.values())
        self.ids = [i for i in pred.ids if all(i in c for c in cols)]
        self._rows = {n: np.array([c.row(i) for i in self.ids], np.int64) for n, c in self.columns.items()}
        first = cols[0] if cols else None
        self.labeled = first.labeled[self._rows[first.name]] if first else np.zeros(0, bool)
        self.model_names = [m.name for m in pred.members if m.name in self.columns]
        self.ensemble_names = [e.name for e in pred.ensembles if e.name in self.columns]

    @property
    def has_labels(self) -> bool:
        return bool(self.labeled.any())

    @property
    def labeled_ids(self) -> list[str]:
        return [i for i, lab in zip(self.ids, self.labeled, strict=True) if lab]

    def _cms(self, name: str) -> np.ndarray:
        """int64 (N, K, K) per-image confusion matrices of a column, in ``self.ids`` order."""
        return self.columns[name].cms[self._rows[name]].astype(np.int64)

    # --- per dataset --------------------------------------------------------------------------
    def confusion(self, name: str) -> np.ndarray:
        """int64 (K, K) pixels, [true, predicted], summed over the labeled images."""
        return self._cms(name)[self.labeled].sum(0)

    def normalized_confusion(self, name: str) -> np.ndarray:
        """Rows sum to 1: the share of each true class predicted as each class."""
        return normalized(self.confusion(name))

    def scores(self, name: str) -> dict:
        """The evaluate contract's scores of one column over the labeled images."""
        lay = self.layout
        return scores(self.confusion(name), lay.class_names, lay.scored, lay.background)

    def scores_table(self) -> pd.DataFrame:
        """One row per column: the dataset metrics and the IoU of each scored class."""
        rows = []
        for name in self.names:
            s = self.scores(name)
            rows.append({"column": name, **{METRICS[k]: s[k] for k in METRICS},
                         **{f"IoU {c}": v for c, v in s["per_class_iou"].items()}})
        return pd.DataFrame(rows).set_index("column").astype(float)

    def class_shares(self) -> pd.DataFrame:
        """Share of pixels of each class: the ground truth (labeled images) and each column's
        prediction (all images). A model that never predicts a rare class shows here, with or
        without labels. Index: class names; columns: "ground truth" (when labeled) and columns."""
        lay = self.layout
        out = {}
        if self.has_labels:
            truth = self._cms(self.names[0])[self.labeled].sum((0, 2)).astype(np.float64)
            out["ground truth"] = truth / max(truth.sum(), 1)
        for name in self.names:
            counts = self.columns[name].counts[self._rows[name]].sum(0).astype(np.float64)
            out[name] = counts / max(counts.sum(), 1)
        return pd.DataFrame(out, index=lay.class_names).loc[[lay.class_names[c] for c in lay.scored]]

    # --- per image ------------------------------------------------------------------------------
    def image_scores(self, name: str) -> dict[str, np.ndarray]:
        """Per-image ``miou``, ``miou_no_bg``, ``pixel_accuracy`` (N,) and ``iou`` (N, K);
        NaN for unlabeled images."""
        lay = self.layout
        out = per_image_scores(self._cms(name), lay.scored, lay.background)
        for v in out.values():
            v[~self.labeled] = np.nan
        return out

    @cached_property
    def _per_image(self) -> pd.DataFrame:
        lay = self.layout
        table = {"labeled": self.labeled}
        for name in self.names:
            s = self.image_scores(name)
            table[f"mIoU · {name}"] = s["miou"]
            table[f"pixel acc · {name}"] = s["pixel_accuracy"]
            for c in lay.scored:
                table[f"IoU {lay.class_names[c]} · {name}"] = s["iou"][:, c]
        for name in self.names:
            table[f"confidence · {name}"] = self.mean_confidence(name)
        if len(self.model_names) >= 2:
            table["agreement"] = self.agreement()
        return pd.DataFrame(table, index=pd.Index(self.ids, name="image_id"))

    def per_image(self) -> pd.DataFrame:
        """One row per image (index image_id): ``labeled``; per column ``mIoU · NAME``,
        ``pixel acc · NAME``, ``IoU CLASS · NAME`` (NaN where unlabeled or the class is in
        neither mask), ``confidence · NAME`` (mean over pixels); ``agreement`` with two or more
        models. A copy: sort and filter it freely."""
        return self._per_image.copy()

    def mean_confidence(self, name: str) -> np.ndarray:
        return self.columns[name].mean_confidence()[self._rows[name]]

    def disagreement(self, a: str, b: str) -> pd.Series:
        """Share of pixels where columns a and b differ, per image, most first."""
        s = pd.Series(1.0 - self.agreement([a, b]), index=pd.Index(self.ids, name="image_id"), name=f"{a} ≠ {b}")
        return s.sort_values(ascending=False, kind="mergesort")

    def agreement(self, names: list[str] | None = None) -> np.ndarray:
        """Per image, the share of pixels where every one of ``names`` (default: the models)
        predicts the same class."""
        names = names or self.model_names
        if len(names) < 2:
            return np.ones(len(self.ids))
        return np.array([self._agreement(names, i) for i in self.ids])

    def _agreement(self, names: list[str], image_id: str) -> float:
        """One image at a time (the masks are read from the columns' files): memory of one image."""
        first = self.columns[names[0]].mask(image_id)
        same = np.ones(first.shape, bool)
        for n in names[1:]:
            same &= self.columns[n].mask(image_id) == first
        return float(np.count_nonzero(same) / max(same.size, 1))

    def beats(self, a: str, b: str) -> pd.Series:
        """mIoU of column a minus column b on each labeled image, a's biggest wins first."""
        diff = self.image_scores(a)["miou"] - self.image_scores(b)["miou"]
        s = pd.Series(diff, index=pd.Index(self.ids, name="image_id"), name=f"{a} − {b}")[self.labeled]
        return s.sort_values(ascending=False, kind="mergesort")

    def default_order(self) -> str:
        """The order to step through images in first: where one column beats another the most
        (two or more columns, labels), the worst first (one column), else least agreement or
        least confidence without labels."""
        if self.has_labels:
            return "a_beats_b" if len(self.names) >= 2 else "worst"
        return "least_agreement" if len(self.model_names) >= 2 else "least_confident"

    def ranking(self, by: str, a: str, b: str | None = None) -> pd.Series:
        """Image ids in the order ``by`` (a key of :data:`ORDERS`) with the value sorted on, for
        columns ``a`` and ``b``. Orders on labels rank the labeled images only."""
        index = pd.Index(self.ids, name="image_id")
        if by == "a_beats_b":
            return self.beats(a, b or a)
        if by == "b_beats_a":
            return self.beats(b or a, a)
        if by in ("worst", "best"):
            s = pd.Series(self.image_scores(a)["miou"], index=index, name=f"mIoU · {a}")[self.labeled]
            return s.sort_values(ascending=by == "worst", kind="mergesort")
        if by == "disagreement":
            return self.disagreement(a, b or a)
        if by == "least_agreement":
            return pd.Series(self.agreement(), index=index, name="agreement").sort_values(kind="mergesort")
        if by == "least_confident":
            return pd.Series(self.mean_confidence(a), index=index, name=f"confidence · {a}").sort_values(
                kind="mergesort")
        if by == "id":
            return pd.Series(np.arange(len(self.ids)), index=index, name="position")
        raise ValueError(f"unknown order {by!r}; choose from {', '.join(ORDERS)}")

    def top_confusions(self, name: str, true: int, pred: int, n: int = 12) -> pd.DataFrame:
        """The images where column ``name`` predicts class ``pred`` on pixels of class ``true``
        the most: image_id, pixels, share (of the image's ``true`` pixels). Only images where it
        happens at all."""
        cms = self._cms(name)
        px = cms[:, true, pred]
        share = px / np.maximum(cms[:, true].sum(1), 1)
        order = np.lexsort((-share, -px))[:n]
        order = order[px[order] > 0]
        return pd.DataFrame({"image_id": [self.ids[k] for k in order], "pixels": px[order],
                             "share": share[order]})

    # --- one image -------------------------------------------------------------------------------
    def mask(self, name: str, image_id: str) -> np.ndarray:
        return self.columns[name].mask(image_id)

    def image_class_table(self, image_id: str) -> pd.DataFrame:
        """One row per column (index "IoU on this image"): the image's mIoU and the IoU of each
        scored class (NaN: the class is in neither the label nor that column's prediction)."""
        lay, row = self.layout, self.ids.index(image_id)
        s = {n: self.image_scores(n) for n in self.names}
        table = pd.DataFrame({lay.class_names[c]: [s[n]["iou"][row, c] for n in self.names] for c in lay.scored},
                             index=pd.Index(self.names, name="IoU on this image"))
        table.insert(0, "mIoU", [s[n]["miou"][row] for n in self.names])
        return table

    def image_disagreement(self, a: str, b: str, image_id: str) -> float:
        """Share of the image's pixels where columns a and b predict different classes."""
        return float(np.mean(self.mask(a, image_id) != self.mask(b, image_id)))


def best_cells(table: pd.DataFrame) -> pd.DataFrame:
    """bool, the shape of ``table``: the best value of each column of scores. A NaN (the class
    is in neither mask: nothing to get wrong) beats any score, so a column holding one has no
    best cell, and neither has a column of zeros."""
    top = table.max()
    return table.eq(top) & table.notna() & (top > 0) & table.notna().all()
