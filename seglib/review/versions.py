"""Versions of corrected masks, kept in the review store beside the decisions.

>>> versions = MaskVersions(ReviewStore())
>>> v = versions.save(key, "00012", mask, tool="brush", note="river was road", expected=0)
>>> versions.latest(key)            # {"00012": 1}: the images whose current mask is a stored one
>>> versions.revert(key, "00012", 0, expected=1)   # back to the file's mask: a new version 2

Nothing is ever deleted or overwritten: every save, and every revert, appends one row
(``mask_versions``) numbered 1, 2, ... per image. Version 0 is the dataset's own file. A row
without a mask means "the file's mask again". A save names the version it started from
(``expected``); when another save came in between, :class:`StaleVersion` says which, and the
caller decides (load the newer one, or save again over it). This module knows nothing of
datasets: checking a mask against its image and class map is :mod:`.corrections`' job.
"""
from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass

import cv2
import numpy as np
import pandas as pd
import sqlalchemy as sa

from .store import ReviewStore, current_user, mask_versions

ORIGINAL = 0  # the number of the dataset's own mask


@dataclass(frozen=True)
class Version:
    """One saved version of an image's mask (without its pixels)."""

    image_id: str
    number: int
    tool: str
    note: str
    who: str
    at: _dt.datetime
    original: bool          # this version puts the file's mask back
    changed_px: int | None  # pixels that differ from the version before
    height: int
    width: int
    reverts_to: int | None = None

    def describe(self) -> str:
        """"version 3 by ana at 2026-12-02 14:05 UTC (brush)"."""
        return f"version {self.number} by {self.who} at {self.at:%Y-%m-%d %H:%M} UTC ({self.tool})"


class StaleVersion(Exception):
    """A save started from a version that is no longer the latest."""

    def __init__(self, image_id: str, expected: int, latest: Version):
        self.image_id, self.expected, self.latest = image_id, expected, latest
        super().__init__(f"{image_id}: {latest.describe()} was saved since version {expected} was opened")


def encode_mask(mask: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(mask, np.uint8))
    if not ok:
        raise ValueError("cannot encode the mask as PNG")
    return buf.tobytes()


def decode_mask(data: bytes) -> np.ndarray:
    mask = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if mask is None or mask.ndim != 2 or mask.dtype != np.uint8:
        raise ValueError("a stored mask version is not a single-channel 8-bit PNG")
    return mask


def _now() -> _dt.datetime:
    return _dt.datetime.now(_dt.timezone.utc).replace(tzinfo=None)


_INFO = [c for c in mask_versions.c if c.name != "mask"]


def _version(row) -> Version:
    m = row._mapping
    return Version(image_id=m["image_id"], number=m["number"], tool=m["tool"], note=m["note"], who=m["who"],
                   at=m["at"], original=m["is_original"], changed_px=m["changed_px"], height=m["height"],
                   width=m["width"], reverts_to=m["reverts_to"])


class MaskVersions:
    """The mask versions of one review store (SQLite or PostgreSQL); see the module docstring."""

    def __init__(self, store: ReviewStore):
        self.store = store

    # --- reading ------------------------------------------------------------------------
    @staticmethod
    def _select(key: str):
        return sa.select(*_INFO, mask_versions.c.mask.is_(None).label("is_original")).where(
            mask_versions.c.dataset == key)

    def history(self, key: str, image_id: str | None = None) -> list[Version]:
        """Every version (of one image, or of all), oldest first."""
        q = self._select(key)
        if image_id is not None:
            q = q.where(mask_versions.c.image_id == str(image_id))
        with self.store.engine.connect() as conn:
            return [_version(r) for r in conn.execute(q.order_by(mask_versions.c.id))]

    def latest_version(self, key: str, image_id: str) -> Version | None:
        q = self._select(key).where(mask_versions.c.image_id == str(image_id))
        with self.store.engine.connect() as conn:
            row = conn.execute(q.order_by(mask_versions.c.number.desc()).limit(1)).first()
        return None if row is None else _version(row)

    def latest_number(self, key: str, image_id: str) -> int:
        """The number of the image's current version; 0 (``ORIGINAL``) when none was saved."""
        v = self.latest_version(key, image_id)
        return ORIGINAL if v is None else v.number

    def latest(self, key: str) -> dict[str, int]:
        """{image id: number} of the images whose current mask is a stored version (images put
        back to their file's mask are left out). One query, whatever the number of versions."""
        top = (sa.select(mask_versions.c.image_id, sa.func.max(mask_versions.c.number).label("number"))
               .where(mask_versions.c.dataset == key).group_by(mask_versions.c.image_id).subquery())
        q = (sa.select(mask_versions.c.image_id, mask_versions.c.number)
             .join(top, sa.and_(mask_versions.c.image_id == top.c.image_id, mask_versions.c.number == top.c.number))
             .where(mask_versions.c.dataset == key, mask_versions.c.mask.is_not(None)))
        with self.store.engine.connect() as conn:
            return {r.image_id: r.number for r in conn.execute(q)}

    def mask(self, key: str, image_id: str, number: int) -> np.ndarray | None:
        """The class ids of a stored version; None for a version that puts the file's mask back.
        Raises KeyError for a version that does not exist."""
        q = sa.select(mask_versions.c.mask).where(mask_versions.c.dataset == key,
                                                  mask_versions.c.image_id == str(image_id),
                                                  mask_versions.c.number == int(number))
        with self.store.engine.connect() as conn:
            row = conn.execute(q).first()
        if row is None:
            raise KeyError(f"{image_id}: no version {number}")
        return None if row.mask is None else decode_mask(row.mask)

    def table(self, key: str) -> pd.DataFrame:
        """Every version as a table: image_id, number, tool, note, who, at, original, changed_px,
        reverts_to, current (the image's latest)."""
        rows = self.history(key)
        cols = ["image_id", "number", "tool", "note", "who", "at", "original", "changed_px", "reverts_to"]
        df = pd.DataFrame([{c: getattr(v, c) for c in cols} for v in rows], columns=cols)
        df["current"] = df["number"] == df.groupby("image_id")["number"].transform("max") if len(df) else []
        return df

    # --- writing ------------------------------------------------------------------------
    def save(self, key: str, image_id: str, mask: np.ndarray | None, *, height: int | None = None,
             width: int | None = None, tool: str = "", note: str = "", who: str = "",
             expected: int | None = None, changed_px: int | None = None, reverts_to: int | None = None) -> Version:
        """Append the image's next version: ``mask`` (uint8 class ids) or None for "the file's
        mask again" (then give ``height`` and ``width``). ``expected``: the number the change
        started from; raises :class:`StaleVersion` when the latest is another one (None: no check)."""
        image_id = str(image_id)
        if mask is not None:
            height, width = mask.shape[:2]
        data = None if mask is None else encode_mask(mask)
        row = {"dataset": key, "image_id": image_id, "mask": data, "height": int(height), "width": int(width),
               "tool": tool or "", "note": note or "", "who": who or current_user(), "at": _now(),
               "changed_px": None if changed_px is None else int(changed_px), "reverts_to": reverts_to}
        try:
            with self.store._write() as conn:
                q = sa.select(sa.func.max(mask_versions.c.number)).where(
                    mask_versions.c.dataset == key, mask_versions.c.image_id == image_id)
                latest = conn.execute(q).scalar() or ORIGINAL
                if expected is not None and latest != expected:
                    raise _Stale(latest)
                row["number"] = latest + 1
                conn.execute(mask_versions.insert(), [row])
        except _Stale as e:
            raise StaleVersion(image_id, expected, self._version_of(key, image_id, e.latest)) from None
        except sa.exc.IntegrityError:
            # Another writer took the same number between our read and our insert (PostgreSQL).
            latest = self.latest_version(key, image_id)
            raise StaleVersion(image_id, expected if expected is not None else row["number"] - 1, latest) from None
        return Version(image_id=image_id, number=row["number"], tool=row["tool"], note=row["note"], who=row["who"],
                       at=row["at"], original=mask is None, changed_px=row["changed_px"], height=row["height"],
                       width=row["width"], reverts_to=reverts_to)

    def _version_of(self, key: str, image_id: str, number: int) -> Version:
        q = self._select(key).where(mask_versions.c.image_id == image_id, mask_versions.c.number == number)
        with self.store.engine.connect() as conn:
            return _version(conn.execute(q).first())


class _Stale(Exception):
    def __init__(self, latest: int):
        self.latest = latest
