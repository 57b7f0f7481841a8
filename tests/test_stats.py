"""Statistics against values computed by hand, and the CLI contract."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from seglib.cli import main
from seglib.data import open_dataset
from seglib.stats import compute_stats

ROOT = Path(__file__).resolve().parents[1]


def test_stats_match_a_plain_numpy_pass(demo_npz):
    ds = open_dataset(demo_npz)
    stats = compute_stats(ds, use_cache=False)
    z = np.load(demo_npz)
    imgs, masks = z["training_set"][:, 0], z["training_set"][:, 1]
    counts = np.stack([np.bincount(m.ravel(), minlength=5) for m in masks])
    pi = stats.per_image
    lab = pi[pi["labeled"]]
    np.testing.assert_array_equal(lab[[f"px_{c}" for c in range(5)]].to_numpy(), counts)
    np.testing.assert_allclose(lab["mean"].to_numpy(), imgs.reshape(300, -1).mean(1), rtol=1e-5)
    np.testing.assert_allclose(lab["std"].to_numpy(), imgs.reshape(300, -1).std(1), rtol=1e-4)
    assert (lab["n_classes"].to_numpy() == (counts > 0).sum(1)).all()
    pc = stats.per_class()
    assert pc["pixels"].tolist() == counts.sum(0).tolist()
    assert pc["images_with_class"].tolist() == (counts > 0).sum(0).tolist()
    assert pc["pixel_fraction"].sum() == pytest.approx(1.0)
    unl = pi[~pi["labeled"]]
    assert len(unl) == 40 and unl["px_0"].isna().all()
    co = stats.cooccurrence()
    assert co.loc["background", "background"] == (counts[:, 0] > 0).sum()


def test_second_open_is_a_cache_hit(demo_npz):
    assert not compute_stats(open_dataset(demo_npz), use_cache=False).from_cache
    compute_stats(open_dataset(demo_npz))
    assert compute_stats(open_dataset(demo_npz)).from_cache


def test_cli_stats_json_contract(demo_npz, capsys):
    assert main(["stats", str(demo_npz), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["n_images"] == 340 and doc["n_labeled"] == 300
    assert [c["name"] for c in doc["classes"]] == ["background", "soil", "bedrock", "sand", "big rock"]
    for c in doc["classes"]:
        assert set(c) >= {"id", "name", "pixels", "pixel_fraction", "images_with_class", "ignore"}
    assert doc["problems"] == []


def test_cli_reports_problems_with_files(tmp_path, capsys):
    from PIL import Image
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "images" / "a.png")
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "masks" / "a.png")
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "images" / "b.png")
    Image.fromarray(np.zeros((3, 3), np.uint8)).save(tmp_path / "masks" / "b.png")
    assert main(["stats", str(tmp_path), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["n_images"] == 1 and doc["n_excluded"] == 1
    (p,) = doc["problems"]
    assert p["file"].endswith("masks/b.png") and "3x3" in p["problem"]


def test_cli_errors_are_one_line_and_nonzero(tmp_path):
    env_python = sys.executable
    r = subprocess.run([env_python, "-m", "seglib", "stats", str(tmp_path / "missing")],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 1
    assert r.stderr.strip().count("\n") == 0 and "missing: no such file" in r.stderr
    (tmp_path / "empty").mkdir()
    r = subprocess.run([env_python, "-m", "seglib", "stats", str(tmp_path / "empty"), "--json"],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 1 and "no image files" in r.stderr and r.stdout == ""


def test_cli_demo_data_writes_npz_and_truth(tmp_path, capsys):
    assert main(["demo-data", str(tmp_path / "d.npz"), "--n", "60", "--seed", "2", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert Path(doc["path"]).exists() and Path(doc["truth"]).name == "d.truth.json"
    truth = json.loads(Path(doc["truth"]).read_text())
    assert set(truth) >= {"alien", "duplicate", "near_duplicate", "label_noise", "blank"}
