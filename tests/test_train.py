"""The training engine end to end on tiny data: run folder, history, resume, cancel, failures,
atomic checkpoints, review exclusions, the stratified split, the sampler and the CLI contract."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from seglib.data.demo import write_demo
from seglib.train import (
    Callback,
    CheckpointError,
    ConfigError,
    RunFolder,
    TrainConfig,
    TrainingError,
    load_model,
    train,
)
from seglib.train.data import EpochSampler, pad_collate
from seglib.train.split import stratified_split


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """52 labeled demo images 64x128 (5 classes, big rock rare)."""
    path = tmp_path_factory.mktemp("tiny") / "tiny.npz"
    write_demo(path, n=52, seed=1, n_test=4)
    return path


def quick(data, **over) -> TrainConfig:
    base = dict(data=str(data), encoder="mobilenet_v2", epochs=2, batch_size=8, max_steps_per_epoch=2,
                patience=0, val_fraction=0.25)
    return TrainConfig(**{**base, **over})


def test_run_folder_holds_config_history_log_and_weights(tiny, tmp_path):
    steps, epochs = [], []

    class Watch(Callback):
        def on_step_end(self, step):
            steps.append(step)

        def on_epoch_end(self, record):
            epochs.append(record)

    result = train(quick(tiny), run_dir=tmp_path / "run", callbacks=[Watch()])
    run = RunFolder(tmp_path / "run")
    for name in ("config.json", "status.json", "history.jsonl", "log.txt", "best.safetensors", "last.safetensors",
                 "last.state.safetensors", "last.state.json"):
        assert run.file(name).is_file(), name
    assert not list(run.path.glob("*.tmp"))
    cfg = run.read_config()
    assert set(cfg["train_ids"]).isdisjoint(cfg["val_ids"]) and len(cfg["train_ids"]) + len(cfg["val_ids"]) == 52
    assert cfg["resolved"]["model"] == {"arch": "Unet", "encoder": "mobilenet_v2", "in_channels": 1, "num_classes": 5}
    assert [c["name"] for c in cfg["resolved"]["class_map"]][-1] == "big rock"
    assert cfg["resolved"]["sampler_classes"] == [4]  # the rarest class is oversampled by default
    history = run.read_history()
    assert [r["epoch"] for r in history] == [1, 2] and len(epochs) == 2
    assert set(history[0]["per_class_iou"]) == {"background", "soil", "bedrock", "sand", "big rock"}
    assert np.array(history[0]["confusion"]).sum() == len(cfg["val_ids"]) * 64 * 128  # every validation pixel once
    assert steps[-1]["step"] == 2 and steps[-1]["global_step"] == 4
    assert result["status"] == "done" and run.read_status()["status"] == "done"
    assert result["val"]["miou"] == max(r["miou"] for r in history)
    model, loaded = load_model(run.path)
    assert not model.training and loaded.arch == "Unet"
    with torch.no_grad():
        assert model(torch.rand(1, 1, 64, 128)).shape == (1, 5, 64, 128)


def test_resume_continues_the_history(tiny, tmp_path):
    out = tmp_path / "run"
    train(quick(tiny, epochs=1), run_dir=out)
    first = RunFolder(out).read_config()
    result = train(quick(tiny, epochs=3), run_dir=out, resume=True)
    history = RunFolder(out).read_history()
    assert [r["epoch"] for r in history] == [1, 2, 3] and result["epochs"] == 3
    assert RunFolder(out).read_config()["val_ids"] == first["val_ids"]  # same split after resuming
    assert "resumed after epoch 1" in RunFolder(out).read_log()


def test_same_seed_same_run(tiny, tmp_path):
    a = train(quick(tiny, epochs=1), run_dir=tmp_path / "a")
    b = train(quick(tiny, epochs=1), run_dir=tmp_path / "b")
    assert a["val"] == b["val"]


def test_cancel_stops_within_a_step_and_keeps_last_weights(tiny, tmp_path):
    class CancelAfterOne(Callback):
        calls = 0

        def should_stop(self):
            self.calls += 1
            return self.calls >= 1

    cb = CancelAfterOne()
    result = train(quick(tiny, epochs=5, max_steps_per_epoch=0), run_dir=tmp_path / "run", callbacks=[cb])
    assert result["status"] == "cancelled" and cb.calls == 1
    run = RunFolder(tmp_path / "run")
    assert run.read_status()["status"] == "cancelled"
    model, _ = load_model(run.path, which="last")  # usable


def test_nan_loss_fails_the_run_with_its_message(tiny, tmp_path, monkeypatch):
    import seglib.losses

    real = seglib.losses.build_loss

    def nan_loss(*a, **k):
        loss = real(*a, **k)
        loss.forward = lambda logits, target: logits.sum() * float("nan")
        return loss

    monkeypatch.setattr(seglib.losses, "build_loss", nan_loss)
    with pytest.raises(TrainingError, match="loss became nan"):
        train(quick(tiny), run_dir=tmp_path / "run")
    status = RunFolder(tmp_path / "run").read_status()
    assert status["status"] == "failed" and "loss became nan" in status["error"]


def test_bad_configuration_is_refused_before_training(tiny, tmp_path):
    with pytest.raises(ConfigError, match="optimizer"):
        train(quick(tiny, optimizer="rmsprop"), run_dir=tmp_path / "a")
    from seglib.models import ModelError
    with pytest.raises(ModelError, match="Mix Transformer"):
        train(quick(tiny, arch="UnetPlusPlus", encoder="mit_b0"), run_dir=tmp_path / "b")
    assert RunFolder(tmp_path / "b").read_status()["status"] == "failed"


def test_batch_norm_models_drop_a_last_batch_of_one(tiny, tmp_path):
    # 36 training images, batch 7: the last batch would hold one image and crash DeepLabV3+.
    from seglib.data import open_dataset

    ids = open_dataset(tiny).labeled_ids
    result = train(quick(tiny, arch="DeepLabV3Plus", encoder="resnet18", batch_size=7, max_steps_per_epoch=0,
                         epochs=1, train_ids=ids[:36], val_ids=ids[36:44]), run_dir=tmp_path / "run")
    assert result["status"] == "done"


def test_review_exclusions_are_left_out_and_recorded(tiny, tmp_path):
    from seglib.data import open_dataset
    from seglib.review import ReviewStore, dataset_key

    ds = open_dataset(tiny)
    drop = ds.labeled_ids[:3]
    store = ReviewStore()
    store.set_state(dataset_key(ds), drop, "exclude")
    store.close()
    train(quick(tiny, epochs=1), run_dir=tmp_path / "run")
    cfg = RunFolder(tmp_path / "run").read_config()
    assert cfg["resolved"]["excluded_ids"] == sorted(drop)
    assert not set(drop) & set(cfg["train_ids"] + cfg["val_ids"])
    train(quick(tiny, epochs=1, leave_out_excluded=False), run_dir=tmp_path / "all")
    assert set(drop) <= set(RunFolder(tmp_path / "all").read_config()["train_ids"]
                            + RunFolder(tmp_path / "all").read_config()["val_ids"])


def test_interrupted_weight_write_keeps_the_last_good_file(tiny, tmp_path, monkeypatch):
    import safetensors.torch

    out = tmp_path / "run"
    train(quick(tiny, epochs=1), run_dir=out)
    good = (out / "last.safetensors").read_bytes()

    def half_write(tensors, filename, metadata=None):
        with open(filename, "wb") as f:
            f.write(b"\x00" * 100)
        raise KeyboardInterrupt  # the process dies mid-write

    monkeypatch.setattr(safetensors.torch, "save_file", half_write)
    with pytest.raises(KeyboardInterrupt):
        train(quick(tiny, epochs=2), run_dir=out, resume=True)
    assert (out / "last.safetensors").read_bytes() == good
    assert not list(out.glob(".*.tmp"))
    load_model(out, which="last")


def test_bad_checkpoints_give_one_line(tiny, tmp_path):
    out = tmp_path / "run"
    train(quick(tiny, epochs=1), run_dir=out)
    best = out / "best.safetensors"
    best.write_bytes(best.read_bytes()[:1000])  # truncated
    with pytest.raises(CheckpointError, match="truncated or not a safetensors file") as e:
        load_model(out)
    assert "\n" not in str(e.value) and "best.safetensors" in str(e.value)
    cfg = json.loads((out / "config.json").read_text())
    cfg["resolved"]["model"]["num_classes"] = 7  # weights for 5 classes, config says 7
    (out / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="do not fit .* 7 classes"):
        load_model(out, which="last")
    with pytest.raises(CheckpointError, match="no such run folder"):
        load_model(tmp_path / "nothing")


def test_stratified_split_puts_a_rare_class_in_both_parts():
    ids = [f"{i:03d}" for i in range(100)]
    presence = np.zeros((100, 3), bool)
    presence[:, 0] = True
    presence[::10, 2] = True  # the rare class: 10 images
    train_ids, val_ids = stratified_split(ids, presence, 0.1, seed=0)
    rare = {ids[i] for i in range(0, 100, 10)}
    assert rare & set(train_ids) and rare & set(val_ids)
    assert len(val_ids) == 10 and not set(train_ids) & set(val_ids)
    assert stratified_split(ids, presence, 0.1, seed=0) == (train_ids, val_ids)
    assert stratified_split(ids, presence, 0.1, seed=1) != (train_ids, val_ids)


def test_epoch_sampler_is_seeded_weighted_and_sharded():
    w = np.ones(10)
    w[0] = 50.0
    s = EpochSampler(w, seed=3)
    s.set_epoch(1)
    a = list(s)
    s.set_epoch(1)
    assert list(s) == a
    s.set_epoch(2)
    assert list(s) != a
    assert a.count(0) > 3  # the heavy image is drawn far more than 1 in 10
    ranks = [EpochSampler(w, seed=3, rank=r, world=3) for r in range(3)]
    for r in ranks:
        r.set_epoch(1)
    parts = [list(r) for r in ranks]
    assert all(len(p) == 4 for p in parts)  # 10 padded to 12, 4 per rank
    uniform = EpochSampler(np.ones(10), seed=0)
    assert sorted(uniform) == list(range(10))  # a permutation: each image once


def test_pad_collate_pads_masks_with_ignore_and_repeats_grey():
    a = (torch.rand(1, 4, 6), torch.zeros(4, 6, dtype=torch.long))
    b = (torch.rand(3, 5, 5), torch.ones(5, 5, dtype=torch.long))
    images, masks = pad_collate([a, b], channels=3)
    assert images.shape == (2, 3, 5, 6) and masks.shape == (2, 5, 6)
    assert (masks[0, 4] == 255).all() and (masks[1, :, 5] == 255).all()
    assert torch.equal(images[0, 1, :4], a[0][0])


def test_progress_bar_opens_each_epoch_when_it_starts(capsys):
    """The CLI's bar counts each epoch's time from its start, not from the engine's first report
    (which comes after several steps): a bar exists before any step is reported."""
    from seglib.train import ProgressBar

    bar = ProgressBar()
    bar.on_train_start({"steps_per_epoch": 7, "epochs": 2, "start_epoch": 1})
    assert bar.bar is not None and bar.bar.total == 7 and bar.bar.n == 0
    bar.on_step_end({"epoch": 1, "epochs": 2, "step": 7, "steps": 7, "loss": 0.5, "lr": 1e-3})
    assert bar.bar.n == 7
    bar.on_epoch_end({"epoch": 1, "epochs": 2, "time": 1.0, "train_loss": 0.5, "val_loss": 0.6})
    assert bar.bar is not None and bar.bar.n == 0 and "epoch 2/2" in bar.bar.desc
    bar.on_epoch_end({"epoch": 2, "epochs": 2, "time": 1.0, "train_loss": 0.4})
    assert bar.bar is None
    bar.on_train_end({})
    assert "epoch 1/2  train_loss 0.5000  val_loss 0.6000" in capsys.readouterr().err
