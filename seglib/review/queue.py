"""From what a reviewer picked to decisions, and the queue of images to decide on: plain
functions over the store and detector tables (the Review page calls them, tests drive them).

>>> ids = ids_from_selection(event.selection, valid=stats.ids)   # points picked on the map
>>> flag_detections(store, key, rows_in_groups(detections, picked_rows))
>>> queue = review_queue(store, key, ["flagged"], order=stats.ids)  # worst score first
"""
from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from .store import ReviewStore


def ids_from_selection(selection, valid: Sequence[str] | None = None) -> list[str]:
    """Image ids of a plotly selection event (``st.plotly_chart(on_select=...)``'s
    ``event.selection`` or a dict with ``points``): each point's ``customdata`` is an image id
    (or a list whose first item is). Order kept, duplicates and unknown ids dropped."""
    if selection is None:
        return []
    points = selection.get("points", []) if hasattr(selection, "get") else getattr(selection, "points", [])
    ids: dict[str, None] = {}
    for p in points or []:
        cd = p.get("customdata") if hasattr(p, "get") else None
        if isinstance(cd, (list, tuple)):
            cd = cd[0] if cd else None
        if cd is not None:
            ids[str(cd)] = None
    out = list(ids)
    if valid is not None:
        known = set(valid)
        out = [i for i in out if i in known]
    return out


def flag_detections(store: ReviewStore, key: str, rows: pd.DataFrame, who: str = "") -> int:
    """Flag the images of detector rows (columns image_id, detector, reason, score), each with
    its own reason, detector and score. An image found by several detectors gets one event per
    detector, so every reason is kept. Returns the number of distinct images flagged."""
    if rows is None or len(rows) == 0:
        return 0
    score = rows["score"] if "score" in rows else None
    store.flag(key, rows["image_id"].astype(str).tolist(), reason=rows["reason"].astype(str).tolist(),
               detector=rows["detector"].astype(str).tolist(),
               score=None if score is None else score.astype(float).tolist(), who=who)
    return rows["image_id"].nunique()


def rows_in_groups(all_rows: pd.DataFrame, selected: pd.DataFrame) -> pd.DataFrame:
    """Every row of ``all_rows`` that shares (detector, group) with a selected row; rows
    without a group stand alone. Used to flag a whole duplicate cluster from one row."""
    if selected is None or selected.empty:
        return all_rows.iloc[0:0]
    if "group" not in all_rows:
        return selected
    has = selected["group"].notna() & (selected["group"].astype(str) != "")
    pairs = set(zip(selected.loc[has, "detector"], selected.loc[has, "group"].astype(str), strict=True))
    in_group = [(d, str(g)) in pairs for d, g in zip(all_rows["detector"], all_rows["group"], strict=True)]
    return pd.concat([all_rows[in_group], selected]).drop_duplicates(["image_id", "detector"])


def queue_index(queue: Sequence[str], current: str | None, last_index: int) -> int:
    """Where a review queue stands: at ``current`` if it is still queued, else at the same
    position (the image just decided left the queue, so the next one moved up), clamped."""
    if not queue:
        return 0
    if current is not None and current in queue:
        return list(queue).index(current)
    return min(max(last_index, 0), len(queue) - 1)


def review_queue(store: ReviewStore, key: str, states: Sequence[str] = ("flagged",),
                 order: Sequence[str] | None = None) -> pd.DataFrame:
    """Decisions whose state is in ``states``, worst score first, then in ``order`` (the
    dataset's id order) for images flagged by hand."""
    d = store.decisions(key)
    d = d[d["state"].isin(list(states))].copy()
    rank = {i: k for k, i in enumerate(order)} if order is not None else {}
    d["_pos"] = [rank.get(i, len(rank)) for i in d["image_id"]]
    d["_score"] = pd.to_numeric(d["score"], errors="coerce").fillna(-1.0)
    return d.sort_values(["_score", "_pos", "image_id"], ascending=[False, True, True]).drop(
        columns=["_pos", "_score"]).reset_index(drop=True)
