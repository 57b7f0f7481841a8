"""The Review page through streamlit's AppTest (plotly selections are covered in tests/test_review.py
and in the browser test; here: counts, detector table, queue decisions, undo, export)."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from seglib.data import open_dataset
from seglib.review import ReviewStore, dataset_key

ROOT = Path(__file__).resolve().parents[1]
PAGE = "pages/2_review.py"


@pytest.fixture
def app_data(app_data_with_demo):
    return app_data_with_demo(n=60, n_test=8)


@pytest.fixture
def store(app_data):
    s = ReviewStore()  # the same database the page opens
    yield s, dataset_key(open_dataset(app_data / "demo" / "mars_demo.npz"))
    s.close()


def review_page(section: str = "Map") -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=90)
    at.session_state["review_section"] = section
    at.run()
    return at.switch_page(PAGE).run()


def metrics(at) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def test_map_section_shows_counts_and_scatter(app_data, store):
    s, key = store
    s.flag(key, ["00001", "00002"], reason="by hand")
    at = review_page("Map")
    assert not at.exception
    m = metrics(at)
    assert m["Flagged"] == "2" and m["Unreviewed"] == "66" and m["Exclude"] == "0"
    assert at.get("plotly_chart"), "the map is drawn"
    assert any("Nothing selected" in i.value for i in at.info)


def test_detectors_flag_all_shown(app_data, store):
    s, key = store
    at = review_page("Detectors")
    assert not at.exception
    flag_all = [b for b in at.button if b.label.startswith("Flag all")]
    assert flag_all, [b.label for b in at.button]
    flag_all[0].click().run()
    assert not at.exception
    d = s.decisions(key)
    assert len(d) > 0 and d["detector"].notna().all() and (d["reason"] != "").all()
    assert metrics(at)["Flagged"] == str(len(d))


def test_queue_decide_and_undo(app_data, store):
    s, key = store
    s.flag(key, ["00003"], reason="looks alien", detector="shared_mask", score=0.9)
    s.flag(key, ["00004"], reason="too dark", detector="image_stats", score=0.4)
    at = review_page("Queue")
    assert not at.exception
    assert any("1 / 2" in md.value and "00003" in md.value for md in at.markdown)
    assert any("looks alien" in md.value for md in at.markdown)
    at.text_input(key="review_note_00003").input("alien, drop it")
    at.button(key="review_decide_exclude").click().run()
    assert s.states(key) == {"00003": "exclude", "00004": "flagged"}
    assert s.decisions(key).set_index("image_id").loc["00003", "note"] == "alien, drop it"
    assert any("1 / 1" in md.value and "00004" in md.value for md in at.markdown)
    assert metrics(at)["Exclude"] == "1"
    at.button(key="review_undo").click().run()
    assert s.states(key) == {"00003": "flagged", "00004": "flagged"}
    assert metrics(at)["Flagged"] == "2" and not at.exception


def test_queue_next_and_previous(app_data, store):
    s, key = store
    s.flag(key, ["00010", "00011", "00012"])
    at = review_page("Queue")
    at.button(key="review_next").click().run()
    assert any("2 / 3" in md.value for md in at.markdown)
    at.button(key="review_prev").click().run()
    assert any("1 / 3" in md.value for md in at.markdown)


def test_empty_queue_says_what_to_do(app_data):
    at = review_page("Queue")
    assert not at.exception
    assert any("queue is empty" in i.value for i in at.info)


def test_export_writes_a_clean_copy(app_data, store, tmp_path):
    s, key = store
    s.set_state(key, ["00001", "00002"], "exclude")
    at = review_page("Export")
    out = tmp_path / "clean.npz"
    at.text_input(key="review_export_path").input(str(out))
    at.button(key="review_export_clean").click().run()
    assert not at.exception
    assert out.exists() and len(open_dataset(out)) == 66
    assert any(str(out) in x.value for x in at.success)
    at.button(key="review_export_clean").click().run()   # exists now: a clear message, no crash
    assert any("already exists" in e.value for e in at.error)


def test_near_copy_threshold_with_a_live_count(app_data, tmp_path):
    # 40 pictures: rows 10-12 a slow pan (a sequence), row 33 a noisy copy of row 3 (correlation ~0.97)
    rng = np.random.default_rng(0)
    pictures = [cv2.resize(rng.uniform(0, 255, (6, 10)).astype(np.float32), (128, 64), interpolation=cv2.INTER_CUBIC)
                for _ in range(40)]
    scene = cv2.resize(rng.uniform(0, 255, (6, 10)).astype(np.float32), (160, 64), interpolation=cv2.INTER_CUBIC)
    for k in range(3):
        pictures[10 + k] = scene[:, k : k + 128]
    pictures[33] = pictures[3] + rng.normal(0, 40, pictures[3].shape)
    images = np.clip(np.stack(pictures) + rng.normal(0, 4, (40, 64, 128)), 0, 255).astype(np.uint8)
    np.savez(tmp_path / "clip.npz", images=images)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=90)
    at.session_state["review_section"] = "Detectors"
    at.session_state["dataset_path"] = str(tmp_path / "clip.npz")
    at = at.run().switch_page(PAGE).run()
    count = lambda: next(m.value for m in at.markdown if "flagged as near copies" in m.value)  # noqa: E731
    assert count() == ("**0 images** flagged as near copies in 0 groups · 3 images in 1 sequence of consecutive "
                       "frames (score 0.3: a video, not copies)")
    at.slider(key="review_near_threshold").set_value(0.95).run()
    assert not at.exception
    assert count().startswith("**2 images** flagged as near copies in 1 group · 3 images in 1 sequence")
    table = at.dataframe[0].value
    assert sorted(table[table["group"] == "n1"]["image_id"]) == ["test/00003", "test/00033"]


def _plotted_points(at) -> dict[str, tuple[float, float]]:
    """{image id: (x, y)} of the map chart (plotly may ship arrays as base64 "bdata")."""
    import base64
    import json

    def values(v):
        if isinstance(v, dict) and "bdata" in v:
            return np.frombuffer(base64.b64decode(v["bdata"]), dtype=np.dtype(v["dtype"])).tolist()
        return list(v)

    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    out = {}
    for trace in spec["data"]:
        out.update({i: (x, y) for i, x, y in zip(values(trace["customdata"]), values(trace["x"]), values(trace["y"]),
                                                  strict=True)})
    return out


def test_learned_map_places_images_by_a_runs_encoder(app_data_with_demo, trained_runs, monkeypatch):
    from seglib.predict import embedding_projection, open_member

    app_data_with_demo()
    monkeypatch.setenv("SEGLIB_CHECKPOINTS", str(trained_runs["unet"].parent))
    at = review_page("Map")
    thumbnail_points = _plotted_points(at)
    at.toggle(key="review_learned_map").set_value(True).run()
    assert not at.exception, at.exception
    runs = at.selectbox(key="review_learned_run")
    assert sorted(label.split(" · ")[0] for label in runs.options) == ["segformer", "unet"]
    runs.set_value(str(trained_runs["unet"])).run()
    assert not at.exception, at.exception
    assert any("encoder features of **unet**" in c.value for c in at.caption)
    learned = embedding_projection(open_dataset(app_data_with_demo() / "demo" / "mars_demo.npz"),
                                   open_member(trained_runs["unet"]))
    points = _plotted_points(at)
    assert len(points) == len(learned) == len(thumbnail_points)
    some = learned.index[:5]
    assert np.allclose([points[i] for i in some], learned.loc[some, ["pc1", "pc2"]].to_numpy(), atol=1e-5)
    assert not np.allclose([points[i] for i in some], [thumbnail_points[i] for i in some])


def test_learned_map_without_runs_says_how_to_get_one(app_data, tmp_path, monkeypatch):
    monkeypatch.setenv("SEGLIB_CHECKPOINTS", str(tmp_path / "no-runs"))
    at = review_page("Map")
    at.toggle(key="review_learned_map").set_value(True).run()
    assert not at.exception, at.exception
    assert any("No trained run" in c.value for c in at.caption)
    assert at.get("plotly_chart"), "the thumbnail map is still drawn"
