"""The Train page's pretrained-weights widgets: a "Weights" select (random, or the names smp lists
for the encoder, each marked as in the Hugging Face cache or with its download size) and a
Download button with a progress bar. The work is seglib.pretrained's; training reads the cache only."""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import streamlit as st

from seglib import pretrained
from seglib.train import ConfigError

RANDOM = pretrained.RANDOM


@st.cache_data(show_spinner=False)
def _names(encoder: str) -> list[str]:
    try:
        return pretrained.weight_names(encoder)
    except Exception:  # an encoder timm or smp does not know: no pretrained choice
        return []


@st.cache_data(show_spinner=False)
def _estimate(encoder: str, name: str) -> int | None:
    return pretrained.download_size(encoder, name)[0]


def _cached(encoder: str, name: str) -> int | None:
    """The cached file's size, or None when it is not in the cache (a few stat calls: not cached)."""
    try:
        path = pretrained.cached_file(pretrained.source(encoder, name))
    except pretrained.WeightsError:
        return None
    return path.stat().st_size if path is not None else None


def _mb(n: int | None) -> str:
    return "" if n is None else f"{n / 1e6:,.0f} MB"


def value(key: str) -> str | None:
    """The widget's value as TrainConfig.encoder_weights (None for random)."""
    chosen = st.session_state.get(key, RANDOM)
    return None if pretrained.is_random(chosen) else chosen


def chosen(key: str, encoder: str) -> str | None:
    """``value(key)``, refused (ConfigError, one line) when it names weights not in the cache:
    Start stays disabled and says what to download."""
    weights = value(key)
    if weights and not pretrained.is_local_file(weights):
        try:
            pretrained.require(encoder, weights)
        except pretrained.WeightsError as e:
            raise ConfigError(f"encoder weights: {e}") from None
    return weights


def weights_widget(key: str, encoder: str) -> None:
    """The select and, for weights not in the cache yet, the Download button."""
    names = _names(encoder)
    options = [RANDOM, *names]
    current = st.session_state.get(key, RANDOM)
    if current not in options:
        if current and pretrained.is_local_file(current):
            options.append(current)  # a run's local weights file, copied into the form
        else:
            st.session_state[key] = RANDOM
    sizes = {n: _cached(encoder, n) for n in names}

    def label(n: str) -> str:
        if n == RANDOM:
            return "random (no pretraining)"
        if n not in names:
            return f"file {Path(n).name}"
        if sizes[n] is not None:
            return f"{n} · in the cache ({_mb(sizes[n])})"
        est = _estimate(encoder, n)
        return f"{n} · to download{f' (about {_mb(est)})' if est else ''}"

    st.selectbox("Weights", options, key=key, format_func=label,
                 help="Pretrained encoder weights as smp lists them (from the Hugging Face hub, kept in its cache "
                      f"{pretrained.cache_dir()}); inputs are then normalised with the weights' own mean and std. "
                      "Random: no pretraining." + ("" if names else f" {encoder} has no pretrained weights listed."))
    picked = st.session_state[key]
    if picked not in names or sizes.get(picked) is not None:
        return
    src = pretrained.source(encoder, picked)
    st.caption(f"{src.repo_id} is not in the cache. Download it here, or run `{src.fetch_command()}`; a machine "
               f"without internet can use a copy of another machine's {src.cache_folder().name} folder.")
    if st.button("Download", key=key + "_download", icon=":material/download:"):
        _download(encoder, picked, src)


def _download(encoder: str, name: str, src: pretrained.WeightsSource) -> None:
    """Fetch in a worker thread; this script thread draws the progress (hub threads cannot)."""
    bar = st.progress(0.0, text=f"Connecting to the hub for {src.repo_id}…")
    seen = {"done": 0, "total": None}

    def progress(done: int, total: int | None) -> None:
        seen.update(done=done, total=total)

    with ThreadPoolExecutor(1) as pool:
        job = pool.submit(pretrained.fetch, encoder, name, progress)
        while not job.done():
            total = seen["total"]
            if total:
                bar.progress(min(1.0, seen["done"] / total),
                             text=f"Downloading {src.repo_id}: {_mb(seen['done'])} of {_mb(total)}")
            time.sleep(0.25)
        try:
            row = job.result()
        except pretrained.WeightsError as e:
            bar.empty()
            st.error(str(e), icon=":material/cloud_off:")
            return
    bar.progress(1.0, text=f"{src.repo_id}: {_mb(row['bytes'])} in the cache")
    st.rerun()
