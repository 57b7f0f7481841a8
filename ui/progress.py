"""A progress bar for long passes over the images (predictions, fitted weights, the learned map):
images done / total and the time left, with a Cancel button.

Cancelling needs no thread: a click on Cancel asks Streamlit for a rerun, and Streamlit stops
the running script at its next call into Streamlit, which is the bar's next update (after the
batch in progress). The pass is abandoned there (nothing half-written reaches a cache), and the
button's callback has already recorded the cancel for the rerun to read.
"""
from __future__ import annotations

import time

import streamlit as st


def _set(key: str) -> None:
    st.session_state[key] = True


def cancelled(key: str) -> bool:
    """Whether the Cancel button of the pass under ``key`` was pressed (read once: it resets)."""
    return bool(st.session_state.pop(key + "_cancelled", False))


class PassProgress:
    """``(done, total)`` callbacks drawing one bar per stage, under a Cancel button.

    >>> with PassProgress("compare_pass") as bar:
    ...     predict(..., progress=bar.stage("Predicting"), fit_progress=bar.stage("Fitting the weights"))
    """

    def __init__(self, key: str, where=st):
        self.key = key
        self.slot = where.empty()          # one slot: emptying it removes the button and the bar together
        self.box = self.slot.container()
        self._bar = None
        self._start = None
        self._label = ""

    def __enter__(self) -> PassProgress:
        self.box.button("Cancel", key=self.key + "_cancel", icon=":material/cancel:", on_click=_set,
                        args=(self.key + "_cancelled",), help="Stop after the batch in progress")
        self._bar = self.box.progress(0.0, text="Starting…")
        return self

    def __exit__(self, *exc) -> bool:
        self.slot.empty()
        return False

    def stage(self, label: str):
        """A ``(done, total)`` callback for one pass; its clock starts at its first call."""
        def update(done: int, total: int) -> None:
            if self._label != label:   # the first batch of this stage: the clock starts after it
                self._label, self._start, self._done0 = label, time.monotonic(), done
            self._bar.progress(min(done / max(total, 1), 1.0), text=f"{label}: {done:,} / {total:,} images"
                               + eta_text(time.monotonic() - self._start, done - self._done0, total - done))
        return update


def eta_text(elapsed: float, done: int, left_to_do: int) -> str:
    """' · about 1 min 20 s left' from the rate of ``done`` images in ``elapsed`` seconds ('' before
    there is a rate)."""
    if done <= 0 or left_to_do <= 0 or elapsed < 0.5:
        return ""
    left = elapsed / done * left_to_do
    if left < 60:
        return f" · about {max(1, round(left))} s left"
    return f" · about {int(left // 60)} min {int(left % 60):02d} s left"
