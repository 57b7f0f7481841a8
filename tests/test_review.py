"""The review store: states, decisions, undo, restarts, concurrent writers, selection helpers."""
from __future__ import annotations

import multiprocessing as mp
import threading

import numpy as np
import pandas as pd
import pytest

from seglib.review import (
    STATES,
    ReviewStore,
    dataset_key,
    flag_detections,
    ids_from_selection,
    queue_index,
    review_queue,
    rows_in_groups,
    tables,
)
from seglib.review.store import join_reasons, split_reasons

KEY = "/data/mars.npz"


@pytest.fixture
def url(tmp_path):
    return f"sqlite:///{tmp_path / 'review.db'}"


@pytest.fixture
def store(url):
    s = ReviewStore(url)
    yield s
    s.close()


def test_flag_and_decide(store):
    assert store.flag(KEY, ["00001", "00002"], reason="alien mask", detector="mask_hash", score=0.9) == 2
    store.set_state(KEY, ["00001"], "exclude", note="not Mars")
    assert store.states(KEY) == {"00002": "flagged", "00001": "exclude"}
    assert store.counts(KEY) == {"flagged": 1, "keep": 0, "exclude": 1, "relabel": 0}
    d = store.decisions(KEY).set_index("image_id")
    assert list(store.decisions(KEY).columns) == ["image_id", "state", "reason", "note", "detector", "score", "who",
                                                  "at"]
    # The decision keeps why the image was flagged.
    assert d.loc["00001", "reason"] == "alien mask" and d.loc["00001", "note"] == "not Mars"
    assert d.loc["00001", "detector"] == "mask_hash" and d.loc["00001", "score"] == pytest.approx(0.9)
    assert store.states("/other/dataset") == {}


def test_per_image_reasons_and_several_detectors(store):
    store.flag(KEY, ["a", "b"], reason=["dark", "bright"], detector=["quality", "quality"], score=[0.2, 0.7])
    store.flag(KEY, ["a"], reason="duplicate of b", detector="phash", score=0.95)
    d = store.decisions(KEY).set_index("image_id")
    assert d.loc["a", "reason"] == "dark\nduplicate of b" and d.loc["a", "detector"] == "quality; phash"
    assert d.loc["a", "score"] == pytest.approx(0.95) and d.loc["b", "reason"] == "bright"
    with pytest.raises(ValueError, match="one value per image"):
        store.flag(KEY, ["a", "b"], reason=["only one"])


def test_cleared_images_are_absent_and_start_fresh(store):
    store.flag(KEY, ["x"], reason="old reason")
    store.set_state(KEY, ["x"], "cleared")
    assert store.states(KEY) == {} and store.decisions(KEY).empty
    store.flag(KEY, ["x"], reason="new reason")
    assert store.decisions(KEY)["reason"].tolist() == ["new reason"]


def test_unknown_state_is_refused_and_writes_nothing(store):
    with pytest.raises(ValueError, match="unknown review state"):
        store.set_state(KEY, ["x"], "maybe")
    with pytest.raises(ValueError, match="unknown review state"):
        store.set_state(KEY, ["x"], "undo")  # the undo event kind is not a state
    assert store.history(KEY).empty
    for state in STATES:  # every listed state is accepted
        store.set_state(KEY, ["x"], state)
    assert store.history(KEY)["state"].tolist() == list(STATES)


def test_undo_walks_back_and_keeps_history(store):
    store.flag(KEY, ["a"])
    store.set_state(KEY, ["a"], "keep")
    store.set_state(KEY, ["b"], "relabel")
    assert store.undo(KEY) and store.states(KEY) == {"a": "keep"}          # b's relabel reverted
    assert store.undo(KEY) and store.states(KEY) == {"a": "flagged"}
    assert store.undo(KEY) and store.states(KEY) == {}
    assert store.undo(KEY) is False
    h = store.history(KEY)
    assert (h["state"] == "undo").sum() == 3 and len(h) == 6               # append-only


def test_undo_one_image_only(store):
    store.set_state(KEY, ["a"], "exclude")
    store.set_state(KEY, ["b"], "exclude")
    assert store.undo(KEY, "a")
    assert store.states(KEY) == {"b": "exclude"}
    assert store.last_event(KEY)["image_id"] == "b"


def test_restart_finds_everything(url):
    s = ReviewStore(url)
    s.flag(KEY, ["a", "b"], reason="r", who="ana")
    s.set_state(KEY, ["a"], "exclude")
    s.close()
    again = ReviewStore(url)
    assert again.states(KEY) == {"a": "exclude", "b": "flagged"}
    assert again.decisions(KEY).set_index("image_id").loc["b", "who"] == "ana"


def test_who_comes_from_the_environment(store, monkeypatch):
    monkeypatch.setenv("SEGLIB_USER", "reviewer-7")
    store.flag(KEY, ["a"])
    assert store.history(KEY)["who"].tolist() == ["reviewer-7"]


def test_default_url_follows_env(tmp_path, monkeypatch):
    monkeypatch.setenv("SEGLIB_REVIEW_DB", str(tmp_path / "team.db"))
    s = ReviewStore()
    s.flag(KEY, ["a"])
    assert (tmp_path / "team.db").exists()
    monkeypatch.delenv("SEGLIB_REVIEW_DB")
    assert ReviewStore().url.endswith("seglib-data/review.db")


def test_dataset_key_is_the_resolved_source(tmp_path, demo_npz):
    from seglib.data import open_dataset
    assert dataset_key(open_dataset(demo_npz)) == str(demo_npz.resolve())
    assert dataset_key(tmp_path / "x" / ".." / "y") == str((tmp_path / "y").resolve())


def test_concurrent_threads_lose_nothing(store):
    def work(t):
        for k in range(25):
            store.flag(KEY, [f"t{t}-{k}"], reason=f"thread {t}")
    threads = [threading.Thread(target=work, args=(t,)) for t in range(6)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert len(store.states(KEY)) == 150


def _writer(url: str, tag: str, n: int) -> None:
    s = ReviewStore(url)
    for k in range(n):
        s.flag(KEY, [f"{tag}-{k}"], reason=tag)
        s.set_state(KEY, [f"{tag}-{k}"], "keep")
    s.close()


def test_concurrent_processes_lose_nothing(store, url):
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(url, f"p{i}", 30)) for i in range(3)]
    for p in procs:
        p.start()
    for k in range(30):  # this process writes at the same time
        store.flag(KEY, [f"main-{k}"])
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    states = store.states(KEY)
    assert len(states) == 120
    assert sum(v == "keep" for v in states.values()) == 90
    assert len(store.history(KEY)) == 210


# --- plain selection helpers -------------------------------------------------------------------
def test_ids_from_plotly_selection():
    sel = {"points": [{"customdata": "00012", "x": 1}, {"customdata": ["00013", 5]}, {"customdata": "00012"},
                      {"x": 3}, {"customdata": "gone"}], "point_indices": [1, 2]}
    assert ids_from_selection(sel) == ["00012", "00013", "gone"]
    assert ids_from_selection(sel, valid=["00012", "00013"]) == ["00012", "00013"]
    assert ids_from_selection(None) == [] and ids_from_selection({"points": []}) == []


def test_selection_then_flag_then_state(store):
    ids = ids_from_selection({"points": [{"customdata": "a"}, {"customdata": "b"}]})
    store.flag(KEY, ids, reason="picked on the map")
    assert store.states(KEY) == {"a": "flagged", "b": "flagged"}


def _detections():
    return pd.DataFrame({"image_id": ["1", "2", "3", "4", "1"],
                         "detector": ["dup", "dup", "dup", "dark", "dark"],
                         "reason": ["same as 2", "same as 1", "same as 9", "too dark", "too dark"],
                         "score": [0.9, 0.9, 0.8, 0.6, 0.5], "group": ["g1", "g1", "g2", None, None]})


def test_rows_in_groups_expands_to_the_whole_cluster():
    det = _detections()
    picked = rows_in_groups(det, det.iloc[[0]])
    assert sorted(picked["image_id"]) == ["1", "2"]
    assert len(rows_in_groups(det, det.iloc[[3]])) == 1  # no group: the row alone
    assert rows_in_groups(det, det.iloc[0:0]).empty


def test_flag_detections_records_each_reason(store):
    n = flag_detections(store, KEY, _detections())
    assert n == 4
    d = store.decisions(KEY).set_index("image_id")
    assert d.loc["1", "reason"] == "same as 2\ntoo dark" and d.loc["1", "score"] == pytest.approx(0.9)
    assert d.loc["4", "detector"] == "dark"


def test_a_reason_with_a_semicolon_stays_one_reason(store):
    from seglib.outliers.label_quality import label_quality_from_predictions

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, (2, 8, 8))
    probs = rng.dirichlet(np.ones(3), (2, 8, 8)).transpose(0, 3, 1, 2)
    quality = label_quality_from_predictions(labels, probs, ["a", "b"], threshold=0.0)  # flags both
    lq_reason = quality.set_index("image_id").loc["a", "reason"]
    assert "(cleanlab softmin; dataset median" in lq_reason  # "; " inside one reason
    dark = pd.DataFrame({"image_id": ["a"], "detector": ["dark"], "reason": ["too dark; mean 12"], "score": [0.3]})
    flag_detections(store, KEY, pd.concat([quality, dark]))
    row = review_queue(store, KEY).set_index("image_id").loc["a"]
    assert split_reasons(row["reason"]) == [lq_reason, "too dark; mean 12"]
    assert split_reasons(review_queue(store, KEY).set_index("image_id").loc["b", "reason"]) == [
        quality.set_index("image_id").loc["b", "reason"]]


def test_join_and_split_reasons():
    reasons = ["label quality 0.10 (cleanlab softmin; dataset median 0.40): odd", "two\nlines", "", "odd", "odd"]
    joined = join_reasons(reasons)
    assert split_reasons(joined) == ["label quality 0.10 (cleanlab softmin; dataset median 0.40): odd",
                                     "two lines", "odd"]  # a reason's own newline cannot split it
    assert split_reasons("one; reason") == ["one; reason"] and split_reasons(None) == split_reasons("") == []


def test_queue_order_and_position(store):
    store.flag(KEY, ["c"], reason="by hand")
    store.flag(KEY, ["a", "b"], detector="x", score=[0.3, 0.8])
    q = review_queue(store, KEY, ["flagged"], order=["a", "b", "c"])
    assert q["image_id"].tolist() == ["b", "a", "c"]  # worst score first, hand flags last
    store.set_state(KEY, ["b"], "keep")
    q2 = review_queue(store, KEY, ["flagged"], order=["a", "b", "c"])["image_id"].tolist()
    assert q2 == ["a", "c"]
    assert queue_index(q2, "b", 0) == 0        # b left: the next image moved up
    assert queue_index(q2, "c", 0) == 1
    assert queue_index(q2, None, 7) == 1 and queue_index([], "a", 3) == 0
    assert review_queue(store, KEY, ["keep", "flagged"])["image_id"].tolist()[0] == "b"


# --- the Review page's tables --------------------------------------------------------------------
def test_map_table_joins_projection_state_and_strongest_detector():
    per_image = pd.DataFrame({"labeled": [True, True, False], "mean": [1.0, 2.0, 3.0]},
                             index=pd.Index(["1", "2", "5"], name="image_id"))
    proj = pd.DataFrame({"pc1": [0.1, 0.2, 0.3], "pc2": [1.0, 2.0, 3.0]}, index=per_image.index)
    table = tables.map_table(per_image, proj, {"2": "exclude"}, _detections())
    assert table.index.tolist() == ["1", "2", "5"] and table["pc2"].tolist() == [1.0, 2.0, 3.0]
    assert table["review state"].tolist() == ["unreviewed", "exclude", "unreviewed"]
    assert table["detector"].tolist() == ["dup", "dup", "none"]  # "1": dup 0.9 beats dark 0.5
    assert tables.map_axes(table) == ["pc1", "pc2", "mean"]


def test_detector_rows_filter_by_detector_and_score_with_states():
    rows = tables.detector_rows(_detections(), {"4": "keep"}, detectors=["dark"], min_score=0.55)
    assert rows["image_id"].tolist() == ["4"] and rows.columns[1] == "state" and rows["state"].tolist() == ["keep"]
    every = tables.detector_rows(_detections(), {})
    assert len(every) == 5 and set(every["state"]) == {"unreviewed"}
    assert tables.images_per_detector(every) == {"dark": 2, "dup": 3}
    assert tables.detector_rows(_detections(), {}, min_score=0.95).empty
