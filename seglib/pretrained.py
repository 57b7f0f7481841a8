"""Pretrained encoder weights through smp's own mechanism: the Hugging Face hub and its cache.

>>> weight_names("resnet18")                  # what smp lists for the encoder
['imagenet', 'ssl', 'swsl']
>>> src = source("resnet18", "imagenet")      # repo smp-hub/resnet18.imagenet at a pinned commit
>>> is_cached(src)                            # in $HF_HUB_CACHE (default ~/.cache/huggingface/hub)?
>>> fetch("resnet18", "imagenet")             # the only call here that uses the network

Where the weights come from is smp's and the hub's business, not ours:

- an smp encoder (``resnet18``) lists its weights in
  ``smp.encoders.encoders[name]["pretrained_settings"]``: each a hub repo
  ``smp-hub/<encoder>.<weights>`` pinned to a commit (``revision``), holding ``config.json``
  (mean, std, input range) and ``model.safetensors``; smp's ``get_encoder`` downloads both with
  ``hf_hub_download(repo_id, filename, revision=...)``.
- a timm encoder (``tu-convnext_atto``) takes timm's pretrained tags (``d2_in1k``: the model
  ``convnext_atto.d2_in1k``): the repo is timm's ``hf_hub_id`` (``timm/convnext_atto.d2_in1k``),
  the file ``model.safetensors`` on its main branch; mean and std are timm's pretrained config.

Building a model never touches the network (whatever ``HF_HUB_OFFLINE`` says): weights that are
not in the cache fail in one line that names the fetch command and the cache folder to copy on
an air-gapped machine. A cached name is built by smp itself (``smp.create_model(...,
encoder_weights=name)``; for timm the commit the cache holds is pinned, so no request is made),
which is also where a grey first convolution is made from the RGB one (summed, as smp does).
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

RANDOM = "random"             # the name the app and CLI use for random initial weights
WEIGHTS_FILE = "model.safetensors"
LOCAL_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin", ".ckpt")
_COMMIT = re.compile(r"^[0-9a-f]{40}$")
_HUB_LOCK = threading.Lock()  # the hub's offline switch is one global: one fetch at a time


class WeightsError(ValueError):
    """Pretrained weights that cannot be used or fetched; the message is one line."""


@dataclass(frozen=True)
class WeightsSource:
    """Where one encoder's named weights live on the hub."""

    encoder: str                  # as the model spec names it: resnet18, tu-convnext_atto
    name: str                     # imagenet, ssl, ...; for tu- encoders timm's tag (d2_in1k)
    repo_id: str                  # smp-hub/resnet18.imagenet, timm/convnext_atto.d2_in1k
    revision: str | None          # smp pins a commit; None = the repo's main branch (timm)
    files: tuple[str, ...]        # what a fetch downloads (the weights file last)

    @property
    def is_timm(self) -> bool:
        return self.encoder.startswith("tu-")

    def fetch_command(self) -> str:
        return f"seglib weights fetch {self.encoder} --weights {self.name}"

    def cache_folder(self) -> Path:
        return cache_dir() / ("models--" + self.repo_id.replace("/", "--"))


def cache_dir() -> Path:
    """The Hugging Face hub cache this process reads ($HF_HUB_CACHE, else $HF_HOME/hub)."""
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def is_local_file(value: str | os.PathLike | None) -> bool:
    """True when ``encoder_weights`` names a file rather than weights smp lists."""
    if not value:
        return False
    text = str(value)
    return (text.lower().endswith(LOCAL_SUFFIXES) or os.sep in text or "/" in text or text.startswith("~")
            or Path(text).expanduser().is_file())


def is_random(value) -> bool:
    return value is None or str(value).strip() in ("", RANDOM, "none", "None")


# --- what each encoder offers ------------------------------------------------------------------
def _timm_model(encoder: str) -> str:
    return encoder[3:].split(".")[0]


def weight_names(encoder: str) -> list[str]:
    """The weights smp lists for ``encoder`` (timm's pretrained tags for a ``tu-`` encoder); [] if none."""
    if encoder.startswith("tu-"):
        import timm

        model = _timm_model(encoder)
        return [n.split(".", 1)[1] for n in timm.list_pretrained(f"{model}.*") if n.split(".", 1)[0] == model]
    import segmentation_models_pytorch as smp

    entry = smp.encoders.encoders.get(encoder)
    return list(entry["pretrained_settings"]) if entry else []


def source(encoder: str, name: str) -> WeightsSource:
    """The hub repo (and revision) of ``encoder``'s weights ``name``; WeightsError for a name smp does not list."""
    names = weight_names(encoder)
    if name not in names:
        offered = ", ".join(names) if names else "none"
        raise WeightsError(f"{encoder} has no pretrained weights {name!r} (offered: {offered}; or a local "
                           ".safetensors/.pth file)")
    if encoder.startswith("tu-"):
        import timm

        cfg = timm.models.get_pretrained_cfg(f"{_timm_model(encoder)}.{name}")
        hub_id = getattr(cfg, "hf_hub_id", None) if cfg is not None else None
        if not hub_id:
            raise WeightsError(f"{encoder}.{name}: timm keeps these weights outside the Hugging Face hub; "
                               "download them and give the file as the encoder weights")
        repo, _, rev = hub_id.partition("@")
        return WeightsSource(encoder, name, repo, rev or None, (WEIGHTS_FILE,))
    import segmentation_models_pytorch as smp

    settings = smp.encoders.encoders[encoder]["pretrained_settings"][name]
    return WeightsSource(encoder, name, settings["repo_id"], settings.get("revision"), ("config.json", WEIGHTS_FILE))


def default_name(encoder: str) -> str | None:
    """"imagenet" when smp lists it, else the first name offered (timm's default tag), else None."""
    names = weight_names(encoder)
    return "imagenet" if "imagenet" in names else (names[0] if names else None)


# --- the cache ---------------------------------------------------------------------------------
def cached_commit(src: WeightsSource) -> str | None:
    """The commit whose files the cache holds for ``src`` (all of them), else None."""
    from huggingface_hub import try_to_load_from_cache

    folder = src.cache_folder()
    commit = src.revision
    if commit is None or not _COMMIT.match(commit):
        ref = folder / "refs" / (commit or "main")
        try:
            commit = ref.read_text().strip()
        except OSError:
            return None
    for f in src.files:
        if not isinstance(try_to_load_from_cache(src.repo_id, f, revision=commit), str):
            return None
    return commit


def cached_file(src: WeightsSource) -> Path | None:
    """The cached weights file of ``src``, or None."""
    commit = cached_commit(src)
    return None if commit is None else src.cache_folder() / "snapshots" / commit / WEIGHTS_FILE


def is_cached(src: WeightsSource) -> bool:
    return cached_commit(src) is not None


def missing_message(src: WeightsSource) -> str:
    """One line: what to fetch, and what to copy on a machine without internet."""
    return (f"{src.encoder} weights {src.name!r} are not in the Hugging Face cache ({cache_dir()}): run "
            f"`{src.fetch_command()}` (or press Download on the Train page) on a machine with internet; "
            f"air-gapped: copy the folder {src.cache_folder().name} from such a machine's cache into {cache_dir()} "
            "(or set HF_HUB_CACHE)")


def require(encoder: str, name: str) -> WeightsSource:
    """``source(encoder, name)`` when its files are cached; WeightsError saying how to get them otherwise."""
    src = source(encoder, name)
    if not is_cached(src):
        raise WeightsError(missing_message(src))
    return src


def download_size(encoder: str, name: str) -> tuple[int | None, bool]:
    """(bytes, exact): the cached file's size, else an estimate from the encoder's parameter count
    (float32 safetensors hold 4 bytes a value); (None, False) when neither is known."""
    try:
        path = cached_file(source(encoder, name))
    except WeightsError:
        return None, False
    if path is not None:
        return path.stat().st_size, True
    n = _encoder_values(encoder)
    return (n * 4 if n else None), False


def _encoder_values(encoder: str) -> int | None:
    """Parameters and buffers of the encoder, counted without allocating them (meta device)."""
    import torch

    try:
        with torch.device("meta"):
            if encoder.startswith("tu-"):
                import timm

                model = timm.create_model(_timm_model(encoder), pretrained=False)
            else:
                import segmentation_models_pytorch as smp

                model = smp.encoders.get_encoder(encoder, weights=None)
        return sum(t.numel() for t in model.state_dict().values())
    except Exception:  # an encoder that cannot be built here: the size stays unknown
        return None


def listing(encoders: list[str] | None = None) -> list[dict]:
    """One row per (encoder, weights name): repo, revision, cached, file, bytes. Default: every
    encoder the cache holds something for, among smp's and timm's."""
    rows = []
    for enc in encoders if encoders is not None else cached_encoders():
        for name in weight_names(enc):
            try:
                src = source(enc, name)
            except WeightsError:
                continue
            path = cached_file(src)
            if encoders is None and path is None:
                continue
            rows.append({"encoder": enc, "weights": name, "repo_id": src.repo_id,
                         "revision": cached_commit(src) or src.revision, "cached": path is not None,
                         "file": str(path) if path else None, "bytes": path.stat().st_size if path else None})
    return rows


def cached_encoders() -> list[str]:
    """Encoders with a hub repo folder in the cache (smp-hub/<encoder>.<weights>, timm/<model>.<tag>)."""
    out = []
    try:
        folders = sorted(p.name for p in cache_dir().iterdir() if p.name.startswith("models--"))
    except OSError:
        return []
    for folder in folders:
        org, _, repo = folder[len("models--"):].partition("--")
        if org == "smp-hub" and "." in repo:
            out.append(repo.rsplit(".", 1)[0])
        elif org == "timm" and "." in repo:
            out.append("tu-" + repo.split(".", 1)[0])
    return list(dict.fromkeys(out))


# --- fetching: the one place that uses the network ---------------------------------------------
@contextlib.contextmanager
def _online():
    """HF_HUB_OFFLINE off for the duration (the app and the CLI start offline)."""
    from huggingface_hub import constants

    with _HUB_LOCK:
        before, env = constants.HF_HUB_OFFLINE, os.environ.get("HF_HUB_OFFLINE")
        constants.HF_HUB_OFFLINE = False
        os.environ["HF_HUB_OFFLINE"] = "0"
        try:
            yield
        finally:
            constants.HF_HUB_OFFLINE = before
            if env is None:
                os.environ.pop("HF_HUB_OFFLINE", None)
            else:
                os.environ["HF_HUB_OFFLINE"] = env


@contextlib.contextmanager
def _quiet_hub():
    """The hub's retry warnings off: a failure is reported once, in one line."""
    import logging

    log = logging.getLogger("huggingface_hub")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.setLevel(level)


def _unreachable(endpoint: str, timeout: float) -> str | None:
    """Why the hub's host cannot be reached (a name that does not resolve, a refused or silent
    port), found in at most ``timeout`` seconds; None when it answers or a proxy is set (the
    download itself then says)."""
    import socket
    from urllib.parse import urlparse

    if any(os.environ.get(k) for k in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return None
    url = urlparse(endpoint)
    host, port = url.hostname, url.port or (443 if url.scheme == "https" else 80)
    if not host:
        return f"not a URL: {endpoint}"
    try:
        with socket.create_connection((host, port), timeout=min(timeout, 10.0)):
            return None
    except OSError as e:
        return f"{type(e).__name__}: {e.strerror or e}"


def _progress_class(progress: Callable[[int, int | None], None]):
    from tqdm.auto import tqdm

    class _Reporting(tqdm):
        def __init__(self, *args, **kwargs):
            kwargs["disable"] = False
            kwargs["file"] = open(os.devnull, "w")  # noqa: SIM115 (closed with the bar)
            super().__init__(*args, **kwargs)

        def update(self, n=1):
            out = super().update(n)
            progress(int(self.n), int(self.total) if self.total else None)
            return out

        def close(self):
            f = self.fp
            super().close()
            with contextlib.suppress(Exception):
                f.close()

    return _Reporting


def fetch(encoder: str, name: str | None = None, progress: Callable[[int, int | None], None] | None = None,
          timeout: float = 20.0) -> dict:
    """Download ``encoder``'s weights ``name`` (default: imagenet, or timm's default tag) into the
    hub cache, as smp would. ``progress(done_bytes, total_bytes)`` follows the weights file.
    Returns the listing row; WeightsError in one line when the hub cannot be reached."""
    name = name or default_name(encoder)
    if name is None:
        raise WeightsError(f"{encoder}: no pretrained weights are listed for this encoder")
    src = source(encoder, name)
    if is_cached(src):
        return next(r for r in listing([encoder]) if r["weights"] == name)
    from huggingface_hub import constants, hf_hub_download

    problem = _unreachable(constants.ENDPOINT, timeout)
    if problem:
        raise WeightsError(f"cannot reach {constants.ENDPOINT} ({problem}) to download {src.repo_id}: on a machine "
                           f"with internet run `{src.fetch_command()}`, then copy {src.cache_folder()} into this "
                           f"machine's {cache_dir()} (or set HF_HUB_CACHE to a copy of that cache)")
    bar = _progress_class(progress) if progress else None
    try:
        with _online(), _quiet_hub():
            for f in src.files:
                hf_hub_download(src.repo_id, f, revision=src.revision, etag_timeout=timeout,
                                tqdm_class=bar if f == WEIGHTS_FILE else None)
    except Exception as e:  # no network, a proxy, the hub down, a gated repo: one line, never a traceback
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise WeightsError(f"cannot download {src.repo_id} ({type(e).__name__}: {first}); on a machine with "
                           f"internet run `{src.fetch_command()}`, then copy {src.cache_folder()} into this "
                           f"machine's {cache_dir()}") from None
    rows = listing([encoder])
    return next(r for r in rows if r["weights"] == name)


# --- what a run records, and the encoder's preprocessing ----------------------------------------
_SHA_CACHE: dict[tuple, str] = {}


def sha256(path: str | Path) -> str:
    """The file's sha256 (remembered per path, size and modification time)."""
    p = Path(path)
    st = p.stat()
    key = (str(p.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _SHA_CACHE:
        h = hashlib.sha256()
        with open(p, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        _SHA_CACHE[key] = h.hexdigest()
    return _SHA_CACHE[key]


def record(encoder: str, weights: str | None) -> dict | None:
    """What a run's config records about its starting weights: {"name", "repo_id", "revision",
    "file", "sha256"} for hub weights, {"name": "file", "file", "sha256"} for a local file, None
    for random weights."""
    if is_random(weights):
        return None
    if is_local_file(weights):
        path = Path(str(weights)).expanduser()
        return {"name": "file", "file": str(path.resolve()), "sha256": sha256(path)}
    src = require(encoder, str(weights))
    path = cached_file(src)
    return {"name": src.name, "repo_id": src.repo_id, "revision": cached_commit(src), "file": WEIGHTS_FILE,
            "sha256": sha256(path)}


def describe(rec: dict | None) -> str:
    """A short text of what a model started from: "random", "imagenet (smp-hub/...@3f2325f, sha256 1a2b3c4d)"."""
    if not rec:
        return RANDOM
    sha = (rec.get("sha256") or "")[:8]
    if rec.get("name") == "file":
        return f"file {Path(rec.get('file', '')).name} (sha256 {sha})"
    rev = (rec.get("revision") or "")[:7]
    return f"{rec.get('name')} ({rec.get('repo_id')}@{rev}, sha256 {sha})"


def preprocessing(encoder: str, name: str) -> dict:
    """smp's preprocessing parameters of cached weights: {"mean", "std", "input_range", "input_space"}
    (from the weights' config.json for smp encoders, timm's pretrained config for ``tu-``)."""
    src = require(encoder, name)
    if src.is_timm:
        import timm

        cfg = timm.models.get_pretrained_cfg(f"{_timm_model(encoder)}.{name}").to_dict()
    else:
        path = src.cache_folder() / "snapshots" / cached_commit(src) / "config.json"
        try:
            cfg = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            raise WeightsError(f"{path}: cannot read the weights' preprocessing ({e})") from None
    try:
        return {"mean": [float(v) for v in cfg["mean"]], "std": [float(v) for v in cfg["std"]],
                "input_range": [float(v) for v in cfg.get("input_range", [0, 1])],
                "input_space": str(cfg.get("input_space", "RGB"))}
    except (KeyError, TypeError, ValueError):
        raise WeightsError(f"{src.repo_id}: no mean/std in the weights' configuration") from None


def normalization(encoder: str, name: str, in_channels: int) -> dict:
    """{"mean", "std"}, one value per input channel, for images scaled to [0, 1]: the encoder's
    own preprocessing. Grey input into an RGB-pretrained encoder (whose first convolution smp
    sums over RGB) takes the mean of the three means and of the three stds; more channels
    repeat R, G, B as smp repeats the convolution's weights; BGR weights see channels reversed."""
    p = preprocessing(encoder, name)
    mean, std = list(p["mean"]), list(p["std"])
    scale = max(p["input_range"]) if p["input_range"] else 1.0
    if scale > 1:  # weights trained on 0..255 values: (255 x - m) / s == (x - m / 255) / (s / 255)
        mean, std = [m / scale for m in mean], [s / scale for s in std]
    if p["input_space"].upper() == "BGR" and in_channels == 3:
        mean, std = mean[::-1], std[::-1]
    if in_channels == 1:
        mean, std = [sum(mean) / len(mean)], [sum(std) / len(std)]
    else:
        mean, std = [mean[i % len(mean)] for i in range(in_channels)], [std[i % len(std)] for i in range(in_channels)]
    return {"mean": mean, "std": std, "weights": name}


def smp_arguments(src: WeightsSource) -> tuple[str, object, dict]:
    """(encoder_name, encoder_weights, extra kwargs) for ``smp.create_model`` to build ``src``
    from the cache only: smp's pinned commit as is; for timm the cached commit pinned in the
    model's ``hf_hub_id`` (``repo@commit``), so the hub answers from its cache without a request."""
    if not src.is_timm:
        return src.encoder, src.name, {}
    commit = cached_commit(src)
    overlay = {"hf_hub_id": f"{src.repo_id}@{commit}" if commit else src.repo_id}
    return f"tu-{_timm_model(src.encoder)}.{src.name}", True, {"pretrained_cfg_overlay": overlay}
