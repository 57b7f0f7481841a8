"""Background training jobs: a queue, worker threads and snapshots that a page polls.

>>> jobs = JobManager("checkpoints")              # one per process; the app keeps it in st.cache_resource
>>> job_id = jobs.submit(TrainConfig.quick("data/demo/mars_demo.npz"))
>>> snap = jobs.snapshot(job_id)                  # status, epoch, step, metrics, history, ETA, error, preview
>>> jobs.cancel(job_id)                           # stops within one step; the run folder stays usable

How it works:
- Each job runs ``seglib.train.train`` in its own daemon thread and learns of progress through the
  engine's callbacks. Nothing here imports streamlit: the thread only writes plain values into the
  job's record, and readers get immutable :class:`JobSnapshot` copies.
- One lock guards every job record and the queue. Callbacks hold it only to assign a few fields,
  so the training thread never waits on a reader for longer than a copy.
- ``max_parallel`` jobs run at once (default 1: two trainings on one GPU or one CPU only halve
  each other); the rest wait in submission order. A finished job (done, failed or cancelled)
  starts the next one from its own thread, so a failure never stalls the queue.
- A new manager marks runs under its root whose status says ``running`` but whose process has
  died (an app restart, a kill) as ``interrupted``; :meth:`JobManager.resume` continues them.
- A job of ``processes`` > 1 runs ``torchrun --standalone --nproc_per_node=N -m seglib train`` as
  a child process group instead (:mod:`.process_jobs`): its thread follows the run folder
  (progress, history, preview written by rank 0), cancels through a ``cancel`` file every rank
  checks after each step (then SIGTERM to the group), and reports a crash with its log's last
  lines. A new manager finds such a job again by its ``job.json`` when its launcher still runs.
- ``cpu_threads`` caps torch's intra-op threads inside the training thread when it trains on the
  CPU, leaving a core for the page; ``nice`` lowers the training thread's CPU priority (Linux),
  so that a page's script thread runs the moment it wakes. Together they keep a page rerun
  during training within a few percent of an idle one at the same training speed (see
  bench/bench_jobs.py).

This module is the manager; a job's record, snapshot and engine hooks are in :mod:`.job_state`,
the CPU sharing in :mod:`.cpu_share`.
"""
from __future__ import annotations

import copy
import itertools
import os
import re
import shutil
import threading
import time
import traceback
from collections.abc import Sequence
from pathlib import Path

from . import process_jobs
from .callbacks import Callback
from .config import TrainConfig
from .cpu_share import base_priority, set_priority, torch_threads
from .job_state import ACTIVE, FINISHED, JobCallback, JobRecord, JobSnapshot, eta_seconds, training_started
from .liveness import mark_interrupted, process_alive
from .runs import RunFolder, checkpoints_dir, new_run_name

__all__ = ["JobError", "JobManager", "JobSnapshot"]

RUN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")  # a folder name directly under the root


class JobError(RuntimeError):
    """A request the manager refuses (unknown job, a run still training, a path outside the root)."""


# --- the manager -----------------------------------------------------------------------------
class JobManager:
    """Trainings in background threads, one at a time by default. Thread-safe.

    Args:
        root: where new runs are created and whose interrupted runs are marked at start
            (default :func:`seglib.train.checkpoints_dir`).
        max_parallel: jobs training at once; more wait in a queue.
        cpu_threads: torch intra-op threads of a job that trains on the CPU; None keeps torch's
            setting (all cores).
        nice: the training threads' nice value on Linux is the process's (read when the manager
            is created) plus this (0 = as the process); the pages' threads then come first.
            Ignored elsewhere (there it would renice the process).
    """

    def __init__(self, root: str | os.PathLike | None = None, max_parallel: int = 1, cpu_threads: int | None = None,
                 nice: int = 0):
        self.root = Path(root) if root else checkpoints_dir()
        self._lock = threading.Lock()
        self._jobs: dict[str, JobRecord] = {}
        self._queue: list[str] = []
        self._ids = itertools.count(1)
        self._max_parallel = max(1, int(max_parallel))
        self.cpu_threads = cpu_threads
        self.nice = nice
        self._base_nice = base_priority()
        self.adopted = self._adopt()  # process jobs whose torchrun outlived the app that started it
        self.interrupted = mark_interrupted(self.root, skip=self.adopted)
        self._pump()

    # --- settings ------------------------------------------------------------------------
    @property
    def max_parallel(self) -> int:
        return self._max_parallel

    @max_parallel.setter
    def max_parallel(self, n: int) -> None:
        with self._lock:
            self._max_parallel = max(1, int(n))
        self._pump()

    # --- submitting ------------------------------------------------------------------------
    def submit(self, cfg: TrainConfig, name: str | None = None, callbacks: Sequence[Callback] = (),
               processes: int = 1) -> str:
        """Queue a new run (``name``: its folder under the root; default time-arch-encoder).
        The config is checked now, so a bad one fails here with ConfigError, not later.
        ``callbacks`` also watch the run (a logger, say); they run in the training thread.
        ``processes`` > 1 trains under torchrun in child processes (gloo on CPU, NCCL on CUDA);
        ``callbacks`` are then not called (the training runs in other processes)."""
        cfg = copy.deepcopy(cfg)  # the engine records its decisions in the config: not in the caller's
        cfg.validate()
        if name is not None and not RUN_NAME.match(name):
            raise JobError(f"run name {name!r}: use letters, digits, '.', '_' and '-' (not first), at most 100")
        with self._lock:
            run = RunFolder(self.root / self._free_name(name or new_run_name(cfg.arch, cfg.encoder)))
            job = self._add(run, cfg, resume=False, callbacks=callbacks, processes=processes)
        self._pump()
        return job.id

    def resume(self, run_dir: str | os.PathLike, epochs: int | None = None, device: str | None = None,
               callbacks: Sequence[Callback] = (), processes: int | None = None) -> str:
        """Queue the continuation of a run (interrupted, cancelled, failed or done: ``epochs``
        raises the total). A run without saved weights starts again from its first epoch.
        ``processes``: default as many as the run trained with."""
        run = RunFolder(run_dir)
        if not run.exists():
            raise JobError(f"{run.path}: not a run folder (no config.json)")
        cfg = TrainConfig.from_dict(run.read_config())
        if epochs is not None:
            cfg.epochs = int(epochs)
        if device is not None:
            cfg.device = device
        status = run.read_status()
        if status.get("status") == "running" and status.get("pid") != os.getpid() and process_alive(
                status.get("pid"), status.get("host")):
            raise JobError(f"{run.name} is training in process {status.get('pid')} on {status.get('host')}")
        with self._lock:
            if self._job_of(run.path, ACTIVE):
                raise JobError(f"{run.name} is already queued or training")
            if processes is None:
                processes = int(cfg.resolved.get("world_size") or process_jobs.read_job(run).get("processes") or 1)
            job = self._add(run, cfg, resume=True, callbacks=callbacks, processes=processes)
        self._pump()
        return job.id

    def submit_quality(self, cfg: TrainConfig, out: str | os.PathLike, folds: int = 5) -> str:
        """Queue out-of-fold label scoring (seglib.quality): ``folds`` runs of ``cfg`` under
        ``out`` (finished ones reused, unfinished ones resumed), then every labeled image scored.
        One job in the queue like a training; cancel stops the fold in progress after its step
        (submit again to go on). The fold count and the dataset are checked now (ConfigError)."""
        from ..quality.crossval import plan_folds

        cfg = copy.deepcopy(cfg)
        cfg.validate()
        plan_folds(cfg, out, folds, log=lambda _m: None)   # fewer images than folds: refused here
        out = Path(out)
        with self._lock:
            if self._job_of(out, ACTIVE):
                raise JobError(f"{out.name}: label scoring is already queued or running")
            job = self._add(RunFolder(out), cfg, resume=False, callbacks=(), processes=1)
            job.kind, job.folds = "quality", int(folds)
        self._pump()
        return job.id

    def _add(self, run: RunFolder, cfg: TrainConfig, resume: bool, callbacks: Sequence[Callback],
             processes: int = 1) -> JobRecord:
        if int(processes) < 1:
            raise JobError(f"processes {processes}: at least 1")
        job = JobRecord(id=f"job-{next(self._ids)}", run=run, config=cfg, resume=resume, epochs=cfg.epochs,
                        callbacks=list(callbacks), processes=int(processes))
        self._jobs[job.id] = job
        self._queue.append(job.id)
        return job

    def _free_name(self, name: str) -> str:
        """``name``, or ``name-2``, ``name-3``...: two jobs submitted in one second must not share a folder."""
        taken = {j.run.name for j in self._jobs.values()}
        candidate, k = name, 1
        while candidate in taken or (self.root / candidate).exists():
            k += 1
            candidate = f"{name}-{k}"
        return candidate

    # --- cancelling ------------------------------------------------------------------------
    def cancel(self, job_id: str) -> bool:
        """Cancel a queued job at once or a running one after its current step. False when
        the job had already finished."""
        with self._lock:
            job = self._get(job_id)
            if job.status not in ACTIVE:
                return False
            job.cancel.set()
            if job.status == "queued":
                self._queue.remove(job_id)
                job.status, job.finished = "cancelled", time.time()
        return True

    def cancel_all(self) -> None:
        for job_id in [s.id for s in self.snapshots() if s.active]:
            self.cancel(job_id)

    # --- reading ----------------------------------------------------------------------------
    def snapshot(self, job_id: str) -> JobSnapshot:
        with self._lock:
            return self._snapshot(self._get(job_id), time.time())

    def snapshots(self) -> list[JobSnapshot]:
        """Every job of this manager: running first, then queued in order, then finished (newest first)."""
        now = time.time()
        with self._lock:
            snaps = [self._snapshot(j, now) for j in self._jobs.values()]
        order = {"running": 0, "queued": 1}
        return sorted(snaps, key=lambda s: (order.get(s.status, 2), s.queue_position or 0,
                                            -(s.finished or s.submitted)))

    def job_for_run(self, run_dir: str | os.PathLike) -> JobSnapshot | None:
        """The latest job of this manager on that run folder, if any."""
        with self._lock:
            job = self._job_of(Path(run_dir), ACTIVE + FINISHED)
            return self._snapshot(job, time.time()) if job else None

    def wait(self, job_id: str, timeout: float | None = None) -> JobSnapshot:
        """Block until the job finishes (for scripts and tests); raises TimeoutError."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            snap = self.snapshot(job_id)
            if not snap.active:
                thread = self._jobs[job_id].thread
                if thread is not None:
                    thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
                return snap
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"{job_id} still {snap.status} after {timeout} s")
            time.sleep(0.05)

    def shutdown(self, timeout: float = 60) -> None:
        """Cancel everything and wait for the threads (tests; the app's threads die with it)."""
        self.cancel_all()
        for job in list(self._jobs.values()):
            if job.thread is not None:
                job.thread.join(timeout)

    # --- deleting ----------------------------------------------------------------------------
    def delete_run(self, run_dir: str | os.PathLike) -> None:
        """Delete a run folder under the root. Refused while a job of this manager uses it or
        another live process trains it."""
        path = Path(run_dir).resolve()
        if path.parent != self.root.resolve():
            raise JobError(f"{path}: not a run folder directly under {self.root}")
        with self._lock:
            if self._job_of(path, ACTIVE):
                raise JobError(f"{path.name} is queued or training: cancel it first")
        status = RunFolder(path).read_status()
        if status.get("status") == "running" and process_alive(status.get("pid"), status.get("host")):
            raise JobError(f"{path.name} is training in process {status.get('pid')} on {status.get('host')}")
        # Rename first, so no reader ever lists a half-deleted run; drop its config first so
        # that a rmtree that fails midway leaves no folder list_runs would show.
        trash = path.with_name(f".deleted-{path.name}-{time.time_ns()}")
        path.rename(trash)
        (trash / "config.json").unlink(missing_ok=True)
        shutil.rmtree(trash)

    # --- internals ------------------------------------------------------------------------------
    def _get(self, job_id: str) -> JobRecord:
        try:
            return self._jobs[job_id]
        except KeyError:
            raise JobError(f"no job {job_id!r}") from None

    def _job_of(self, path: Path, statuses) -> JobRecord | None:
        path = Path(path).resolve()
        found = [j for j in self._jobs.values() if j.run.path.resolve() == path and j.status in statuses]
        return max(found, key=lambda j: j.submitted) if found else None

    def _snapshot(self, job: JobRecord, now: float) -> JobSnapshot:
        cfg = job.config
        position = self._queue.index(job.id) + 1 if job.id in self._queue else None
        return JobSnapshot(
            id=job.id, name=job.run.name, run_dir=str(job.run.path), status=job.status, phase=job.phase,
            arch=cfg.arch, encoder=cfg.encoder, loss_formula=cfg.loss, monitor=cfg.monitor, resume=job.resume,
            submitted=job.submitted, started=job.started, finished=job.finished, queue_position=position,
            epoch=job.epoch,
            epochs=job.epochs, step=job.step, steps=job.steps, global_step=job.global_step,
            total_steps=job.total_steps, loss=job.loss, lr=job.lr, images_per_s=job.images_per_s,
            latest=job.history[-1] if job.history else None, history=tuple(job.history),
            steps_log=tuple(job.steps_log), eta_s=eta_seconds(job, now), error=job.error, traceback=job.traceback,
            device=job.device, cancel_requested=job.cancel.is_set(), preview=job.preview,
            class_map=list(job.class_map), processes=job.processes, kind=job.kind, fold=job.fold, folds=job.folds)

    def _pump(self) -> None:
        """Start queued jobs while fewer than ``max_parallel`` run."""
        with self._lock:
            running = sum(j.status == "running" for j in self._jobs.values())
            while self._queue and running < self._max_parallel:
                job = self._jobs[self._queue.pop(0)]
                job.status, job.phase, job.started = "running", "preparing", time.time()
                target = (self._run_quality if job.kind == "quality" else
                          self._run_processes if job.processes > 1 else self._run)
                job.thread = threading.Thread(target=target, args=(job,), name=f"seglib-{job.id}", daemon=True)
                job.thread.start()
                running += 1

    def _run(self, job: JobRecord) -> None:
        """The job's thread: train, record how it ended, start the next job."""
        from . import train

        status, error, tb = "failed", None, None
        set_priority(self._base_nice, self.nice)
        try:
            with torch_threads(self.cpu_threads, job.config.device):
                resume = job.resume and job.run.weights_path("last").exists()
                if job.resume and not resume:
                    job.run.log("resume: no saved weights yet; starting again from the first epoch")
                if not resume:
                    # config.json first: a run that fails while reading its data still shows in
                    # the runs table (the engine rewrites it with what it resolved).
                    job.run.write_config(job.config.to_dict())
                job.run.write_status("running", epochs=job.config.epochs, error=None)
                callbacks = [*job.callbacks, JobCallback(self._lock, job)]
                result = train(job.config, run_dir=job.run.path, callbacks=callbacks, resume=resume)
            status = result["status"]
        except Exception as e:  # every failure is the job's result, never the app's
            error = job.end_error or _one_line(e)
            tb = traceback.format_exc()
            _record_failure(job.run, error)
        with self._lock:
            job.status, job.error, job.traceback = status, error, tb
            job.finished, job.phase = time.time(), ""
            if status == "cancelled":
                job.error = None
        self._pump()

    def _run_quality(self, job: JobRecord) -> None:
        """A quality job's thread: the folds one after the other (each reported like a training,
        with the fold number), then the scoring pass."""
        from ..quality import cross_validate, score_labels
        from .data import usable_images

        status, error, tb = "failed", None, None
        set_priority(self._base_nice, self.nice)

        def on_fold(plan) -> None:
            with self._lock:
                job.fold, job.fold_started, job.phase = plan.fold, time.time(), "preparing"
                job.history, job.steps_log, job.global_step, job.total_steps = [], [], 0, 0
                job.resume = plan.action == "resume"
                job.run_fold = plan.run_dir

        try:
            with torch_threads(self.cpu_threads, job.config.device):
                results = cross_validate(job.config, job.run.path, job.folds,
                                         callbacks=[_FoldCallback(self._lock, job)], log=lambda _m: None,
                                         should_stop=job.cancel.is_set, on_fold=on_fold)
                stopped = [r for r in results if r["status"] != "done"]
                if stopped:
                    status = "cancelled" if stopped[0]["status"] == "cancelled" else "failed"
                    error = None if status == "cancelled" else f"fold {stopped[0]['fold'] + 1} {stopped[0]['status']}"
                else:
                    with self._lock:
                        job.fold, job.phase = job.folds, "scoring"
                    ds = usable_images(job.config, lambda _m: None)[0]

                    def progress(done: int, total: int) -> None:
                        with self._lock:
                            job.step, job.steps = done, total

                    score_labels(ds, job.run.path, folds=job.folds, device=job.config.device, progress=progress,
                                 should_stop=job.cancel.is_set)
                    status = "done"
        except InterruptedError:
            status = "cancelled"
        except Exception as e:  # every failure is the job's result, never the app's
            error, tb = job.end_error or _one_line(e), traceback.format_exc()
        with self._lock:
            job.status, job.error, job.traceback = status, error, tb
            job.finished, job.phase = time.time(), ""
        self._pump()

    def _run_processes(self, job: JobRecord) -> None:
        """A process job's thread: launch torchrun (or follow an adopted one) until it exits."""
        status, error, tb = "failed", None, None
        try:
            if job.adopted:
                pid, proc = int(job.adopted["pid"]), None
            else:
                resume = job.resume and job.run.weights_path("last").exists()
                if job.resume and not resume:
                    job.run.log("resume: no saved weights yet; starting again from the first epoch")
                if not resume:
                    job.run.write_config(job.config.to_dict())  # what `seglib train --config` reads
                job.run.write_status("running", epochs=job.config.epochs, error=None, processes=job.processes)
                cpu = job.config.device == "cpu" or not _cuda_available()
                proc = process_jobs.launch(job.run, job.config, job.processes, resume, nice=self.nice,
                                           cpu_threads=self.cpu_threads if cpu else None)
                pid = proc.pid
            status, error, tb = process_jobs.follow(self._lock, job, proc, pid)
        except Exception as e:  # every failure is the job's result, never the app's
            error, tb = _one_line(e), traceback.format_exc()
            _record_failure(job.run, error)
        with self._lock:
            job.status, job.error, job.traceback = status, error, tb
            job.finished, job.phase = time.time(), ""
        self._pump()

    def _adopt(self) -> list[str]:
        """Jobs of runs whose torchrun launcher (started by an earlier app process) still runs:
        followed again as running jobs of this manager."""
        adopted = []
        for run in process_jobs.list_runs_with_job(self.root):
            info = process_jobs.adoptable(run)
            if info is None:
                continue
            try:
                cfg = TrainConfig.from_dict(run.read_config())
            except Exception:  # a config not written yet: follow with the defaults' shape
                continue
            job = JobRecord(id=f"job-{next(self._ids)}", run=run, config=cfg, resume=False, epochs=cfg.epochs,
                            processes=int(info.get("processes") or 2), adopted=info,
                            submitted=float(info.get("started") or time.time()))
            job.status, job.phase, job.started = "running", "training", job.submitted
            job.thread = threading.Thread(target=self._run_processes, args=(job,), name=f"seglib-{job.id}",
                                          daemon=True)
            self._jobs[job.id] = job
            job.thread.start()
            run.log(f"found again after an app restart: torchrun pid {info['pid']}, {job.processes} processes")
            adopted.append(run.name)
        return adopted


class _FoldCallback(JobCallback):
    """A fold of a quality job reports like a training; its earlier epochs come from the fold's
    own run folder (the job's folder holds the folds)."""

    def on_train_start(self, info):
        job = self.job
        folder = RunFolder(job.run_fold or job.run.path)
        earlier = [r for r in folder.read_history() if r["epoch"] < info["start_epoch"]] if job.resume else []
        with self.lock:
            training_started(job, info, info["config"].get("resolved", {}).get("class_map", []))
            job.history = earlier


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def _record_failure(run: RunFolder, error: str) -> None:
    """Make the run folder say "failed" where the engine could not (a failure before it started)."""
    try:
        if run.path.is_dir() and run.read_status().get("status") != "failed":
            run.write_status("failed", error=error)
            run.log(f"failed: {error}")
    except OSError:
        pass  # the folder itself is the problem; the job still reports the error


def _one_line(exc: Exception) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
