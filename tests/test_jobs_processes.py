"""Process jobs: the job manager runs ``torchrun --nproc_per_node=2`` (gloo on the CPU) as a child
process group and follows it through the run folder: progress and status like a thread job, a
cancel that stops both ranks, a crash reported as "failed" with its log, and a restarted
manager that finds a running job again."""
from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from seglib.data.demo import write_demo
from seglib.train import RunFolder, TrainConfig, process_jobs
from seglib.train.jobs import JobManager

TIMEOUT = 240


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny-proc") / "tiny.npz"
    write_demo(path, n=52, seed=3, n_test=0)
    return path


def quick(data, **over) -> TrainConfig:
    base = dict(data=str(data), encoder="mobilenet_v2", epochs=1, batch_size=4, max_steps_per_epoch=2, patience=0,
                val_fraction=0.25, device="cpu", workers=0)
    return TrainConfig(**{**base, **over})


@pytest.fixture
def jobs(tmp_path):
    mgr = JobManager(tmp_path / "runs", cpu_threads=1)
    yield mgr
    mgr.shutdown()


def test_two_process_job_trains_and_reports_like_a_thread_job(jobs, tiny):
    job_id = jobs.submit(quick(tiny), processes=2)
    seen = set()
    while jobs.snapshot(job_id).active:
        seen.add(jobs.snapshot(job_id).status)
        time.sleep(0.1)
    snap = jobs.wait(job_id, TIMEOUT)
    run = RunFolder(snap.run_dir)
    assert snap.status == "done", (snap.error, run.read_log()[-3000:])
    assert "running" in seen and snap.processes == 2
    assert snap.progress == 1.0 and snap.global_step == 2 and snap.steps == 2
    assert len(snap.history) == 1 and snap.history[0]["epoch"] == 1 and snap.latest["miou"] >= 0
    assert snap.steps_log and snap.device == "cpu"
    assert snap.preview is not None and snap.preview["images"].shape[0] > 0
    assert run.read_config()["resolved"]["world_size"] == 2
    assert run.read_status()["status"] == "done" and run.weights_path("best").exists()
    assert len(run.read_history()) == 1
    log = run.read_log()
    assert "launching 2 processes" in log and "rank 0/2" in log


def test_cancel_stops_both_ranks(jobs, tiny):
    job_id = jobs.submit(quick(tiny, epochs=50, max_steps_per_epoch=0, batch_size=2), processes=2)
    deadline = time.monotonic() + TIMEOUT
    while jobs.snapshot(job_id).global_step < 1:  # wait until it trains: then the cancel file stops it
        assert jobs.snapshot(job_id).active, jobs.snapshot(job_id).error
        assert time.monotonic() < deadline
        time.sleep(0.1)
    t0 = time.monotonic()
    assert jobs.cancel(job_id)
    snap = jobs.wait(job_id, 60)
    assert snap.status == "cancelled" and snap.error is None
    assert time.monotonic() - t0 < 15  # the ranks stopped at a step, not by the SIGTERM after the grace
    run = RunFolder(snap.run_dir)
    assert run.read_status()["status"] == "cancelled" and not run.file(process_jobs.CANCEL).exists()
    assert "cancelled during epoch" in run.read_log()


def test_a_crashing_job_is_failed_with_its_log(jobs, tmp_path):
    broken = tmp_path / "broken.npz"
    broken.write_bytes(b"not an npz")
    cfg = quick(tmp_path / "x.npz")
    cfg.data = str(broken)  # submit validates the config only; the processes fail reading it
    job_id = jobs.submit(cfg, processes=2)
    snap = jobs.wait(job_id, TIMEOUT)
    assert snap.status == "failed" and snap.error
    assert snap.traceback  # the log's last lines
    after = jobs.submit(quick(tmp_path / "x.npz"))  # the manager keeps going (this one fails too, in a thread)
    assert jobs.wait(after, TIMEOUT).status == "failed"


@pytest.mark.slow
def test_resume_keeps_the_processes(jobs, tiny):
    first = jobs.wait(jobs.submit(quick(tiny), processes=2), TIMEOUT)
    assert first.status == "done", first.error
    job_id = jobs.resume(first.run_dir, epochs=2)
    snap = jobs.wait(job_id, TIMEOUT)
    assert snap.processes == 2 and snap.status == "done", snap.error
    assert [r["epoch"] for r in snap.history] == [1, 2]


def test_a_restarted_manager_finds_a_running_job_again(tmp_path, tiny):
    root = tmp_path / "runs"
    first = JobManager(root, cpu_threads=1)
    job_id = first.submit(quick(tiny, epochs=50, max_steps_per_epoch=0, batch_size=2), processes=2)
    deadline = time.monotonic() + TIMEOUT
    while first.snapshot(job_id).global_step < 1:
        assert first.snapshot(job_id).active and time.monotonic() < deadline
        time.sleep(0.1)
    run_dir = first.snapshot(job_id).run_dir
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    job_file = RunFolder(run_dir).file(process_jobs.JOB)
    assert process_jobs.adoptable(RunFolder(run_dir)) is None  # its app (this process) still follows it
    job_file.write_text(json.dumps({**json.loads(job_file.read_text()), "app_pid": gone.pid}))  # the app died
    second = JobManager(root, cpu_threads=1)  # as after an app restart: the torchrun is still running
    assert second.adopted == [RunFolder(run_dir).name] and not second.interrupted
    (snap,) = second.snapshots()
    assert snap.status == "running" and snap.processes == 2
    while second.snapshot(snap.id).global_step < 1:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert second.cancel(snap.id)
    assert second.wait(snap.id, 60).status == "cancelled"
    first.wait(job_id, 60)  # the first manager sees its child end too
    assert json.loads((RunFolder(run_dir).file("status.json")).read_text())["status"] == "cancelled"
