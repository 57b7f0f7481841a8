"""Label next's strategies (seglib.edit.label_next.STRATEGIES) and `seglib label-next`: each
orders the pool as it says, random and k-center need no run, the CLI lists and prints JSON."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from seglib.edit.label_next import STRATEGIES, kcenter_order, rank

IDS = list("abcde")
ENTROPY = np.array([0.1, 0.2, 0.3, 0.4, 0.5])
DISAGREE = np.array([0.9, 0.0, 0.0, 0.0, 0.0])


def test_each_strategy_orders_by_what_it_names():
    assert rank(IDS, ENTROPY, DISAGREE, strategy="entropy").image_id.tolist() == list("edcba")
    assert rank(IDS, ENTROPY, DISAGREE, strategy="disagreement").image_id.tolist()[0] == "a"
    assert rank(IDS, ENTROPY, DISAGREE, strategy="uncertainty").image_id.tolist()[0] == "a"   # (0.1+0.9)/2
    one = rank(IDS, ENTROPY, DISAGREE, strategy="random", seed=1).image_id.tolist()
    assert sorted(one) == IDS and one == rank(IDS, ENTROPY, DISAGREE, strategy="random", seed=1).image_id.tolist()
    assert one != rank(IDS, ENTROPY, DISAGREE, strategy="random", seed=2).image_id.tolist()
    # near copies: "score" pushes e's twin d behind, "uncertainty" does not
    thumbs = np.random.default_rng(0).normal(size=(5, 16))
    thumbs[3] = thumbs[4]
    thumbs = (thumbs - thumbs.mean(1, keepdims=True)) / thumbs.std(1, keepdims=True)
    e = np.array([0.1, 0.2, 0.3, 0.45, 0.5])
    assert rank(IDS, e, np.zeros(5), thumbs, strategy="score").image_id.tolist()[-1] == "d"
    assert rank(IDS, e, np.zeros(5), thumbs, strategy="uncertainty").image_id.tolist()[1] == "d"
    with pytest.raises(ValueError):
        from seglib.edit.label_next import label_next
        label_next(None, [], [], strategy="best")


def test_kcenter_covers_the_pool_before_it_repeats_a_scene():
    t = np.array([[0, 0], [0.1, 0], [5, 5], [5.1, 5], [10, 0]], float)
    assert kcenter_order(t, start=0)[:3] == [0, 4, 2], "one of each cluster first"
    from_labeled = kcenter_order(t, labeled=np.array([[5.0, 5.0]]))
    assert set(from_labeled[:2]) == {0, 4} and from_labeled[-1] == 2, "the labeled scene's twin comes last"


def _cli(*args):
    env = dict(os.environ, HF_HUB_OFFLINE="1", NO_ALBUMENTATIONS_UPDATE="1")
    return subprocess.run([sys.executable, "-m", "seglib", "label-next", *args], capture_output=True, text=True,
                          env=env, timeout=300)


def test_cli_without_runs_for_random_and_kcenter_and_with_runs_for_score(demo_npz, trained_runs, tmp_path,
                                                                          monkeypatch):
    monkeypatch.setenv("SEGLIB_DATA_DIR", str(tmp_path / "data"))
    doc = json.loads(_cli(str(demo_npz), "--strategy", "kcenter", "--n", "5", "--json").stdout)
    assert doc["strategy"] == "kcenter" and len(doc["images"]) == 5 and doc["candidates"] >= 5
    plain = _cli(str(demo_npz), "--strategy", "random", "--n", "3")
    assert plain.returncode == 0 and len(plain.stdout.strip().splitlines()) == 3
    refused = _cli(str(demo_npz))
    assert refused.returncode == 1 and "--checkpoint" in refused.stderr and "Traceback" not in refused.stderr
    ranked = _cli(str(demo_npz), "--checkpoint", str(trained_runs["unet"]), "--checkpoint",
                  str(trained_runs["segformer"]), "--n", "4", "--json")
    assert ranked.returncode == 0, ranked.stderr
    rows = json.loads(ranked.stdout)["images"]
    assert len(rows) == 4 and rows[0]["score"] >= rows[-1]["score"] and "entropy" in rows[0]["why"]


def test_every_strategy_is_described():
    assert set(STRATEGIES) == {"score", "uncertainty", "entropy", "disagreement", "kcenter", "random"}


def label_next_page(tmp_path, monkeypatch, strategy: str, **session):
    """The Label page's Label next section run in AppTest, ordered by ``strategy``, no trained run."""
    from pathlib import Path

    from streamlit.testing.v1 import AppTest

    from ui import editor as ed
    from ui import label_next

    monkeypatch.setenv("SEGLIB_CHECKPOINTS", str(tmp_path / "no-runs"))
    root = Path(__file__).resolve().parents[1]
    at = AppTest.from_file(str(root / "app.py"), default_timeout=120)
    for key, value in session.items():
        at.session_state[key] = value
    at.run()
    at.switch_page("pages/6_label.py").run()
    at.session_state[ed.SECTION] = "Label next"
    at.session_state[label_next.STRATEGY] = strategy
    return at.run()


def test_label_page_orders_by_kcenter_without_any_trained_run(app_data_with_demo, tmp_path, monkeypatch):
    from ui import editor as ed
    from ui import label_next

    app_data_with_demo(n=60, n_test=6)
    at = label_next_page(tmp_path, monkeypatch, "kcenter")
    assert not at.exception
    assert any("needs none" in i.value for i in at.info)
    assert len(at.session_state[ed.RANKED]) == 6
    assert any("least like the labeled images" in m.value for m in at.markdown)
    first = at.session_state[ed.RANKED][0]
    [b for b in at.button if b.key == f"{label_next.P}open_{first}"][0].click().run()
    assert not at.exception and at.session_state[ed.IMAGE] == first


def test_label_page_adds_a_batch_folder_and_ranks_it(labeled_and_batch, tmp_path, monkeypatch):
    """New images in another folder (tests/test_label_next_batch.py has the library's side)."""
    from ui import editor as ed
    from ui import label_next, state

    root, batch = labeled_and_batch
    monkeypatch.setenv("SEGLIB_DATASET_ROOTS", str(tmp_path))
    at = label_next_page(tmp_path, monkeypatch, "kcenter", **{state.DATASET: str(root)})
    assert not at.exception
    assert any("Every image is labeled" in s.value for s in at.success)
    add = [b.proto.label for b in at.button].index("Add to the ranking")
    at.text_input(key=label_next.BATCH).input(str(tmp_path / "nowhere"))
    at.button[add].click().run()
    assert any("not a folder of unlabeled images" in e.value for e in at.error)
    at.text_input(key=label_next.BATCH).input(str(batch))
    at.button[add].click().run()
    assert not at.exception
    assert at.session_state[state.UNLABELED] == str(batch)
    assert at.query_params["unlabeled"] in (str(batch), [str(batch)])
    assert sorted(at.session_state[ed.RANKED]) == ["batch-7/day2/n3", "batch-7/n1", "batch-7/n2"]
    assert any("3 images of" in c.value for c in at.caption)


def test_ranking_again_reuses_cached_predictions(demo_npz, trained_runs, monkeypatch):
    """A run added to the ranking is the only one predicted; a save that shrinks the pool predicts nothing."""
    from seglib.data import open_dataset
    from seglib.edit import label_next as ln

    ds = open_dataset(demo_npz)
    pool = ln.candidates(ds)[:12]
    ln.label_next(ds, [str(trained_runs["unet"])], pool)
    passes = []
    real = ln.predict

    def predict(*args, **kwargs):
        passes.append(real(*args, **kwargs))
        return passes[-1]

    monkeypatch.setattr(ln, "predict", predict)
    both = [str(trained_runs["unet"]), str(trained_runs["segformer"])]
    first = ln.label_next(ds, both, pool)
    assert passes[-1].cached == ["unet"], "the U-Net's predictions came from the cache"
    again = ln.label_next(ds, both, pool[1:])
    assert sorted(passes[-1].cached) == ["segformer", "unet"], "a smaller pool is read from the cache"
    assert list(again.image_id) == [i for i in first.image_id if i != pool[0]]
    assert (first.disagreement > 0).any() and (first.disagreement <= 0.5).all()   # two runs: half the pixels differ
