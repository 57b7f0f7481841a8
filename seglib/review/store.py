"""The review store: every flag and decision about an image, kept in an SQL database.

>>> store = ReviewStore()                         # $SEGLIB_REVIEW_DB or <data_dir>/review.db
>>> key = dataset_key(ds)
>>> store.flag(key, ["00012", "00013"], reason="shares the alien mask", detector="mask_hash", score=0.9)
>>> store.set_state(key, ["00012"], "exclude", note="not Mars")
>>> store.states(key)
{'00012': 'exclude', '00013': 'flagged'}

The table ``review_events`` is append-only: each call adds one row per image and commits at
once. The current state of an image is its latest event. ``undo`` never deletes: it appends an
``undo`` event naming the event it reverts, so the history keeps who changed their mind and
when; a reverted event no longer counts, and undoing again reverts the one before it.

SQLite (the default) runs in WAL mode with a busy timeout, and writes take the lock up front
(``BEGIN IMMEDIATE``), so several browser tabs, threads and CLI processes can write at once
without losing a row. Any SQLAlchemy URL works (``postgresql+psycopg://...`` for a team: tested
against a real server in tests/test_postgres.py). A database that cannot be reached raises
:class:`ReviewStoreError` in one line (the URL without its password).
"""
from __future__ import annotations

import datetime as _dt
import getpass
import os
from collections.abc import Iterable
from pathlib import Path

import pandas as pd
import sqlalchemy as sa

from .. import paths

STATES = ("flagged", "keep", "exclude", "relabel", "cleared")
UNDO = "undo"  # the kind of event that reverts another; never a state
COLUMNS = ["image_id", "state", "reason", "note", "detector", "score", "who", "at"]
# Between the reasons of one decision. "; " occurs inside reasons ("... (cleanlab softmin; dataset
# median 0.10) ..."); a newline cannot: each reason's own newlines become spaces when joined.
REASON_SEP = "\n"

_meta = sa.MetaData()
events = sa.Table(
    "review_events", _meta,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("dataset", sa.String(1024), nullable=False),
    sa.Column("image_id", sa.String(1024), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("reason", sa.Text, nullable=False, default=""),
    sa.Column("note", sa.Text, nullable=False, default=""),
    sa.Column("detector", sa.String(128)),
    sa.Column("score", sa.Float),
    sa.Column("who", sa.String(128), nullable=False, default=""),
    sa.Column("at", sa.DateTime, nullable=False),
    sa.Column("reverts", sa.Integer),  # for undo events: the id of the reverted event
    sa.Index("ix_review_events_dataset_image", "dataset", "image_id", "id"),
)
# Corrected masks, one row per saved version (see seglib.review.versions): append-only like the
# events. ``mask`` holds an index PNG of class ids; NULL means "back to the file's mask".
# The unique (dataset, image, number) makes a second save of the same version fail, whatever
# the database, so two tabs cannot both write version n+1.
mask_versions = sa.Table(
    "mask_versions", _meta,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("dataset", sa.String(1024), nullable=False),
    sa.Column("image_id", sa.String(1024), nullable=False),
    sa.Column("number", sa.Integer, nullable=False),
    sa.Column("mask", sa.LargeBinary),
    sa.Column("height", sa.Integer, nullable=False),
    sa.Column("width", sa.Integer, nullable=False),
    sa.Column("tool", sa.String(64), nullable=False, default=""),
    sa.Column("note", sa.Text, nullable=False, default=""),
    sa.Column("who", sa.String(128), nullable=False, default=""),
    sa.Column("at", sa.DateTime, nullable=False),
    sa.Column("changed_px", sa.Integer),
    sa.Column("reverts_to", sa.Integer),  # for reverts: the number whose mask this one restores
    sa.UniqueConstraint("dataset", "image_id", "number", name="uq_mask_versions_number"),
)


def dataset_key(ds) -> str:
    """A stable key for a dataset (or a path): its resolved source path."""
    source = getattr(ds, "source", ds)
    return str(Path(source).expanduser().resolve())


def join_reasons(reasons: Iterable) -> str:
    """The reasons of one decision as one text, duplicates and empty ones left out, in order."""
    kept = (" ".join(v.splitlines()) for v in reasons if isinstance(v, str) and v.strip())
    return REASON_SEP.join(dict.fromkeys(kept))


def split_reasons(text) -> list[str]:
    """The reasons a decision's ``reason`` holds (see :func:`join_reasons`)."""
    return [r for r in str(text or "").split(REASON_SEP) if r.strip()]


def default_url() -> str:
    """``$SEGLIB_REVIEW_DB`` (an SQLAlchemy URL or a file path), else ``<data_dir>/review.db``."""
    env = os.environ.get("SEGLIB_REVIEW_DB", "").strip()
    if env:
        return env if "://" in env else f"sqlite:///{Path(env).expanduser().resolve()}"
    return f"sqlite:///{paths.data_dir() / 'review.db'}"


def current_user() -> str:
    """``$SEGLIB_USER``, else the OS user name."""
    who = os.environ.get("SEGLIB_USER", "").strip()
    if who:
        return who
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (some containers)
        return "unknown"


class ReviewStoreError(RuntimeError):
    """The database cannot be reached or refused the operation: one line naming the database
    (its URL without the password) and the driver's reason. Nothing of the call was written."""


def safe_url(url: str) -> str:
    """The URL with its password hidden, for messages and logs."""
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL SQLAlchemy can parse: say so without echoing it whole
        return url.split("@")[-1] if "@" in url else url


def _one_line_errors(engine: sa.Engine, url: str) -> None:
    """Database failures (server down or restarted, refused login, locked file) leave the store
    as a ReviewStoreError in one line instead of a driver traceback. A connection the pool finds
    dead is replaced first (``pool_pre_ping``), so after a server restart the next call works."""
    shown = safe_url(url)

    @sa.event.listens_for(engine, "handle_error")
    def _wrap(ctx):
        if getattr(ctx, "is_pre_ping", False) or not isinstance(ctx.sqlalchemy_exception, (sa.exc.OperationalError,
                                                                                           sa.exc.InterfaceError)):
            return None
        orig = ctx.original_exception
        lines = [ln.strip() for ln in str(orig).splitlines() if ln.strip()]
        reason = (lines[0] if lines else type(orig).__name__)[:300]
        return ReviewStoreError(f"review store {shown}: {reason}"
                                f"{' (connection lost; try again)' if ctx.is_disconnect else ''}")


def _sqlite_engine(url: str) -> sa.Engine:
    engine = sa.create_engine(url, connect_args={"timeout": 60, "check_same_thread": False})

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):
        # Let SQLAlchemy emit BEGIN itself (pysqlite's implicit BEGIN cannot be IMMEDIATE).
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA busy_timeout=60000")  # first: switching to WAL may wait for a lock
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn):
        # Writers take the write lock up front: a deferred transaction that reads and then
        # writes fails at once (SQLITE_BUSY) when another writer got in between.
        immediate = conn.get_execution_options().get("seglib_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def _as_list(value, n: int) -> list:
    """A scalar repeated n times, or a sequence of n values (one per image)."""
    if isinstance(value, (str, bytes)) or value is None or not isinstance(value, Iterable):
        return [value] * n
    out = list(value)
    if len(out) != n:
        raise ValueError(f"expected one value per image ({n}), got {len(out)}")
    return out


class ReviewStore:
    """Flags and decisions per dataset and image; see the module docstring."""

    def __init__(self, url: str | None = None):
        self.url = url or default_url()
        if self.url.startswith("sqlite:///") and not self.url.startswith("sqlite:///:memory:"):
            Path(self.url[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
        is_sqlite = self.url.startswith("sqlite")
        try:
            self.engine = _sqlite_engine(self.url) if is_sqlite else sa.create_engine(self.url, pool_pre_ping=True)
        except (ImportError, sa.exc.ArgumentError) as e:  # no driver (pip install -e .[postgres]), a bad URL
            raise ReviewStoreError(f"review store {safe_url(self.url)}: {e}") from None
        _one_line_errors(self.engine, self.url)
        with self._write() as conn:  # the schema on first use (no-op when the tables exist)
            _meta.create_all(conn)

    def _write(self):
        """A transaction that holds the write lock (SQLite) and commits on leaving."""
        conn = self.engine.connect().execution_options(seglib_write=True)
        return _Txn(conn)

    def close(self) -> None:
        self.engine.dispose()

    # --- writing ------------------------------------------------------------------------
    def _append(self, key: str, image_ids, state: str, reason="", note="", detector=None, score=None,
                who: str = "") -> int:
        if state not in STATES:
            raise ValueError(f"unknown review state {state!r}; use one of {', '.join(STATES)}")
        ids = [str(i) for i in ([image_ids] if isinstance(image_ids, str) else image_ids)]
        if not ids:
            return 0
        n = len(ids)
        reasons, dets, scores = _as_list(reason, n), _as_list(detector, n), _as_list(score, n)
        now = _dt.datetime.now(_dt.timezone.utc).replace(tzinfo=None)
        who = who or current_user()
        rows = [{"dataset": key, "image_id": i, "state": state, "reason": str(r or ""), "note": note or "",
                 "detector": d, "score": None if s is None or pd.isna(s) else float(s), "who": who, "at": now}
                for i, r, d, s in zip(ids, reasons, dets, scores, strict=True)]
        with self._write() as conn:
            conn.execute(events.insert(), rows)
        return n

    def flag(self, key: str, image_ids, reason="", detector=None, score=None, who: str = "") -> int:
        """Mark images as "flagged". ``reason``, ``detector`` and ``score`` are one value for all
        images or a sequence with one value per image. Returns the number of images flagged."""
        return self._append(key, image_ids, "flagged", reason, "", detector, score, who)

    def set_state(self, key: str, image_ids, state: str, note: str = "", reason: str = "", who: str = "") -> int:
        """Record a decision ("keep", "exclude", "relabel"), a flag, or "cleared" (forget it)."""
        return self._append(key, image_ids, state, reason, note, None, None, who)

    def last_event(self, key: str, image_id: str | None = None) -> dict | None:
        """The latest event still in force (what ``undo`` would revert), as a dict, or None."""
        with self.engine.connect() as conn:
            row = conn.execute(self._live_query(key, image_id).order_by(events.c.id.desc()).limit(1)).first()
        return None if row is None else dict(row._mapping)

    def undo(self, key: str, image_id: str | None = None) -> bool:
        """Revert the latest event still in force (of one image, or of the whole dataset).
        Returns False when there is nothing left to undo."""
        with self._write() as conn:
            live = self._live_query(key, image_id).order_by(events.c.id.desc()).limit(1)
            row = conn.execute(live).first()
            if row is None:
                return False
            now = _dt.datetime.now(_dt.timezone.utc).replace(tzinfo=None)
            conn.execute(events.insert(), [{"dataset": key, "image_id": row.image_id, "state": UNDO, "reason": "",
                                            "note": "", "who": current_user(), "at": now, "reverts": row.id}])
        return True

    # --- reading ------------------------------------------------------------------------
    @staticmethod
    def _live_query(key: str, image_id: str | None = None):
        """Events that count: not undo events, and not reverted by one."""
        reverted = sa.select(events.c.reverts).where(events.c.dataset == key, events.c.reverts.is_not(None))
        q = sa.select(events).where(events.c.dataset == key, events.c.state != UNDO, events.c.id.not_in(reverted))
        return q if image_id is None else q.where(events.c.image_id == str(image_id))

    def _frame(self, query) -> pd.DataFrame:
        with self.engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        cols = [c.name for c in events.columns]
        return pd.DataFrame(rows, columns=cols) if rows else pd.DataFrame(columns=cols)

    def history(self, key: str, image_id: str | None = None) -> pd.DataFrame:
        """Every event (undo events and reverted ones included), oldest first: id, image_id,
        state, reason, note, detector, score, who, at, reverts."""
        q = sa.select(events).where(events.c.dataset == key)
        if image_id is not None:
            q = q.where(events.c.image_id == str(image_id))
        return self._frame(q.order_by(events.c.id)).drop(columns=["dataset"])

    def decisions(self, key: str) -> pd.DataFrame:
        """The current row per image, cleared images left out: image_id, state, reason, note,
        detector, score, who, at. ``reason``/``detector`` gather every flag since the image was
        last cleared (reasons one per line: :func:`split_reasons`; detectors "; "-joined) and
        ``score`` is their highest, so a decision keeps its why."""
        live = self._frame(self._live_query(key).order_by(events.c.id))
        if live.empty:
            return pd.DataFrame(columns=COLUMNS)
        # Only the events after an image's latest "cleared" describe its current review.
        last_clear = live["id"].where(live["state"] == "cleared").groupby(live["image_id"]).transform("max")
        live = live[live["id"] > last_clear.fillna(-1)]
        if live.empty:
            return pd.DataFrame(columns=COLUMNS)
        g = live.groupby("image_id", sort=False)
        cur = g.tail(1).set_index("image_id")
        names = lambda s: "; ".join(dict.fromkeys(v for v in s if isinstance(v, str) and v))  # noqa: E731
        cur["reason"] = g["reason"].agg(join_reasons)
        cur["detector"] = g["detector"].agg(names).replace("", None)
        cur["score"] = g["score"].max()
        cur = cur.reset_index().sort_values("id")
        return cur[COLUMNS].reset_index(drop=True)

    def states(self, key: str) -> dict[str, str]:
        """{image_id: state} for every image with a current state (cleared ones absent)."""
        d = self.decisions(key)
        return dict(zip(d["image_id"], d["state"], strict=True))

    def counts(self, key: str) -> dict[str, int]:
        """Images per state: flagged, keep, exclude, relabel (zeros included)."""
        vc = pd.Series(list(self.states(key).values()), dtype=object).value_counts()
        return {s: int(vc.get(s, 0)) for s in STATES if s != "cleared"}


class _Txn:
    """``with store._write() as conn``: begin, commit (or roll back), close."""

    def __init__(self, conn: sa.Connection):
        self.conn = conn

    def __enter__(self) -> sa.Connection:
        self.conn.begin()
        return self.conn

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None:
                self.conn.commit()
            else:
                self.conn.rollback()
        finally:
            self.conn.close()
