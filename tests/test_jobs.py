"""The job manager on tiny data: cancel (running and queued), failures reported while the queue
goes on, snapshots, interrupted runs after a restart and their resume, deleting runs, the run
table rows, and that the manager never imports streamlit."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

import pytest
import torch

from seglib.data.demo import write_demo
from seglib.train import Callback, ConfigError, RunFolder, TrainConfig, load_model
from seglib.train import summary as run_summary
from seglib.train.jobs import JobError, JobManager
from seglib.train.liveness import process_alive

TIMEOUT = 180  # seconds; a tiny job takes a few on an idle 2-core CPU
# One torch thread per job: on a CPU shared with other test processes, two OpenMP threads per
# training wait on each other at every barrier and tiny jobs take ten times longer.
THREADS = 1


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """52 labeled demo images 64x128."""
    path = tmp_path_factory.mktemp("tiny-jobs") / "tiny.npz"
    write_demo(path, n=52, seed=2, n_test=0)
    return path


def quick(data, **over) -> TrainConfig:
    base = dict(data=str(data), encoder="mobilenet_v2", epochs=1, batch_size=8, max_steps_per_epoch=2, patience=0,
                val_fraction=0.25)
    return TrainConfig(**{**base, **over})


@pytest.fixture
def jobs(tmp_path):
    mgr = JobManager(tmp_path / "runs", cpu_threads=THREADS)
    yield mgr
    mgr.shutdown()


class CancelAtStep(Callback):
    """Cancels its job from inside the training thread after ``n`` steps."""

    def __init__(self, manager: JobManager, n: int):
        self.manager, self.n, self.polls, self.job_id = manager, n, 0, None
        self.known = threading.Event()

    def watch(self, job_id: str) -> None:
        self.job_id = job_id
        self.known.set()

    def should_stop(self):
        self.polls += 1
        if self.polls == self.n:
            self.known.wait(10)
            self.manager.cancel(self.job_id)
        return False


def test_cancel_stops_a_running_job_within_one_step(jobs, tiny):
    watcher = CancelAtStep(jobs, 3)
    job_id = jobs.submit(quick(tiny, epochs=50, max_steps_per_epoch=0), callbacks=[watcher])
    watcher.watch(job_id)
    queued = jobs.submit(quick(tiny))
    assert jobs.snapshot(queued).status == "queued" and jobs.snapshot(queued).queue_position == 1
    assert jobs.cancel(queued)  # a queued job is cancelled at once and never creates its folder
    assert jobs.snapshot(queued).status == "cancelled"
    snap = jobs.wait(job_id, TIMEOUT)
    assert snap.status == "cancelled" and snap.error is None
    run = RunFolder(snap.run_dir)
    assert "after 3 steps" in run.read_log()  # stopped right after the step that asked
    assert run.read_status()["status"] == "cancelled"
    load_model(run.path, which="last")  # the last weights are usable
    assert not RunFolder(jobs.snapshot(queued).run_dir).path.exists()
    assert not jobs.cancel(job_id)  # already over


def test_a_failing_job_reports_its_error_and_the_queue_goes_on(jobs, tiny, tmp_path, monkeypatch):
    import seglib.losses

    real = seglib.losses.build_loss

    def nan_on_second_build(*a, **k):  # the second job's loss turns NaN
        loss = real(*a, **k)
        nan_on_second_build.calls += 1
        if nan_on_second_build.calls == 2:
            loss.forward = lambda logits, target: logits.sum() * float("nan")
        return loss

    nan_on_second_build.calls = 0
    monkeypatch.setattr(seglib.losses, "build_loss", nan_on_second_build)
    missing = jobs.submit(quick(tmp_path / "nowhere.npz"), name="missing")
    ok_first = jobs.submit(quick(tiny), name="ok-first")
    nan = jobs.submit(quick(tiny), name="nan")
    ok = jobs.submit(quick(tiny), name="ok")
    assert [jobs.snapshot(j).queue_position for j in (ok_first, nan, ok)] == [1, 2, 3]
    last = jobs.wait(ok, TIMEOUT)
    assert last.status == "done" and len(last.history) == 1
    failed = jobs.snapshot(missing)
    assert failed.status == "failed" and "nowhere.npz" in failed.error and failed.traceback
    assert RunFolder(failed.run_dir).read_status()["status"] == "failed"  # the table shows it after a restart
    bad = jobs.snapshot(nan)
    assert bad.status == "failed" and "loss became nan" in bad.error
    assert jobs.snapshot(ok_first).status == "done"
    rows = {r["name"]: r for r in run_summary.summaries(jobs.root)}
    assert rows["missing"]["status"] == "failed" and rows["missing"]["data"].endswith("nowhere.npz")
    assert rows["ok"]["status"] == "done" and rows["ok"]["best"] is not None


def test_out_of_memory_is_reported_in_words(jobs, tiny, monkeypatch):
    import seglib.losses

    def oom(*a, **k):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(seglib.losses, "build_loss", oom)
    snap = jobs.wait(jobs.submit(quick(tiny)), TIMEOUT)
    assert snap.status == "failed" and "out of memory" in snap.error and "lower the batch size" in snap.error


def test_a_bad_configuration_is_refused_at_submit(jobs, tiny):
    with pytest.raises(ConfigError, match="optimizer"):
        jobs.submit(quick(tiny, optimizer="rmsprop"))
    with pytest.raises(JobError, match="run name"):
        jobs.submit(quick(tiny), name="../outside")
    assert jobs.snapshots() == []


def test_snapshots_follow_the_training(jobs, tiny):
    job_id = jobs.submit(quick(tiny, epochs=2))
    early = jobs.snapshot(job_id)
    snap = jobs.wait(job_id, TIMEOUT)
    assert snap.status == "done" and snap.progress == 1.0 and snap.eta_s is None
    assert [r["epoch"] for r in snap.history] == [1, 2] and snap.latest["epoch"] == 2
    assert len(early.history) == 0  # an older snapshot does not change under the reader
    assert snap.steps_log and snap.steps_log[-1]["global_step"] == 4
    assert snap.best[0] in (1, 2) and snap.best[1] == max(r["miou"] for r in snap.history)
    preview = snap.preview
    assert preview["images"].shape == (len(preview["ids"]), 64, 128) and preview["images"].dtype.name == "uint8"
    assert preview["predictions"].shape == preview["masks"].shape and not preview["masks"].flags.writeable
    assert [c["name"] for c in snap.class_map][-1] == "big rock"
    assert snap.device == "cpu" and snap.elapsed_s > 0


def test_unique_run_folders_for_jobs_submitted_together(jobs, tiny):
    a = jobs.submit(quick(tiny), name="same")
    b = jobs.submit(quick(tiny), name="same")
    assert jobs.snapshot(a).name == "same" and jobs.snapshot(b).name == "same-2"
    jobs.cancel(b)
    jobs.wait(a, TIMEOUT)


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _train_runs(root, tiny, *names) -> None:
    first = JobManager(root, cpu_threads=THREADS)
    for name in names:
        assert first.wait(first.submit(quick(tiny), name=name), TIMEOUT).status == "done"


def test_restart_marks_interrupted_runs_and_resume_continues(tmp_path, tiny):
    root = tmp_path / "runs"
    _train_runs(root, tiny, "was-training", "finished")
    status_file = root / "was-training" / "status.json"
    status = json.loads(status_file.read_text())
    status.update(status="running", pid=_dead_pid())  # the app died during epoch 2
    status_file.write_text(json.dumps(status))
    assert run_summary.summarize(RunFolder(root / "was-training"))["status"] == "interrupted"

    jobs = JobManager(root, cpu_threads=THREADS)  # the app starts again
    try:
        assert jobs.interrupted == ["was-training"]
        marked = RunFolder(root / "was-training").read_status()
        assert marked["status"] == "interrupted" and "resume" in marked["error"]
        assert RunFolder(root / "finished").read_status()["status"] == "done"
        snap = jobs.wait(jobs.resume(root / "was-training", epochs=2), TIMEOUT)
        assert snap.status == "done" and snap.resume
        assert [r["epoch"] for r in snap.history] == [1, 2]  # the earlier epoch is part of the curves
        run = RunFolder(root / "was-training")
        assert [r["epoch"] for r in run.read_history()] == [1, 2]
        assert "resumed after epoch 1" in run.read_log()
        assert run.read_status()["status"] == "done"
    finally:
        jobs.shutdown()
    assert JobManager(root).interrupted == []  # nothing left to mark


def test_a_live_process_keeps_its_run(tmp_path, tiny):
    root = tmp_path / "runs"
    run = RunFolder(root / "elsewhere")  # a run another process is training
    run.write_config(quick(tiny).to_dict())
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        run.file("status.json").write_text(json.dumps({"status": "running", "pid": sleeper.pid}))
        assert process_alive(sleeper.pid, None)
        jobs = JobManager(root)
        assert jobs.interrupted == []
        with pytest.raises(JobError, match="is training in process"):
            jobs.resume(root / "elsewhere")
        with pytest.raises(JobError, match="is training in process"):
            jobs.delete_run(root / "elsewhere")
    finally:
        sleeper.kill()
        sleeper.wait()
    assert not process_alive(sleeper.pid, None)


def test_resume_without_weights_starts_again(jobs, tiny):
    run = RunFolder(jobs.root / "no-weights")
    run.write_config(quick(tiny).to_dict())
    run.write_status("interrupted")
    snap = jobs.wait(jobs.resume(run.path), TIMEOUT)
    assert snap.status == "done" and [r["epoch"] for r in snap.history] == [1]
    assert "no saved weights yet" in run.read_log()


def test_delete_run(jobs, tiny, tmp_path):
    snap = jobs.wait(jobs.submit(quick(tiny), name="doomed"), TIMEOUT)
    with pytest.raises(JobError, match="not a run folder directly under"):
        jobs.delete_run(tmp_path)
    jobs.delete_run(snap.run_dir)
    assert not (jobs.root / "doomed").exists() and list(jobs.root.iterdir()) == []
    running = jobs.submit(quick(tiny, epochs=50, max_steps_per_epoch=0), name="busy")
    while jobs.snapshot(running).status == "queued" or not (jobs.root / "busy").exists():
        time.sleep(0.05)
    with pytest.raises(JobError, match="cancel it first"):
        jobs.delete_run(jobs.root / "busy")
    jobs.cancel(running)
    jobs.wait(running, TIMEOUT)
    jobs.delete_run(jobs.root / "busy")


def test_two_at_once_when_allowed(tmp_path, tiny):
    jobs = JobManager(tmp_path / "runs", max_parallel=2, cpu_threads=THREADS)
    try:
        a, b = jobs.submit(quick(tiny)), jobs.submit(quick(tiny))
        assert {jobs.snapshot(a).status, jobs.snapshot(b).status} == {"running"}
        assert jobs.wait(a, TIMEOUT).status == jobs.wait(b, TIMEOUT).status == "done"
    finally:
        jobs.shutdown()


def test_cpu_threads_apply_to_the_job_only(tmp_path, tiny):
    seen = []

    class Threads(Callback):
        def on_train_start(self, info):
            seen.append(torch.get_num_threads())

    before = torch.get_num_threads()
    jobs = JobManager(tmp_path / "runs", cpu_threads=1)
    jobs.wait(jobs.submit(quick(tiny, device="cpu"), callbacks=[Threads()]), TIMEOUT)
    assert seen == [1] and torch.get_num_threads() == before


@pytest.mark.skipif(sys.platform != "linux", reason="a nice value per thread is Linux's")
def test_every_job_trains_at_the_same_nice_value(tmp_path, tiny):
    base = os.getpriority(os.PRIO_PROCESS, os.getpid())
    if base > 19 - 2 * 3:
        pytest.skip(f"this process already runs at nice {base}: no room to tell +3 from +6")
    seen = []

    class Nice(Callback):
        def on_train_start(self, info):  # in the training thread
            seen.append(os.getpriority(os.PRIO_PROCESS, 0))

    jobs = JobManager(tmp_path / "runs", cpu_threads=THREADS, nice=3)
    try:
        # The second job's thread is started by the first one's (niced) thread when it ends.
        first, second = (jobs.submit(quick(tiny), callbacks=[Nice()]) for _ in range(2))
        assert jobs.snapshot(second).status == "queued"
        assert jobs.wait(first, TIMEOUT).status == jobs.wait(second, TIMEOUT).status == "done"
    finally:
        jobs.shutdown()
    assert seen == [base + 3, base + 3]
    assert os.getpriority(os.PRIO_PROCESS, 0) == base  # the caller's thread is left alone


def test_runs_belong_to_their_dataset(tmp_path, tiny):
    root = tmp_path / "runs"
    _train_runs(root, tiny, "unet")
    rows = run_summary.summaries(root)
    assert [r["name"] for r in rows] == ["unet"]
    unet = rows[0]
    assert unet["status"] == "done" and unet["arch"] == "Unet" and unet["epoch"] == 1 and unet["time_s"] > 0
    assert run_summary.belongs_to(unet, None, tiny)
    assert run_summary.belongs_to(unet, unet["fingerprint"], tmp_path / "a-copy.npz")
    assert not run_summary.belongs_to(unet, "another", tmp_path / "other.npz")
    before = run_summary.signature(root)
    RunFolder(root / "unet").write_status("done", note="touched")
    assert run_summary.signature(root) != before  # a status write refreshes a cached table


def test_the_manager_never_imports_streamlit():
    code = ("import sys, seglib.train.jobs, seglib.train.summary, seglib.viz.training; "
            "sys.exit('streamlit' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True).returncode == 0
