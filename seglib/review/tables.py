"""The Review page's two tables as pure functions: the map (one row per image, with its place on
the 2-D projection, review state and strongest detector) and the detector rows a reviewer filters.

>>> table = map_table(stats.per_image, projection(ds, stats), store.states(key), detect(ds, stats))
>>> rows = detector_rows(detect(ds, stats), store.states(key), detectors=["shared_mask"], min_score=0.5)
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping

import pandas as pd

UNREVIEWED = "unreviewed"  # the review state of an image nobody has flagged or decided on
NO_DETECTOR = "none"       # the detector of an image no detector flagged


def map_table(per_image: pd.DataFrame, projection: pd.DataFrame, states: Mapping[str, str],
              detections: pd.DataFrame) -> pd.DataFrame:
    """``per_image`` joined with the projection (pc1, pc2), plus "review state" (UNREVIEWED for
    images without one) and "detector" (the highest-scoring detector that flagged the image,
    NO_DETECTOR if none did). Index: image_id, in ``per_image`` order."""
    table = per_image.join(projection)
    table["review state"] = [states.get(i, UNREVIEWED) for i in table.index]
    top = detections.sort_values("score", ascending=False).drop_duplicates("image_id").set_index("image_id")["detector"]
    table["detector"] = top.reindex(table.index).fillna(NO_DETECTOR).to_numpy()
    return table


def map_axes(table: pd.DataFrame) -> list[str]:
    """Columns a map axis can show: pc1, pc2, then every other numeric column (``labeled`` left out)."""
    numeric = [c for c in table.columns if pd.api.types.is_numeric_dtype(table[c]) and c != "labeled"]
    return ["pc1", "pc2"] + [c for c in numeric if c not in ("pc1", "pc2")]


def detector_rows(detections: pd.DataFrame, states: Mapping[str, str], detectors: Iterable[str] | None = None,
                  min_score: float = 0.0) -> pd.DataFrame:
    """The detector rows of ``detectors`` (all if None) scoring at least ``min_score``, most
    suspicious first, with each image's review state as a second column "state"."""
    keep = detections["score"] >= min_score
    if detectors is not None:
        keep &= detections["detector"].isin(list(detectors))
    rows = detections[keep].reset_index(drop=True)
    rows.insert(1, "state", [states.get(i, UNREVIEWED) for i in rows["image_id"]])
    return rows


def images_per_detector(rows: pd.DataFrame) -> dict[str, int]:
    """{detector: number of distinct images it flagged among ``rows``}, by detector name."""
    return {str(d): int(n) for d, n in rows.groupby("detector")["image_id"].nunique().items()}
