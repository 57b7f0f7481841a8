"""The train and models commands: the JSON contract, one-line errors, and torchrun (DDP on gloo)."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from seglib.data.demo import write_demo
from seglib.train import RunFolder


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny-cli") / "tiny.npz"
    write_demo(path, n=52, seed=1, n_test=4)
    return path


def _cli(*args, **kw):
    return subprocess.run([sys.executable, "-m", "seglib", *args], capture_output=True, text=True, timeout=600, **kw)


def test_cli_train_json_contract_and_one_line_errors(tiny, tmp_path):
    out = tmp_path / "run"
    r = _cli("train", str(tiny), "--arch", "Unet", "--encoder", "mobilenet_v2", "--out", str(out), "--epochs", "1",
             "--batch-size", "8", "--max-steps-per-epoch", "2", "--val-fraction", "0.25", "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["run"] == str(out) and doc["epochs"] == 1 and doc["best_epoch"] == 1
    assert set(doc["val"]) == {"miou", "miou_no_bg", "pixel_accuracy", "mean_pixel_accuracy", "dice", "per_class_iou"}
    again = _cli("train", str(tiny), "--out", str(out), "--epochs", "1")
    assert again.returncode == 1 and "already holds a run" in again.stderr
    (out / "last.safetensors").write_bytes(b"garbage")
    broken = _cli("train", str(tiny), "--out", str(out), "--epochs", "2", "--resume")
    assert broken.returncode == 1 and "Traceback" not in broken.stderr
    assert broken.stderr.strip().splitlines()[-1].startswith("error: ") and "last.safetensors" in broken.stderr
    bad = _cli("train", str(tiny), "--out", str(tmp_path / "x"), "--arch", "DPT", "--encoder", "resnet18")
    assert bad.returncode == 1 and "ViT" in bad.stderr and "Traceback" not in bad.stderr


def test_cli_models_lists_pairs_and_reasons():
    r = _cli("models", "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert "Segformer" in doc["architectures"] and "mit_b0" in doc["encoders"]
    assert any(x["arch"] == "DPT" and "ViT" in x["reason"] for x in doc["invalid"])


def test_torchrun_two_processes_agree_and_write_once(tiny, tmp_path):
    out = tmp_path / "ddp"
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                        "-m", "seglib", "train", str(tiny), "--encoder", "mobilenet_v2", "--out", str(out),
                        "--epochs", "1", "--batch-size", "4", "--max-steps-per-epoch", "2", "--val-fraction", "0.25",
                        "--device", "cpu", "--json", "--quiet"], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    doc = json.loads(r.stdout)  # one JSON document: only rank 0 printed
    assert doc["world_size"] == 2 and doc["epochs"] == 1  # the engine checked that both ranks' weights agree
    log = (out / "log.txt").read_text()
    assert log.count("starting") == 1 and "rank 0/2" in log
    cfg = RunFolder(out).read_config()
    assert cfg["resolved"]["world_size"] == 2
    history = RunFolder(out).read_history()
    assert np.array(history[0]["confusion"]).sum() == len(cfg["val_ids"]) * 64 * 128  # both shards counted


def test_help_quotes_the_real_defaults():
    from seglib.cli.train import HELP_DEFAULTS
    from seglib.train import TrainConfig

    d = TrainConfig()
    assert {k: getattr(d, k) for k in HELP_DEFAULTS} == HELP_DEFAULTS
