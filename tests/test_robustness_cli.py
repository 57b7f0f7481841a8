"""The robustness matrix, command line: every edge-case dataset of tests/edge_datasets.py through
``seglib stats``, ``outliers``, ``train``, ``evaluate`` and ``predict``. Where a command can work it
exits 0 with strict JSON (no NaN) and sane numbers; where it cannot, it exits 1 with one line on
stderr, ``error: ...``, and no traceback. In-process (``seglib.cli.main``): a subprocess would pay
for importing torch each time."""
from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import numpy as np
import pytest
from edge_datasets import EDGE_DATASETS, build
from PIL import Image

from seglib.cli import main
from seglib.data import open_dataset
from seglib.outliers import detect
from seglib.outliers.projection import projection
from seglib.stats import compute_stats

OK = None
COMMANDS = ("stats", "outliers", "train", "evaluate", "predict")
NOTHING = "no image files found in this folder or below it"
UNREADABLE = "none of its 3 images can be used; first:"
TOO_FEW = "training needs at least 2"
# What each command says on each dataset: OK (exit 0) or a piece of its one-line error. evaluate and
# predict use one run trained on tests/edge_datasets.normal (grey, background/thing/void).
EXPECT = {
    "empty": dict.fromkeys(COMMANDS, NOTHING),
    "unreadable_only": {"stats": OK, "outliers": UNREADABLE, "train": UNREADABLE,
                        "evaluate": "none of the 3 images", "predict": "none of the 3 images"},
    "one_image": {"stats": OK, "outliers": OK, "train": TOO_FEW, "evaluate": OK, "predict": OK},
    "unlabeled_only": {"stats": OK, "outliers": OK, "train": TOO_FEW,
                       "evaluate": "predicts 3 classes", "predict": "predicts 3 classes"},
    "one_class": {"stats": OK, "outliers": OK, "train": OK,
                  "evaluate": "has 1 (class_0)", "predict": "has 1 (class_0)"},
    "all_ignored": {"stats": OK, "outliers": OK, "train": "every labeled pixel is of an ignored class (void)",
                    "evaluate": OK, "predict": OK},
    "many_sizes": dict.fromkeys(COMMANDS, OK),
    "tiff_16bit_float": dict.fromkeys(COMMANDS, OK),
    "rgba_png": {"stats": OK, "outliers": OK, "train": OK,
                 "evaluate": "takes 1 channel(s)", "predict": "takes 1 channel(s)"},
    "palette_unknown": dict.fromkeys(COMMANDS, OK),
}
TINY = ["--arch", "Unet", "--encoder", "mobilenet_v2", "--epochs", "1", "--max-steps-per-epoch", "1",
        "--batch-size", "2", "--device", "cpu", "--workers", "0", "--quiet", "--json"]


def test_the_matrix_covers_every_edge_dataset():
    assert set(EXPECT) == set(EDGE_DATASETS)


@pytest.fixture(scope="module")
def datasets(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("edge-cli")
    return {name: build(name, base) for name in [*EDGE_DATASETS, "normal"]}


@pytest.fixture(scope="module")
def run(tmp_path_factory, datasets) -> Path:
    """One tiny run on the reference dataset, trained once for the module."""
    import contextlib
    import io

    root = tmp_path_factory.mktemp("edge-run")
    old = os.environ.get("SEGLIB_DATA_DIR")
    os.environ["SEGLIB_DATA_DIR"] = str(root / "seglib-data")  # the review store training reads
    try:
        err = io.StringIO()
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
            code = main(["train", str(datasets["normal"]), "--out", str(root / "run"), *TINY])
        assert code == 0, err.getvalue()
    finally:
        if old is None:
            os.environ.pop("SEGLIB_DATA_DIR", None)
        else:
            os.environ["SEGLIB_DATA_DIR"] = old
    return root / "run"


def cli(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def strict_json(text: str):
    def refuse(constant):
        raise AssertionError(f"{constant} in JSON output")
    return json.loads(text, parse_constant=refuse)


def message_lines(err: str) -> list[str]:
    """stderr without progress bars (tqdm redraws with carriage returns)."""
    return [ln for ln in err.replace("\r", "\n").splitlines() if ln.strip() and "%|" not in ln]


def argv_for(command: str, path: Path, run: Path, out: Path) -> list:
    if command in ("stats", "outliers"):
        return [command, path, "--json"]
    if command == "train":
        return ["train", path, "--out", out / "run", *TINY]
    common = ["--checkpoint", run, "--data", path, "--device", "cpu", "--quiet", "--json"]
    return ["evaluate", *common] if command == "evaluate" else ["predict", *common, "--out", out / "masks"]


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("name", list(EDGE_DATASETS))
def test_every_command_on_every_edge_dataset(capsys, tmp_path, datasets, run, name, command):
    path = datasets[name]
    code, out, err = cli(capsys, *argv_for(command, path, run, tmp_path))
    assert "Traceback" not in err
    expected = EXPECT[name][command]
    if expected is not OK:
        lines = message_lines(err)
        assert code == 1 and out == "", (code, out, err)
        assert len(lines) == 1 and lines[0].startswith("error: "), err
        assert expected in lines[0], lines[0]
        if name == "empty":
            assert str(path) in lines[0]  # where it looked
        return
    assert code == 0, err
    doc = strict_json(out)
    ds = open_dataset(path)
    if command == "stats":
        assert doc["n_images"] == len(ds) - (3 if name == "unreadable_only" else 0)
        if name == "palette_unknown":  # reported with its pixel count, not silently mapped
            assert any("7 (40 px)" in p["problem"] and p["file"].endswith("img1.png") for p in doc["problems"])
        if name == "rgba_png":
            assert {s["channels"] for s in doc["sizes"]} == {3}  # alpha dropped
        if name == "many_sizes":
            assert len(doc["sizes"]) == 6
    elif command == "outliers":
        assert doc["n_images"] == len(ds) and isinstance(doc["flags"], list)
    elif command == "train":
        assert doc["epochs"] == 1 and doc["status"] and 0 <= doc["val"]["miou"] <= 1
    elif command == "evaluate":
        scores = doc["models"]["run"]
        if name == "all_ignored":  # zero scored pixels: no score at all, not NaN and not 0
            assert scores["miou"] is None and scores["pixel_accuracy"] is None
        else:
            assert 0 <= scores["miou"] <= 1 and doc["n_images"] == len(ds.labeled_ids)
    elif command == "predict":
        assert doc["n_images"] == len(ds)
        for image_id in ds.ids:  # one index mask per image, at the image's own size
            mask = np.asarray(Image.open(tmp_path / "masks" / f"{image_id}.png"))
            assert mask.shape == ds.image(image_id).shape[:2] and mask.max() <= 2


def test_train_json_has_no_nan_where_a_metric_does_not_exist(capsys, tmp_path, datasets):
    """A one-class dataset has no class but the background: miou_no_bg is null (was a bare NaN,
    which JSON readers refuse)."""
    code, out, err = cli(capsys, "train", datasets["one_class"], "--out", tmp_path / "run", *TINY)
    assert code == 0, err
    doc = strict_json(out)
    assert doc["val"]["miou_no_bg"] is None and doc["val"]["miou"] > 0


# --- the library under the commands -------------------------------------------------------------
def test_detectors_and_the_map_on_a_dataset_without_images(tmp_path):
    """Before: near_duplicate raised 'cannot reshape array of size 0' (the Review page's traceback),
    and the map's projection warned 'Mean of empty slice'."""
    ds = open_dataset(build("empty", tmp_path))
    stats = compute_stats(ds, use_cache=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert detect(ds, stats, use_cache=False).empty
        assert projection(ds, stats, use_cache=False).empty
    assert ds.empty_reason().startswith(f"{ds.source}: no image files found")


def test_an_empty_reason_only_for_a_dataset_without_usable_images(tmp_path):
    assert open_dataset(build("one_image", tmp_path)).empty_reason() is None
    ds = open_dataset(build("unreadable_only", tmp_path))
    compute_stats(ds, use_cache=False)
    why = ds.empty_reason()
    assert why.startswith(f"{ds.source}: none of its 3 images can be used; first: ") and "img0.png" in why
