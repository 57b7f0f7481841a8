"""The training input policy for big images (seglib.train.inputs): random crops with rare-class
centring and ignore padding, resize, the automatic choice, and both through prepare_data, the
loaders and `seglib train --crop`."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from seglib.cli import main as cli_main
from seglib.metrics import IGNORE_INDEX
from seglib.train import ConfigError, TrainConfig
from seglib.train.data import make_loaders, prepare_data
from seglib.train.inputs import RandomCrop, ResizeLongest, input_transform, resolve_input


@pytest.fixture(scope="module")
def big_folder(tmp_path_factory):
    """8 RGB photos of 240x320 with index masks: background, a band of class 1, and a small
    patch of class 2 (under 1% of the pixels: the rare class)."""
    root = tmp_path_factory.mktemp("big") / "photos"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    rng = np.random.default_rng(0)
    for k in range(8):
        mask = np.zeros((240, 320), np.uint8)
        mask[100:160] = 1
        y, x = 20 + 10 * k, 30 + 25 * k
        mask[y : y + 8, x : x + 8] = 2
        image = rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)
        image[mask == 1] //= 2
        Image.fromarray(image).save(root / "images" / f"p{k}.png")
        Image.fromarray(mask).save(root / "masks" / f"p{k}.png")
    (root / "classes.json").write_text(json.dumps([{"id": 0, "name": "ground"}, {"id": 1, "name": "road"},
                                                   {"id": 2, "name": "car"}]))
    return root


def test_auto_crops_big_images_and_keeps_small_ones_whole():
    big = resolve_input("auto", 512, np.array([[1100, 1500, 3]] * 4 + [[2000, 2100, 3]]))
    assert big["mode"] == "crop" and big["size"] == 512 and "1500 px" in big["why"] and "auto" in big["why"]
    small = resolve_input("auto", 512, np.array([[64, 128, 1]] * 10))
    assert small["mode"] == "full" and small["size"] is None and "128 px" in small["why"]
    assert resolve_input("resize", 256, np.array([[64, 128, 1]]))["mode"] == "resize"


def test_crops_are_square_centre_a_share_on_the_rare_class_and_pad_with_ignore():
    mask = np.zeros((400, 600), np.uint8)
    mask[300:304, 500:504] = 2            # 16 pixels of 240,000
    image = np.full((400, 600, 3), 7, np.uint8)
    n = 600

    def rare_rate(share: float) -> float:
        crop = RandomCrop(64, rare_classes=[2], rare_share=share, seed=1)
        hits = sum((crop(image, mask)[1] == 2).any() for _ in range(n))
        return hits / n

    centred = rare_rate(1 / 3)
    assert 0.25 < centred < 0.45                 # about a third, against ~1% by chance
    assert rare_rate(0.0) < 0.05
    small_image, small_mask = np.ones((40, 50), np.uint8), np.zeros((40, 50), np.uint8)
    img, msk = RandomCrop(64)(small_image, small_mask)
    assert img.shape == msk.shape == (64, 64)
    assert (msk[40:] == IGNORE_INDEX).all() and (msk[:, 50:] == IGNORE_INDEX).all() and (msk[:40, :50] == 0).all()
    assert (img[40:] == 0).all()


def test_crops_repeat_for_a_seed():
    mask = np.arange(200 * 300, dtype=np.int64).reshape(200, 300) % 251
    image = mask.astype(np.uint8)
    first, second, other = RandomCrop(32, seed=3), RandomCrop(32, seed=3), RandomCrop(32, seed=4)
    a = [int(first(image, mask.astype(np.uint8))[1].sum()) for _ in range(5)]
    assert a == [int(second(image, mask.astype(np.uint8))[1].sum()) for _ in range(5)]
    assert a != [int(other(image, mask.astype(np.uint8))[1].sum()) for _ in range(5)]


def test_resize_keeps_class_ids_and_the_aspect():
    mask = np.zeros((300, 600), np.uint8)
    mask[:, 300:] = 3
    img, msk = ResizeLongest(128)(np.zeros((300, 600, 3), np.uint8), mask)
    assert msk.shape == (64, 128) and img.shape == (64, 128, 3)
    assert set(np.unique(msk)) == {0, 3}
    assert input_transform({"mode": "full", "size": None}) is None


def test_prepare_data_records_the_policy_and_the_loader_serves_crops(big_folder):
    cfg = TrainConfig(data=str(big_folder), input_mode="auto", input_size=64, batch_size=4, seed=0)
    data = prepare_data(cfg, log=lambda *_: None)
    plan = cfg.resolved["input"]
    assert plan["mode"] == "crop" and plan["size"] == 64 and plan["rare_classes"] == [2]
    assert "auto" in plan["why"]
    train_loader, _, _ = make_loaders(data, cfg, None, __import__("torch").device("cpu"), drop_last=True)
    images, masks = next(iter(train_loader))
    assert images.shape[-2:] == (64, 64) and masks.shape[-2:] == (64, 64)


def test_bad_crop_sizes_are_refused():
    with pytest.raises(ConfigError, match="multiple of 32"):
        TrainConfig(data="x", input_mode="crop", input_size=100).validate()
    with pytest.raises(ConfigError, match="input_mode"):
        TrainConfig(data="x", input_mode="tiles").validate()


def test_cli_train_with_crop_records_it(big_folder, tmp_path, capsys):
    out = tmp_path / "run"
    code = cli_main(["train", str(big_folder), "--encoder", "mobilenet_v2", "--out", str(out), "--epochs", "1",
                     "--batch-size", "4", "--max-steps-per-epoch", "2", "--val-fraction", "0.25", "--crop", "64",
                     "--quiet", "--json"])
    assert code == 0, capsys.readouterr().err
    config = json.loads((out / "config.json").read_text())
    assert config["input_mode"] == "crop" and config["input_size"] == 64
    assert config["resolved"]["input"]["mode"] == "crop" and "asked for" in config["resolved"]["input"]["why"]
    code = cli_main(["train", str(big_folder), "--out", str(tmp_path / "bad"), "--crop", "100", "--quiet"])
    err = capsys.readouterr().err
    assert code != 0 and "multiple of 32" in err and "Traceback" not in err


def test_the_train_page_starts_a_crop_run(big_folder, tmp_path, monkeypatch):
    """The form offers the input policy, says what "automatic" picks and why, and the run it
    starts records the crop in its config."""
    from pathlib import Path

    from streamlit.testing.v1 import AppTest

    from ui.train import manager

    root = Path(__file__).resolve().parents[1]
    at = AppTest.from_file(str(root / "app.py"), default_timeout=120)
    at.session_state["dataset_path"] = str(big_folder)
    at.run()
    at.switch_page("pages/4_train.py").run()
    assert not at.exception
    at.number_input(key="train_w_input_size").set_value(64).run()
    assert any("64-px crops" in c.value and "auto" in c.value for c in at.caption)
    at.number_input(key="train_w_epochs").set_value(1).run()
    at.number_input(key="train_w_max_steps_per_epoch").set_value(2).run()
    at.number_input(key="train_w_batch_size").set_value(4).run()
    at.selectbox(key="train_w_encoder").set_value("mobilenet_v2").run()
    at.text_input(key="train_w_name").input("crop-run").run()
    at.button(key="train_start").click().run()
    assert not at.exception
    mgr = manager()
    try:
        snap = mgr.wait(mgr.snapshots()[0].id, 300)
        assert snap.status == "done", snap.error
        config = json.loads((Path(snap.run_dir) / "config.json").read_text())
        assert config["resolved"]["input"]["mode"] == "crop" and config["resolved"]["input"]["size"] == 64
    finally:
        mgr.shutdown()


def test_the_augment_preview_shows_what_training_sees(big_folder):
    """Crop first, then the pipeline: the preview draws crops of the Train form's size."""
    from pathlib import Path

    import albumentations as A
    from streamlit.testing.v1 import AppTest

    from seglib.augment import preview
    from seglib.data import open_dataset
    from seglib.review import dataset_key
    from seglib.train import form_memory

    ds = open_dataset(big_folder)
    pairs = [(ds.image(i), ds.mask(i)) for i in ds.labeled_ids[:2]]
    rows = preview(A.Compose([A.HorizontalFlip(p=1.0)]), pairs, draws=3, seed=0, prepare=RandomCrop(64, seed=0))
    assert all(img.shape[:2] == (64, 64) and m.shape == (64, 64) for row in rows for img, m in row)

    form_memory.remember(dataset_key(ds), {"input_mode": "crop", "input_size": 96})
    root = Path(__file__).resolve().parents[1]
    at = AppTest.from_file(str(root / "app.py"), default_timeout=120)
    at.session_state["dataset_path"] = str(big_folder)
    at.run()
    at.switch_page("pages/3_augment.py").run()
    assert not at.exception
    toggle = at.toggle(key="augment_as_training")
    assert toggle.value is True and "96-px crops" in toggle.label
