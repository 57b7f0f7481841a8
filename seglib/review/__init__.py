"""Review: flags and decisions kept in an SQL database, the queue of images to decide on, the
tables of the Review page, the export of flags or a cleaned copy, and corrected masks.

>>> from seglib.review import ReviewStore, dataset_key, apply_corrections, save_correction
>>> store = ReviewStore()                      # $SEGLIB_REVIEW_DB or <data_dir>/review.db
>>> store.flag(dataset_key(ds), ["00012"], reason="shares the alien mask")
>>> ds = apply_corrections(ds)                 # the dataset with its latest corrected masks
>>> save_correction(ds, "00012", fixed, note="crater", expected=0)

Modules: :mod:`.store` (the store), :mod:`.queue` (selections, detector rows and the queue),
:mod:`.tables` (the map and detector tables), :mod:`.export` (flags CSV, cleaned copies),
:mod:`.versions` (mask versions in the store), :mod:`.corrections` (save, revert, diff, export,
the dataset as corrected).
"""
from __future__ import annotations

from .corrections import (
    MaskDiff,
    StaleVersion,
    Version,
    apply_corrections,
    corrections_table,
    export_corrections,
    latest_number,
    mask_diff,
    open_corrected,
    revert_correction,
    save_correction,
    version_mask,
    versions,
)
from .queue import flag_detections, ids_from_selection, queue_index, review_queue, rows_in_groups
from .store import COLUMNS, STATES, UNDO, ReviewStore, ReviewStoreError, current_user, dataset_key, default_url

__all__ = ["COLUMNS", "STATES", "UNDO", "ReviewStore", "ReviewStoreError", "current_user", "dataset_key", "default_url",
           "flag_detections", "ids_from_selection", "queue_index", "review_queue", "rows_in_groups",
           "MaskDiff", "StaleVersion", "Version", "apply_corrections", "corrections_table", "export_corrections",
           "latest_number", "mask_diff", "open_corrected", "revert_correction", "save_correction", "version_mask",
           "versions"]
