"""Out-of-fold label scores in the app: the Review page's Label errors panel and detector rows,
the job it starts, and the findings on the Dataset detail view (AppTest)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from seglib.data import open_dataset
from seglib.quality import Finding, default_out
from seglib.quality.score import ImageMeasures, LabelScores, save_scores

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def demo(app_data_with_demo):
    d = app_data_with_demo(n=60, n_test=8)
    return open_dataset(d / "demo" / "mars_demo.npz")


def _scores(ds) -> LabelScores:
    """Scores as seglib.quality writes them, made up for three images (00003 the worst)."""
    ids = ds.labeled_ids
    region = np.zeros((20, 30), bool)
    region[5:15, 5:25] = True
    finding = Finding("swapped", 2, 3, int(region.sum()), 0.93, (10, 40, 30, 70), np.packbits(region.reshape(-1)),
                      "a region of 200 px labeled bedrock that the model calls sand (93% sure)", 16)
    measures = {i: ImageMeasures(i, k % 2, 0.5, 0, 0.0, shape=(64, 128)) for k, i in enumerate(ids)}
    score = {i: 0.05 for i in ids}
    score.update({"00003": 0.9, "00007": 0.6})
    reasons = {i: [] for i in ids}
    reasons["00003"] = [finding.words]
    reasons["00007"] = ["the mask is shifted 3.0 px (3.0 right) against the model's edges"]
    table = pd.DataFrame({"image_id": ids, "fold": [measures[i].fold for i in ids], "score": [score[i] for i in ids],
                          "quality": 0.5, "issue_pixels": 0, "reasons": [reasons[i] for i in ids],
                          "mask_version": 0, "n_regions": [int(i == "00003") for i in ids]})
    table = table.sort_values("score", ascending=False).reset_index(drop=True)
    issues = {i: ((64, 128), np.packbits(np.zeros(64 * 128, bool))) for i in ids}
    return LabelScores(2, ["fold-1", "fold-2"], table, {"00003": [finding]}, measures, issues)


def _page(page: str, **state) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=90)
    for k, v in state.items():
        at.session_state[k] = v
    at.run()
    return at.switch_page(page).run()


def test_scores_show_as_the_label_errors_detector_with_their_reasons(demo):
    save_scores(default_out(demo.source), _scores(demo))
    at = _page("pages/2_review.py", review_section="Detectors")
    assert not at.exception
    assert any("2 suspicious" in c.value for c in at.caption), [c.value for c in at.caption]
    table = at.dataframe[0].value
    rows = table[table.detector == "label_errors"]
    assert rows.image_id.tolist() == ["00003", "00007"]
    assert "labeled bedrock that the model calls sand" in rows.reason.iloc[0]
    assert rows.reason.iloc[0].startswith("fold 2 model")


def test_the_dataset_detail_view_lists_an_images_findings(demo):
    save_scores(default_out(demo.source), _scores(demo))
    at = _page("pages/1_dataset.py")
    at.button(key="dataset_open_00003").click().run()     # the grid's first page, natural order
    assert not at.exception
    texts = [e.label for e in at.expander]
    assert any("Label errors (fold 2 model" in t and "score **0.90**" in t for t in texts), texts
    assert any("calls sand" in m.value for m in at.markdown)


def test_score_every_label_queues_a_quality_job_that_can_be_cancelled(demo):
    at = _page("pages/2_review.py", review_section="Detectors")
    assert not at.exception
    at.number_input(key="label_errors_folds").set_value(2)
    at.number_input(key="label_errors_epochs").set_value(1)
    at.number_input(key="label_errors_steps").set_value(1)
    at.run()
    start = at.button(key="label_errors_start")
    assert start.label == "Score every label: train 2 models"
    start.click().run()
    assert not at.exception, at.exception
    from ui.train import manager

    job = manager().job_for_run(default_out(demo.source))
    assert job is not None and job.kind == "quality" and job.folds == 2
    manager().cancel(job.id)
    assert manager().wait(job.id, 120).status in ("cancelled", "done")


def test_the_label_page_opens_a_scored_image_with_its_fold_model_in_model_assist(app_data_with_demo, trained_runs):
    d = app_data_with_demo()            # the dataset trained_runs trained on
    ds = open_dataset(d / "demo" / "mars_demo.npz")
    scores = _scores(ds)
    scores.runs = [str(trained_runs["unet"])] * 2   # stand-ins for the two fold runs
    save_scores(default_out(ds.source), scores)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.run()
    at.query_params["image"] = "00003"
    at.switch_page("pages/6_label.py").run()
    assert not at.exception, at.exception
    assert any("Out-of-fold label scores" in i.value and "calls sand" in i.value for i in at.info)
    assert at.session_state["label_assist_on"] is True
    assert at.multiselect(key="label_assist_runs").value == [str(trained_runs["unet"])]
    assert any("fold 2 of 2" in o for o in at.multiselect(key="label_assist_runs").options)
