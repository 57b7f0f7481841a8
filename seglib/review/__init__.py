"""Review: flags and decisions kept in an SQL database, the queue of images to decide on, the
tables of the Review page, and the export of flags or a cleaned copy.

>>> from seglib.review import ReviewStore, dataset_key
>>> store = ReviewStore()                      # $SEGLIB_REVIEW_DB or <data_dir>/review.db
>>> store.flag(dataset_key(ds), ["00012"], reason="shares the alien mask")

Modules: :mod:`.store` (the store), :mod:`.queue` (selections, detector rows and the queue),
:mod:`.tables` (the map and detector tables), :mod:`.export` (flags CSV, cleaned copies).
"""
from __future__ import annotations

from .queue import flag_detections, ids_from_selection, queue_index, review_queue, rows_in_groups
from .store import COLUMNS, STATES, UNDO, ReviewStore, ReviewStoreError, current_user, dataset_key, default_url

__all__ = ["COLUMNS", "STATES", "UNDO", "ReviewStore", "ReviewStoreError", "current_user", "dataset_key", "default_url",
           "flag_detections", "ids_from_selection", "queue_index", "review_queue", "rows_in_groups"]
