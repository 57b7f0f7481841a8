"""AppTest of the Augment page: add a transform, preview, save, load; the CLI over the same files."""
from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[1]
APP, PAGE = str(ROOT / "app.py"), "pages/3_augment.py"


@pytest.fixture
def app_dir(app_data_with_demo):
    return app_data_with_demo()


def _open() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    at.switch_page(PAGE).run()
    assert not at.exception, at.exception
    return at


def _button(at, key):
    return next(b for b in at.button if b.key == key)


def test_add_preview_save_load(app_dir):
    at = _open()
    n_images = len(at.get("image"))
    assert n_images >= 8 * 5  # 8 images x (original + 4 draws)
    n_steps = len(at.session_state["augment_steps"])
    at.selectbox(key="augment_add_pick").set_value("RandomRotate90").run()
    _button(at, "augment_add").click().run()
    assert len(at.session_state["augment_steps"]) == n_steps + 1
    labels = [e.label for e in at.expander]
    assert any(label.startswith(f"{n_steps + 1}. **RandomRotate90**") for label in labels), labels  # in the pipeline
    assert "A.RandomRotate90(p=1.0)" in at.code[0].value                                             # and its code
    assert any("RandomRotate90" in e.value and "64x128" in e.value for e in at.error)  # the harmful step is named
    at.text_input(key="augment_save_name").set_value("rot").run()
    _button(at, "augment_save").click().run()
    assert not at.exception, at.exception
    saved = app_dir / "pipelines" / "rot.json"
    names = [t["__class_fullname__"] for t in json.loads(saved.read_text())["transform"]["transforms"]]
    assert names == ["HorizontalFlip", "Affine", "RandomBrightnessContrast", "RandomRotate90"]

    fresh = _open()  # a new session loads it back
    fresh.selectbox(key="augment_load_pick").set_value("rot").run()
    _button(fresh, "augment_load").click().run()
    assert not fresh.exception, fresh.exception
    assert [s["name"] for s in fresh.session_state["augment_steps"]] == names
    assert fresh.session_state["augment_steps"][1]["params"]["rotate"] == (-15.0, 15.0)


def _preview_urls(at) -> tuple[list[str], list[str]]:
    """(originals, draws) of the preview grid: each row is an original and its draws."""
    urls = [img.proto.imgs[0].url for img in at.get("image")]
    per_row = int(at.number_input(key="augment_draws").value) + 1
    return urls[::per_row], [u for k, u in enumerate(urls) if k % per_row]


def test_draw_again_redraws_the_same_images_and_remove_empties(app_dir):
    at = _open()
    at.multiselect(key="augment_ids").set_value(["00003", "00007", "00011"]).run()
    originals, draws = _preview_urls(at)
    assert len(originals) == 3 and len(draws) == 3 * 4
    _button(at, "augment_again").click().run()
    assert at.session_state["augment_seed"] == 1
    originals2, draws2 = _preview_urls(at)
    assert originals2 == originals               # the same images...
    assert len(set(draws2) - set(draws)) >= len(draws) // 2  # ...drawn anew (a flip may repeat a picture)
    for _ in range(len(at.session_state["augment_steps"])):
        rm = next(b for b in at.button if b.key and b.key.endswith("_rm"))
        rm.click().run()
    assert at.session_state["augment_steps"] == []
    assert any("empty" in i.value for i in at.info)
    assert not at.exception


def _bars(chart) -> dict[str, dict[str, float]]:
    """{"before"|"after": {class name: share}} of a rebalancing chart."""
    def values(v):
        if isinstance(v, dict) and "bdata" in v:  # plotly's binary array encoding
            return np.frombuffer(base64.b64decode(v["bdata"]), dtype=v["dtype"]).tolist()
        return list(v)
    traces = json.loads(chart.proto.spec)["data"]
    return {t["name"]: dict(zip(values(t["x"]), values(t["y"]), strict=True)) for t in traces}


def test_rebalancing_shows_what_the_sampler_will_draw(app_dir):
    at = _open()
    assert at.multiselect(key="augment_bal_classes").value == [4]  # the rarest class is proposed
    px, images = at.get("plotly_chart")
    bars = _bars(images)  # oversample by default: images with big rock drawn 4x as often
    share = bars["before"]["big rock"]
    assert 0 < share < 0.5 and bars["after"]["big rock"] == pytest.approx(4 * share / (4 * share + 1 - share))
    assert "mode='oversample', classes=[4], factor=4.0" in at.code[-1].value
    at.radio(key="augment_bal_mode").set_value("uniform").run()
    assert not at.exception, at.exception
    for chart in at.get("plotly_chart"):
        bars = _bars(chart)
        assert bars["after"] == pytest.approx(bars["before"])  # uniform changes nothing
    assert at.code[-1].value.endswith("mode='uniform', seed=0)")
    at.radio(key="augment_bal_mode").set_value("presence").run()
    assert _bars(at.get("plotly_chart")[0])["after"]["big rock"] > _bars(px)["before"]["big rock"]


def test_cli_show_and_check(app_dir, demo_npz, capsys):
    from seglib.augment import new_step, save_pipeline
    from seglib.cli import main
    save_pipeline("flip", [new_step("HorizontalFlip")])

    def run(*a):
        capsys.readouterr()
        rc = main(["augment", *a])
        out = capsys.readouterr()
        return rc, out.out, out.err
    rc, out, _ = run("show", "flip", "--json")
    assert rc == 0 and json.loads(out)["steps"][0]["name"] == "HorizontalFlip"
    rc, out, _ = run("check", "flip", "--data", str(demo_npz), "--json")
    assert rc == 0 and json.loads(out)["findings"] == []
    rc, _, err = run("show", "nope")
    assert rc == 1 and "nope" in err
    grid = app_dir / "grid.png"
    rc, _, _ = run("preview", "flip", "--data", str(demo_npz), "--out", str(grid), "--n", "2", "--draws", "2")
    assert rc == 0 and grid.stat().st_size > 0


def _texts(at) -> str:
    return "\n".join([m.value for m in at.markdown] + [c.value for c in at.caption] + [t.label for t in at.toggle])


def test_the_preview_is_drawn_once_and_a_second_opening_draws_nothing(app_dir, monkeypatch):
    import importlib

    import seglib.augment.pictures

    drawing = importlib.import_module("seglib.augment.preview")  # the module, not the function it exports
    seglib.augment.pictures.GALLERIES.clear()
    applied = []  # every draw and every check runs a transform through this one function
    real = drawing._apply
    monkeypatch.setattr(drawing, "_apply", lambda *a: applied.append(1) or real(*a))
    at = _open()
    first = [img.proto.imgs[0].url for img in at.get("image")]
    assert len(applied) >= 8 * 4 and len(first) == 8 * 5
    opened = len(applied)
    at.radio(key="augment_bal_mode").set_value("uniform").run()  # a rerun that changes no picture
    again = _open()  # a new session: a reload, another tab, or a return from another page
    assert not again.exception, again.exception
    assert len(applied) == opened  # nothing drawn or checked anew...
    assert [img.proto.imgs[0].url for img in again.get("image")] == first  # ...the same pictures shown
    again.number_input(key="augment_seed").set_value(5).run()
    assert len(applied) > opened  # another seed is another preview


def test_the_preview_says_what_training_does_and_marks_ignored_borders(app_dir):
    from seglib.augment import save_pipeline, steps_from_compose
    from seglib.review import dataset_key
    from seglib.train import form_memory

    at = _open()
    said = _texts(at)
    # The Train form has no pipeline yet: the page must not say training applies one.
    assert "whole images, then no augmentation pipeline" in said and "then the pipeline" not in said
    assert "save it, then choose it under *Data and sampling*" in said
    # The default Affine rotates: its corners are drawn as ignored pixels, not as class 0.
    assert "Magenta: **ignored** pixels (mask value 255)" in said
    steps = at.session_state["augment_steps"]
    assert next(s for s in steps if s["name"] == "Affine")["params"]["fill_mask"] == 255

    import albumentations as A
    save_pipeline("light", steps_from_compose(A.Compose([A.HorizontalFlip()])))
    key = dataset_key(app_dir / "demo" / "mars_demo.npz")
    form_memory.remember(key, {**form_memory.recall(key), "aug": "light", "input_mode": "crop", "input_size": 32})
    later = _open()  # the Train form now trains on 32-px crops with "light"
    said = _texts(later)
    assert "random 32-px crops, then the augmentation pipeline “light”" in said
    assert "not “light”" in said and "Draw after the training input (random 32-px crops)" in said
    form_memory.remember(key, {**form_memory.recall(key), "aug": "deleted-since"})
    assert "then no augmentation pipeline" in _texts(_open())  # as the Train form shows a name no longer saved
