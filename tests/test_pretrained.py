"""Pretrained encoder weights through smp's own mechanism, from a Hugging Face cache built here,
offline: the repo id and revision smp asks for, a model.safetensors made from a randomly
initialised encoder, in huggingface_hub's cache layout (blobs, snapshots/REV, refs/main).
Training starts from exactly those tensors, inputs are normalised with the weights' mean/std
everywhere, and weights not in the cache fail in one line that names the fetch command."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from seglib import pretrained
from seglib.data.demo import write_demo
from seglib.models import ModelError, ModelSpec, build_model
from seglib.train import TrainConfig, load_model, train

MEAN, STD = [0.1, 0.2, 0.3], [0.5, 0.6, 0.7]  # unlike ImageNet's: the test sees where they came from


def fake_hub_weights(cache: Path, encoder: str, name: str, seed: int = 0) -> dict[str, torch.Tensor]:
    """Put ``encoder``'s weights ``name`` into the hub cache at ``cache`` as a download would:
    blobs/<sha256>, snapshots/<revision>/<file> -> ../../blobs/<sha256>, refs/main. Returns the tensors."""
    import segmentation_models_pytorch as smp

    src = pretrained.source(encoder, name)
    torch.manual_seed(seed)
    if src.is_timm:
        import timm

        net = timm.create_model(encoder[3:], pretrained=False)
    else:
        net = smp.encoders.get_encoder(encoder, in_channels=3, weights=None)
    state = {k: v.detach().clone().contiguous() for k, v in net.state_dict().items()}
    commit = src.revision or hashlib.sha1(src.repo_id.encode()).hexdigest()
    folder = cache / ("models--" + src.repo_id.replace("/", "--"))
    (folder / "blobs").mkdir(parents=True, exist_ok=True)
    (folder / "snapshots" / commit).mkdir(parents=True, exist_ok=True)
    (folder / "refs").mkdir(exist_ok=True)
    (folder / "refs" / "main").write_text(commit)
    tmp = folder / "weights.tmp"
    save_file(state, str(tmp))
    files = {pretrained.WEIGHTS_FILE: tmp.read_bytes()}
    tmp.unlink()
    if not src.is_timm:
        files["config.json"] = json.dumps({"mean": MEAN, "std": STD, "input_space": "RGB",
                                           "input_range": [0, 1]}).encode()
    for fname, data in files.items():
        blob = folder / "blobs" / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        (folder / "snapshots" / commit / fname).symlink_to(os.path.relpath(blob, folder / "snapshots" / commit))
    return state


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny-pre") / "tiny.npz"
    write_demo(path, n=52, seed=2, n_test=4)
    return path


def _cli(*args, timeout=180, **env):
    full = dict(os.environ, **env)
    return subprocess.run([sys.executable, "-m", "seglib", *args], capture_output=True, text=True, timeout=timeout,
                          env=full)


def test_names_and_sources_are_smps():
    import segmentation_models_pytorch as smp

    assert pretrained.weight_names("resnet18") == list(smp.encoders.encoders["resnet18"]["pretrained_settings"])
    src = pretrained.source("resnet18", "imagenet")
    settings = smp.encoders.encoders["resnet18"]["pretrained_settings"]["imagenet"]
    assert (src.repo_id, src.revision) == (settings["repo_id"], settings["revision"])
    assert src.files == ("config.json", "model.safetensors")
    timm_src = pretrained.source("tu-convnext_atto", "d2_in1k")
    assert timm_src.repo_id == "timm/convnext_atto.d2_in1k" and timm_src.revision is None
    with pytest.raises(pretrained.WeightsError, match="offered: imagenet, ssl, swsl"):
        pretrained.source("resnet18", "imagenet21k")
    assert pretrained.is_local_file("w/enc.pth") and not pretrained.is_local_file("imagenet")


def test_build_starts_from_exactly_the_cached_tensors(hub_cache):
    state = fake_hub_weights(hub_cache, "mobilenet_v2", "imagenet")
    rgb = build_model(ModelSpec("Unet", "mobilenet_v2", 3, 4), "imagenet")
    got = rgb.net.encoder.state_dict()
    assert set(got) == set(state)
    assert all(torch.equal(got[k], state[k]) for k in state)
    # Grey data into the RGB-pretrained encoder: smp sums the first convolution over R, G, B.
    grey = build_model(ModelSpec("Unet", "mobilenet_v2", 1, 4), "imagenet").net.encoder.state_dict()
    first = "features.0.0.weight"
    assert torch.allclose(grey[first], state[first].sum(1, keepdim=True))
    assert all(torch.equal(grey[k], state[k]) for k in state if k != first)
    # ... and the inputs are normalised with the weights' own mean/std (one value per channel).
    assert rgb.normalization["mean"] == MEAN and rgb.normalization["std"] == STD
    x = torch.rand(2, 3, 64, 96)
    mean, std = torch.tensor(MEAN).view(1, 3, 1, 1), torch.tensor(STD).view(1, 3, 1, 1)
    assert torch.allclose(rgb.normalize(x), (x - mean) / std)
    assert build_model(ModelSpec("Unet", "mobilenet_v2", 1, 4), "imagenet").normalization["mean"] == [
        pytest.approx(sum(MEAN) / 3)]
    assert build_model(ModelSpec("Unet", "mobilenet_v2", 1, 4)).normalization is None  # random: inputs as given


def test_timm_encoder_from_the_cache(hub_cache):
    state = fake_hub_weights(hub_cache, "tu-convnext_atto", "d2_in1k")
    model = build_model(ModelSpec("Unet", "tu-convnext_atto", 3, 3), "d2_in1k")
    got = model.net.encoder.model.state_dict()
    # timm's feature wrapper names modules stem_0 for stem.0: match by the original name
    matched = 0
    for key, value in got.items():
        original = key if key in state else key.replace("_", ".", 1)
        assert torch.equal(value, state[original]), key
        matched += 1
    assert matched > 20
    import timm

    cfg = timm.models.get_pretrained_cfg("convnext_atto.d2_in1k")
    assert model.normalization["mean"] == pytest.approx(list(cfg.mean))


def test_training_starts_from_the_cached_weights_and_records_them(hub_cache, tiny, tmp_path, monkeypatch):
    state = fake_hub_weights(hub_cache, "mobilenet_v2", "imagenet")
    import seglib.train.engine as engine

    seen = {}
    real = engine.build_model

    def spy(spec, weights=None):
        model = real(spec, weights)
        seen["encoder"] = {k: v.clone() for k, v in model.net.encoder.state_dict().items()}
        seen["normalization"] = model.normalization
        return model

    monkeypatch.setattr(engine, "build_model", spy)
    cfg = TrainConfig(data=str(tiny), encoder="mobilenet_v2", encoder_weights="imagenet", epochs=1, batch_size=8,
                      max_steps_per_epoch=1, patience=0, val_fraction=0.25)
    train(cfg, run_dir=tmp_path / "run")
    first = "features.0.0.weight"  # the demo is grey: smp sums the RGB filter
    assert torch.allclose(seen["encoder"][first], state[first].sum(1, keepdim=True))
    assert all(torch.equal(seen["encoder"][k], state[k]) for k in state if k != first)
    conf = json.loads((tmp_path / "run" / "config.json").read_text())
    rec = conf["resolved"]["encoder_weights"]
    src = pretrained.source("mobilenet_v2", "imagenet")
    blob = pretrained.cached_file(src)
    assert rec == {"name": "imagenet", "repo_id": src.repo_id, "revision": src.revision, "file": "model.safetensors",
                   "sha256": hashlib.sha256(blob.read_bytes()).hexdigest()}
    norm = conf["resolved"]["normalization"]
    assert norm["mean"] == [pytest.approx(sum(MEAN) / 3)] and norm["std"] == [pytest.approx(sum(STD) / 3)]
    assert seen["normalization"] == norm
    assert pretrained.describe(rec).startswith("imagenet (smp-hub/mobilenet_v2.imagenet@")
    # Inference (and Compare, the learned map) normalise the same way, with no cache at all.
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "elsewhere"))
    model, _ = load_model(tmp_path / "run")
    x = torch.rand(1, 1, 64, 128)
    with torch.no_grad():
        expect = model.net((x - norm["mean"][0]) / norm["std"][0])
        assert torch.allclose(model(x), expect, atol=1e-6)
    from seglib.predict.embeddings import _pooled

    with torch.no_grad():
        pooled = _pooled(model, x, "Unet")
        direct = [f for f in model.net.encoder(model.normalize(x)) if f.ndim == 4 and f.shape[1] > 0][-1]
    assert torch.allclose(pooled[-1][0], direct.float().mean((2, 3)))
    # Resume needs neither the starting weights nor the cache: the last weights replace them.
    again = train(TrainConfig(data=str(tiny), epochs=2), run_dir=tmp_path / "run", resume=True)
    assert again["epochs"] == 2


def test_missing_weights_fail_in_one_line_naming_the_fetch(hub_cache, tiny, tmp_path):
    with pytest.raises(ModelError) as e:
        build_model(ModelSpec("Unet", "resnet18", 1, 2), "ssl")
    msg = str(e.value)
    assert "\n" not in msg and "seglib weights fetch resnet18 --weights ssl" in msg and str(hub_cache) in msg
    assert "models--smp-hub--resnet18.ssl" in msg  # the folder to copy onto an air-gapped machine
    t0 = time.perf_counter()
    r = _cli("train", str(tiny), "--out", str(tmp_path / "r"), "--encoder", "resnet18", "--encoder-weights", "ssl",
             "--epochs", "1")
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and "seglib weights fetch resnet18 --weights ssl" in last
    assert time.perf_counter() - t0 < 120  # no waiting on the network
    bad = _cli("train", str(tiny), "--out", str(tmp_path / "r2"), "--encoder", "resnet18", "--encoder-weights",
               "imagenet21k", "--epochs", "1")
    assert bad.returncode == 1 and "offered: imagenet, ssl, swsl" in bad.stderr and "Traceback" not in bad.stderr


def test_cli_weights_list_and_fetch_offline(hub_cache):
    empty = _cli("weights", "list", "--json")
    assert empty.returncode == 0, empty.stderr
    doc = json.loads(empty.stdout)
    assert doc["cache"] == str(hub_cache) and doc["weights"] == []
    assert doc["sam2"] and not any(m["cached"] for m in doc["sam2"]), "SAM 2 models listed, none cached"
    fake_hub_weights(hub_cache, "mobilenet_v2", "imagenet")
    listed = json.loads(_cli("weights", "list", "--json").stdout)
    rows = [(r["encoder"], r["weights"], r["cached"]) for r in listed["weights"]]
    assert rows == [("mobilenet_v2", "imagenet", True)]
    assert listed["weights"][0]["bytes"] > 1e6
    offered = json.loads(_cli("weights", "list", "--json", "--encoder", "resnet18").stdout)["weights"]
    assert [(r["weights"], r["cached"]) for r in offered] == [("imagenet", False), ("ssl", False), ("swsl", False)]
    # Already cached: nothing to download, offline or not.
    have = _cli("weights", "fetch", "mobilenet_v2", "--json")
    assert have.returncode == 0 and json.loads(have.stdout)["cached"] is True
    # No network (a closed port stands for it): one line, quickly, saying what to fetch and what to copy.
    t0 = time.perf_counter()
    r = _cli("weights", "fetch", "resnet18", "--weights", "ssl", HF_ENDPOINT="http://127.0.0.1:9")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "seglib weights fetch resnet18 --weights ssl" in lines[0]
    assert "models--smp-hub--resnet18.ssl" in lines[0] and time.perf_counter() - t0 < 60
    none = _cli("weights", "fetch", "no_such_encoder")
    assert none.returncode == 1 and len(none.stderr.strip().splitlines()) == 1


def test_fetch_turns_offline_off_only_for_its_call(hub_cache, monkeypatch):
    """The download goes through the hub with HF_HUB_OFFLINE off, progress reported; afterwards
    offline again (the hub itself is stubbed: this machine has no network)."""
    from huggingface_hub import constants

    calls = []

    def fake_download(repo_id, filename, revision=None, tqdm_class=None, **kw):
        calls.append((repo_id, filename, revision, constants.HF_HUB_OFFLINE, os.environ.get("HF_HUB_OFFLINE")))
        if tqdm_class is not None:
            bar = tqdm_class(total=100)
            bar.update(60)
            bar.update(40)
            bar.close()
        if filename == pretrained.WEIGHTS_FILE:  # the download lands in the cache
            fake_hub_weights(hub_cache, "resnet18", "swsl")
        return ""

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr("huggingface_hub.hf_hub_download", fake_download)
    monkeypatch.setattr(pretrained, "_unreachable", lambda *a: None)
    seen = []
    row = pretrained.fetch("resnet18", "swsl", progress=lambda done, total: seen.append((done, total)))
    src = pretrained.source("resnet18", "swsl")
    assert [c[:3] for c in calls] == [(src.repo_id, "config.json", src.revision),
                                      (src.repo_id, "model.safetensors", src.revision)]
    assert all(c[3] is False and c[4] == "0" for c in calls)
    assert constants.HF_HUB_OFFLINE is True and os.environ["HF_HUB_OFFLINE"] == "1"
    assert seen[-1] == (100, 100) and row["cached"] and load_file(row["file"])


def test_train_page_offers_cached_weights_and_says_how_to_get_the_rest(hub_cache, app_data_with_demo, tmp_path,
                                                                       monkeypatch):
    from pathlib import Path as _P

    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("SEGLIB_CHECKPOINTS", str(tmp_path / "checkpoints"))
    app_data_with_demo()
    fake_hub_weights(hub_cache, "resnet18", "imagenet")
    at = AppTest.from_file(str(_P(__file__).resolve().parents[1] / "app.py"), default_timeout=120)
    at.run()
    at.switch_page("pages/4_train.py").run()
    assert not at.exception, at.exception
    key = "train_w_weights"
    box = at.selectbox(key=key)
    assert box.options[:4] == ["random (no pretraining)", "imagenet · in the cache (45 MB)",
                               "ssl · to download (about 45 MB)", "swsl · to download (about 45 MB)"]
    box.set_value("imagenet").run()
    assert not at.exception and not at.error
    assert at.button(key="train_start").disabled is False
    at.selectbox(key=key).set_value("ssl").run()
    assert any("seglib weights fetch resnet18 --weights ssl" in e.value for e in at.error)
    assert at.button(key="train_start").disabled is True
    assert at.button(key=key + "_download")  # offered, not pressed: no network here
