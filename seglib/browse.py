"""Filtering, sorting and paging of a dataset's images as pure functions over ``stats.per_image``.

>>> f = BrowseFilter(present=(4,), ranges=(Range("frac_4", 0.01, 1.0),), sort_by="frac_4", descending=True)
>>> ids = select(stats.per_image, f, states=store.states(key))    # filtered, sorted image ids
>>> page_ids, n_pages = page_of(ids, page=0, per_page=24)

A plot selection (the points Streamlit returns from ``st.plotly_chart(on_select=...)``)
becomes a filter with :func:`apply_selection`; the plots in :mod:`seglib.viz.plots` put what a
point means into its ``customdata`` (see :data:`CLASS`, :data:`RANGE`, :data:`PAIR`).
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from .data.classmap import ClassMap
from .data.folder import natural_key

__all__ = ["Range", "BrowseFilter", "filter_mask", "sort_ids", "select", "page_of", "apply_selection",
           "natural_key", "chips", "remove_chip", "subset_per_class", "subset_cooccurrence", "stat_columns",
           "class_pixels", "column_label", "NO_STATE", "CLASS", "RANGE", "PAIR"]

NO_STATE = "none"      # review-state filter value for images nobody has judged yet
# customdata tags: ["class", class_id, ...], ["range", column, lo, hi, closed, class_id or -1], ["pair", a, b, ...]
CLASS, RANGE, PAIR = "class", "range", "pair"


@dataclass(frozen=True)
class Range:
    """``lo <= per_image[column] < hi`` (``<= hi`` when ``closed``). NaN never matches."""

    column: str
    lo: float
    hi: float
    closed: bool = True

    def test(self, values: np.ndarray) -> np.ndarray:
        upper = values <= self.hi if self.closed else values < self.hi
        return (values >= self.lo) & upper


@dataclass(frozen=True)
class BrowseFilter:
    """What the grid shows, in which order. Frozen and hashable, so it can key caches.

    present: class ids that must all occur in the mask; absent: ids that must not occur.
    ranges: bounds on any per-image column (``frac_<id>``, ``mean``, ``width``...).
    states: review states to keep (``NO_STATE`` for images without one); empty keeps all.
    labeled: "all", "labeled" or "unlabeled".
    """

    present: tuple[int, ...] = ()
    absent: tuple[int, ...] = ()
    ranges: tuple[Range, ...] = ()
    states: tuple[str, ...] = ()
    labeled: str = "all"
    sort_by: str = "image_id"
    descending: bool = False

    @property
    def active(self) -> bool:
        """True when the filter drops anything (sorting alone does not count)."""
        return bool(self.present or self.absent or self.ranges or self.states or self.labeled != "all")

    def with_range(self, rng: Range) -> BrowseFilter:
        """Replace any range on the same column by ``rng``."""
        return replace(self, ranges=tuple(r for r in self.ranges if r.column != rng.column) + (rng,))

    def with_present(self, *class_ids: int) -> BrowseFilter:
        add = [int(c) for c in class_ids if int(c) not in self.present]
        return replace(self, present=self.present + tuple(add),
                       absent=tuple(c for c in self.absent if c not in class_ids))


def _px(per_image: pd.DataFrame, class_id: int) -> np.ndarray:
    col = f"px_{class_id}"
    if col not in per_image:
        return np.zeros(len(per_image))
    return per_image[col].to_numpy(dtype=np.float64)


def filter_mask(per_image: pd.DataFrame, f: BrowseFilter, states: Mapping[str, str] | None = None) -> np.ndarray:
    """(N,) bool over the rows of ``per_image``: which images pass ``f``.

    Class conditions need a mask, so unlabeled images fail ``present`` and ``absent``
    (NaN pixel counts) rather than silently passing them.
    """
    keep = np.ones(len(per_image), bool)
    labeled = per_image["labeled"].to_numpy(bool)
    if f.labeled == "labeled":
        keep &= labeled
    elif f.labeled == "unlabeled":
        keep &= ~labeled
    for cid in f.present:
        keep &= _px(per_image, cid) > 0
    for cid in f.absent:
        keep &= labeled & (_px(per_image, cid) == 0)
    for rng in f.ranges:
        if rng.column not in per_image:
            raise KeyError(f"no per-image column {rng.column!r}; columns: {', '.join(per_image.columns)}")
        keep &= rng.test(per_image[rng.column].to_numpy(dtype=np.float64))
    if f.states:
        states = states or {}
        have = np.array([states.get(i, NO_STATE) for i in per_image.index], dtype=object)
        keep &= np.isin(have, list(f.states))
    return keep


def sort_ids(per_image: pd.DataFrame, keep: np.ndarray, sort_by: str = "image_id",
             descending: bool = False) -> list[str]:
    """Ids of the kept rows ordered by ``sort_by`` (a column or "image_id"); NaN last, ties by id."""
    sub = per_image.loc[keep]
    ids = sorted((str(i) for i in sub.index), key=natural_key)
    if sort_by == "image_id" or sort_by not in sub:
        return ids[::-1] if descending and sort_by == "image_id" else ids
    values = sub[sort_by].reindex(ids).to_numpy(dtype=np.float64)
    nan = np.isnan(values)
    key = np.where(nan, 0.0, -values if descending else values)
    # lexsort: last key is primary; ties keep the natural id order; NaN rows go last.
    order = np.lexsort((np.arange(len(ids)), key, nan))
    return [ids[k] for k in order]


def select(per_image: pd.DataFrame, f: BrowseFilter, states: Mapping[str, str] | None = None) -> list[str]:
    """Filtered and sorted image ids."""
    return sort_ids(per_image, filter_mask(per_image, f, states), f.sort_by, f.descending)


def page_of(ids: list[str], page: int, per_page: int) -> tuple[list[str], int]:
    """The ids on ``page`` (0-based, clamped to the last page) and the number of pages (>= 1)."""
    n_pages = max(1, math.ceil(len(ids) / per_page))
    page = min(max(page, 0), n_pages - 1)
    return ids[page * per_page : (page + 1) * per_page], n_pages


# --- plot selections ---------------------------------------------------------------------
def _merge_ranges(a: Range, b: Range) -> Range:
    """Two bins of one column selected together: the span from the lower to the upper."""
    hi, closed = max((a.hi, a.closed), (b.hi, b.closed))
    return Range(a.column, min(a.lo, b.lo), hi, closed)


def apply_selection(f: BrowseFilter, points: Iterable[Mapping]) -> BrowseFilter:
    """Narrow ``f`` by the selected plot points (each with a tagged ``customdata`` list).

    A class bar requires the class; a histogram bin bounds its column (bins of one column
    selected together span from the lowest to the highest); a pair requires both classes.
    Points without a known tag are ignored.
    """
    new_ranges: dict[str, Range] = {}
    for p in points:
        data = p.get("customdata") or []
        tag = data[0] if len(data) else None
        if tag == CLASS:
            f = f.with_present(int(data[1]))
        elif tag == PAIR:
            f = f.with_present(int(data[1]), int(data[2]))
        elif tag == RANGE:
            rng = Range(str(data[1]), float(data[2]), float(data[3]), bool(data[4]))
            new_ranges[rng.column] = _merge_ranges(new_ranges[rng.column], rng) if rng.column in new_ranges else rng
            if int(data[5]) >= 0:
                f = f.with_present(int(data[5]))
    for rng in new_ranges.values():
        f = f.with_range(rng)
    return f


# --- chips -------------------------------------------------------------------------------
def _fmt(column: str, v: float) -> str:
    if column.startswith("frac_"):
        return f"{v:.1%}"
    return f"{v:,.0f}" if float(v).is_integer() else f"{v:,.3g}"


def column_label(column: str, class_map: ClassMap) -> str:
    for prefix, what in (("frac_", "share of"), ("px_", "pixels of")):
        if column.startswith(prefix) and column[len(prefix):].isdigit():
            return f"{what} {class_map.name_of(int(column[len(prefix):]))}"
    return column


def chips(f: BrowseFilter, class_map: ClassMap) -> list[tuple[str, str]]:
    """(key, label) for every active condition of ``f``, for removable chips."""
    out = [(f"present:{c}", f"has {class_map.name_of(c)}") for c in f.present]
    out += [(f"absent:{c}", f"no {class_map.name_of(c)}") for c in f.absent]
    for r in f.ranges:
        bracket = "]" if r.closed else ")"
        out.append((f"range:{r.column}",
                    f"{column_label(r.column, class_map)} in [{_fmt(r.column, r.lo)}, {_fmt(r.column, r.hi)}{bracket}"))
    if f.states:
        out.append(("states", "review: " + ", ".join(f.states)))
    if f.labeled != "all":
        out.append(("labeled", f"{f.labeled} only"))
    return out


def remove_chip(f: BrowseFilter, key: str) -> BrowseFilter:
    """``f`` without the condition named by a key from :func:`chips`."""
    kind, _, arg = key.partition(":")
    if kind == "present":
        return replace(f, present=tuple(c for c in f.present if str(c) != arg))
    if kind == "absent":
        return replace(f, absent=tuple(c for c in f.absent if str(c) != arg))
    if kind == "range":
        return replace(f, ranges=tuple(r for r in f.ranges if r.column != arg))
    if kind == "states":
        return replace(f, states=())
    if kind == "labeled":
        return replace(f, labeled="all")
    raise KeyError(f"unknown filter chip {key!r}")


# --- statistics of a subset (the plots follow the filter) --------------------------------
def subset_per_class(per_image: pd.DataFrame, class_map: ClassMap, keep: np.ndarray | None = None) -> pd.DataFrame:
    """``stats.per_class()`` over the kept rows: id, name, color, ignore, pixels, pixel_fraction,
    images_with_class. Same convention: an ignore class's share is of all labeled pixels."""
    sub = per_image if keep is None else per_image.loc[keep]
    sub = sub[sub["labeled"].to_numpy(bool)]
    px = {c.id: np.nan_to_num(_px(sub, c.id)) for c in class_map}
    total = sum(v.sum() for v in px.values())
    counted = sum(px[c.id].sum() for c in class_map if not c.ignore)
    rows = []
    for c in class_map:
        denom = total if c.ignore else counted
        rows.append({"id": c.id, "name": c.name, "color": c.color, "ignore": c.ignore, "pixels": int(px[c.id].sum()),
                     "pixel_fraction": float(px[c.id].sum() / denom) if denom else 0.0,
                     "images_with_class": int((px[c.id] > 0).sum())})
    return pd.DataFrame(rows)


def subset_cooccurrence(per_image: pd.DataFrame, class_map: ClassMap, keep: np.ndarray | None = None) -> pd.DataFrame:
    """K x K number of kept labeled images holding both classes (class names on both axes)."""
    sub = per_image if keep is None else per_image.loc[keep]
    sub = sub[sub["labeled"].to_numpy(bool)]
    present = np.stack([np.nan_to_num(_px(sub, c)) > 0 for c in class_map.ids], axis=1).astype(np.int64)
    return pd.DataFrame(present.T @ present, index=class_map.names, columns=class_map.names)


def stat_columns(per_image: pd.DataFrame) -> list[str]:
    """Numeric per-image columns a user may filter, sort or plot by (``labeled`` excluded)."""
    return [c for c in per_image.columns if c != "labeled" and pd.api.types.is_numeric_dtype(per_image[c])]


# --- the detail view ---------------------------------------------------------------------
def class_pixels(row: pd.Series, class_map: ClassMap) -> pd.DataFrame:
    """Per-class pixel counts of one ``per_image`` row: class, pixels, share (classes present first)."""
    out = pd.DataFrame([{"class": c.name, "id": c.id, "pixels": int(np.nan_to_num(row.get(f"px_{c.id}", 0))),
                         "share": float(np.nan_to_num(row.get(f"frac_{c.id}", 0)))} for c in class_map])
    unknown = np.nan_to_num(row.get("unknown_px", 0))
    if unknown:
        area = float(row["height"] * row["width"])
        out.loc[len(out)] = {"class": "unknown", "id": 255, "pixels": int(unknown), "share": unknown / max(area, 1)}
    return out.sort_values(["pixels", "id"], ascending=[False, True]).reset_index(drop=True)
