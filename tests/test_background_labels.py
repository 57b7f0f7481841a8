"""The Train page says which class "leave the background out" means, and when a class file names
none (class 0 is Water, not background) that the box changes nothing."""
from __future__ import annotations

import json
from pathlib import Path

from aerial_tiles import MASK_COLOURS, write_aerial
from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parents[1] / "app.py")
W = "train_w_"


def _train_page(path: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    at.session_state["dataset_path"] = path
    at.run()
    at.switch_page("pages/4_train.py").run()
    assert not at.exception, at.exception
    return at


def _aerial(root: Path, background: str | None) -> Path:
    write_aerial(root, class_file=False)
    (root / "classes.json").write_text(json.dumps([
        {"id": k, "name": name, "color": colour, **({"background": True} if name == background else {})}
        for k, (name, colour) in enumerate(sorted(MASK_COLOURS.items(), key=lambda kv: kv[0] != "Water"))]))
    return root


def test_the_exclude_background_box_names_the_class_or_says_there_is_none(app_data_with_demo, tmp_path,
                                                                           monkeypatch):
    app_data_with_demo(n=50, n_test=0)
    monkeypatch.setenv("SEGLIB_CHECKPOINTS", str(tmp_path / "checkpoints"))
    box = _train_page(str(_aerial(tmp_path / "none", None))).checkbox(key=W + "exclude_background")
    assert box.label.endswith("(this class map has none: no effect)")
    assert "no background class" in box.help and "mIoU without background is mIoU" in box.help
    box = _train_page(str(_aerial(tmp_path / "marked", "Unlabeled"))).checkbox(key=W + "exclude_background")
    assert "none" not in box.label and box.help.startswith("The background class is Unlabeled (id ")
