"""Jobs of several processes: ``torchrun --standalone --nproc_per_node=N -m seglib train`` started
by the job manager as a child process, watched through its run folder.

The files, besides a run's own (:mod:`.runs`), all under the run folder:

    job.json        the launcher's pid (its own process group), host, processes, start time:
                    a restarted app finds a running job again by it
    progress.json   rank 0's on_train_start (epochs, steps per epoch, device, class map)
    steps.jsonl     rank 0's step reports (one JSON line each, every 10 steps)
    preview.npz     rank 0's first validation batch of the latest epoch (uint8 arrays)
    cancel          present = stop: every rank checks it after each step, and the engine's
                    ``any_rank`` stops all ranks together

:class:`RunFolderWatch` writes them from inside ``seglib train``; :func:`launch` starts the
child; :class:`Follower` reads them back into a job's record for the page's snapshots.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

import numpy as np

from ..atomic import atomic_write
from .callbacks import Callback
from .config import TrainConfig
from .job_state import MAX_STEP_POINTS, JobRecord, preview_arrays, training_started
from .runs import RunFolder, write_json

JOB, PROGRESS, STEPS, PREVIEW, CANCEL = "job.json", "progress.json", "steps.jsonl", "preview.npz", "cancel"
CANCEL_GRACE_S = 15.0  # after the cancel file, before SIGTERM (data loading does not poll it)
KILL_GRACE_S = 10.0    # after SIGTERM, before SIGKILL


class RunFolderWatch(Callback):
    """Inside ``seglib train``: rank 0 writes progress to the run folder; every rank stops when
    the cancel file appears (a stat per step)."""

    def __init__(self, run_dir: str | os.PathLike, rank: int = 0, progress: bool = True):
        self.run = RunFolder(run_dir)
        self.main = rank == 0 and progress
        self.cancel_file = self.run.file(CANCEL)

    def on_train_start(self, info):
        if not self.main:
            return
        cfg = info.get("config") or {}
        self.run.file(STEPS).write_text("")  # before progress.json: a reader never sees an old run's steps
        write_json(self.run.file(PROGRESS), {
            "start_epoch": info["start_epoch"], "epochs": info["epochs"], "steps_per_epoch": info["steps_per_epoch"],
            "device": info["device"], "class_map": cfg.get("resolved", {}).get("class_map", []),
            "pid": os.getpid(), "time": time.time()})

    def on_step_end(self, step):
        if self.main:
            with open(self.run.file(STEPS), "a") as f:
                f.write(json.dumps(step) + "\n")

    def on_validation_batch(self, images, masks, predictions, ids):
        if not self.main:
            return
        p = preview_arrays(images, masks, predictions, ids)

        def write(tmp):
            with open(tmp, "wb") as f:
                np.savez(f, images=p["images"], masks=p["masks"], predictions=p["predictions"],
                         ids=np.array([str(i) for i in p["ids"]]))

        atomic_write(self.run.file(PREVIEW), write)

    def should_stop(self) -> bool:
        return self.cancel_file.exists()


def command(run: RunFolder, cfg: TrainConfig, processes: int, resume: bool) -> list[str]:
    """The torchrun command line of a job (``python -m torch.distributed.run`` is ``torchrun``)."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={int(processes)}",
           "-m", "seglib", "train", str(cfg.data), "--out", str(run.path), "--quiet"]
    if resume:
        cmd += ["--resume", "--epochs", str(cfg.epochs), "--device", str(cfg.device)]
    else:
        cmd += ["--config", str(run.file("config.json"))]
    return cmd


def launch(run: RunFolder, cfg: TrainConfig, processes: int, resume: bool, nice: int = 0,
           cpu_threads: int | None = None) -> subprocess.Popen:
    """Start the job's torchrun in its own process group, its output appended to log.txt, and
    record it in job.json."""
    run.path.mkdir(parents=True, exist_ok=True)
    run.file(CANCEL).unlink(missing_ok=True)  # a resumed cancelled run must not stop at once
    cmd = command(run, cfg, processes, resume)
    if nice > 0 and shutil.which("nice"):
        cmd = ["nice", "-n", str(int(nice)), *cmd]
    env = {**os.environ, "SEGLIB_JOB": "1"}
    if cpu_threads:
        env["OMP_NUM_THREADS"] = str(int(cpu_threads))
    with open(run.file("log.txt"), "a") as log:
        log.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} launching {processes} processes: {' '.join(cmd)}\n")
        log.flush()
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, env=env)
    write_json(run.file(JOB), {"pid": proc.pid, "app_pid": os.getpid(), "host": socket.gethostname(),
                               "processes": int(processes),
                               "started": time.time(), "command": cmd})
    return proc


def read_job(run: RunFolder) -> dict:
    try:
        return json.loads(run.file(JOB).read_text())
    except (OSError, ValueError):
        return {}


def log_tail(run: RunFolder, lines: int = 25) -> str:
    return "\n".join(run.read_log().splitlines()[-lines:])


def signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)  # the launcher leads its own session: its pid is the group id
    except (ProcessLookupError, PermissionError):
        pass


class Follower:
    """Reads a process job's run folder into its record (under the manager's lock) and cancels it."""

    def __init__(self, lock: threading.Lock, job: JobRecord):
        self.lock, self.job, self.run = lock, job, job.run
        self.steps_offset = 0
        self.started = False
        self.history_mtime = None
        self.preview_mtime = None
        self.cancel_sent: float | None = None
        self.term_sent: float | None = None

    def poll(self) -> None:
        run, job = self.run, self.job
        if not self.started:
            try:
                info = json.loads(run.file(PROGRESS).read_text())
            except (OSError, ValueError):
                info = None
            if info and info.get("time", 0) >= (job.started or 0) - 1:
                self.started = True
                with self.lock:
                    training_started(job, info, info.get("class_map", []))
        if not self.started:
            return
        self._read_steps()
        self._read_history()
        self._read_preview()

    def _read_steps(self) -> None:
        try:
            with open(self.run.file(STEPS)) as f:
                f.seek(self.steps_offset)
                text = f.read()
        except OSError:
            return
        complete = text[: text.rfind("\n") + 1]
        self.steps_offset += len(complete.encode())
        points = []
        for line in complete.splitlines():
            try:
                points.append(json.loads(line))
            except ValueError:
                continue
        if not points:
            return
        step = points[-1]
        job = self.job
        with self.lock:
            job.phase = "validating" if step["step"] == step["steps"] else "training"
            job.epoch, job.step, job.steps = step["epoch"], step["step"], step["steps"]
            job.global_step, job.total_steps = step["global_step"], step["total_steps"]
            job.loss, job.lr, job.images_per_s = step["loss"], step["lr"], step["images_per_s"]
            job.steps_log.extend({"global_step": s["global_step"], "epoch": s["epoch"] - 1 + s["step"] / s["steps"],
                                  "loss": s["loss"], "lr": s["lr"]} for s in points)
            if len(job.steps_log) > MAX_STEP_POINTS:
                del job.steps_log[: len(job.steps_log) - MAX_STEP_POINTS]

    def _read_history(self) -> None:
        path = self.run.file("history.jsonl")
        try:
            mtime = path.stat().st_mtime_ns
        except OSError:
            return
        if mtime == self.history_mtime:
            return
        self.history_mtime = mtime
        records = self.run.read_history()
        with self.lock:
            if len(records) != len(self.job.history):
                self.job.phase = "training"
            self.job.history = records

    def _read_preview(self) -> None:
        path = self.run.file(PREVIEW)
        try:
            mtime = path.stat().st_mtime_ns
            if mtime == self.preview_mtime or path.stat().st_mtime < (self.job.started or 0):
                return
            with np.load(path) as z:
                preview = {k: z[k] for k in ("images", "masks", "predictions")}
                preview["ids"] = [str(i) for i in z["ids"]]
        except (OSError, ValueError, KeyError):
            return
        self.preview_mtime = mtime
        for key in ("images", "masks", "predictions"):
            preview[key].flags.writeable = False
        with self.lock:
            self.job.preview = {**preview, "epoch": self.job.epoch}

    def steer(self, pid: int) -> None:
        """Cancel: the cancel file first, SIGTERM to the group after a grace, SIGKILL after another."""
        if not self.job.cancel.is_set():
            return
        now = time.monotonic()
        if self.cancel_sent is None:
            self.cancel_sent = now
            try:
                self.run.file(CANCEL).write_text(f"{time.time()}\n")
            except OSError:
                pass
        elif self.term_sent is None and now - self.cancel_sent > CANCEL_GRACE_S:
            self.term_sent = now
            signal_group(pid, signal.SIGTERM)
        elif self.term_sent is not None and now - self.term_sent > KILL_GRACE_S:
            signal_group(pid, signal.SIGKILL)

    def outcome(self, rc: int | None) -> tuple[str, str | None, str | None]:
        """(status, error, log tail) once the launcher has exited (``rc`` None: not our child)."""
        run, job = self.run, self.job
        self.poll()
        run.file(CANCEL).unlink(missing_ok=True)
        st = run.read_status()
        engine_status = st.get("ended_as") or st.get("status")
        fresh = (st.get("updated") or 0) >= (job.started or 0) - 1
        if job.cancel.is_set() and (rc != 0 or engine_status != "done"):
            if engine_status != "cancelled" or not fresh:
                run.write_status("cancelled", error=None)
                run.log("cancelled: the processes were stopped")
            return "cancelled", None, None
        if fresh and engine_status in ("done", "stopped_early", "cancelled") and rc in (0, None):
            return engine_status, None, None
        tail = log_tail(run)
        error = st.get("error") if fresh and st.get("status") == "failed" and st.get("error") else None
        if error is None:
            error = (f"torchrun exited with code {rc}" if rc is not None else
                     "the training processes ended without finishing (found again after a restart)")
            last = [ln for ln in tail.splitlines() if ln.strip()]
            if last:
                error += f": {last[-1].strip()[:300]}"
            run.write_status("failed", error=error)
            run.log(f"failed: {error}")
        return "failed", error, tail


def pid_alive(pid: int) -> bool:
    from .liveness import process_alive

    return process_alive(pid, socket.gethostname())


def follow(lock: threading.Lock, job: JobRecord, proc: subprocess.Popen | None, pid: int,
           interval: float = 0.2) -> tuple[str, str | None, str | None]:
    """Follow a launched job until its launcher exits; (status, error, log tail)."""
    follower = Follower(lock, job)
    while True:
        rc = proc.poll() if proc is not None else (None if pid_alive(pid) else -1)
        follower.poll()
        if rc is not None:
            return follower.outcome(rc if proc is not None else None)
        follower.steer(pid)
        time.sleep(interval)


def adoptable(run: RunFolder) -> dict | None:
    """job.json of a run whose launcher still runs while the app process that started it (on this
    host) has gone."""
    info = read_job(run)
    pid = info.get("pid")
    if not pid or pid == os.getpid() or info.get("host") != socket.gethostname():
        return None
    app = info.get("app_pid")
    if app and (app == os.getpid() or pid_alive(app)):
        return None  # the app process that launched it still follows it
    if run.read_status().get("status") not in ("running", "unknown", "interrupted"):
        return None
    return info if pid_alive(pid) else None


def processes_available() -> tuple[int, str]:
    """(the most processes the form offers, what they run on)."""
    import torch

    if torch.cuda.is_available():
        return max(1, torch.cuda.device_count()), "GPU"
    return max(1, min(4, os.cpu_count() or 1)), "CPU process"


def list_runs_with_job(root) -> list[RunFolder]:
    """Folders under ``root`` that a process job launched (config.json not needed yet)."""
    from pathlib import Path

    root = Path(root)
    if not root.is_dir():
        return []
    return [RunFolder(p) for p in sorted(root.iterdir()) if (p / JOB).is_file()]
