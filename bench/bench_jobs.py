"""The job manager against the bare engine, and page reruns with and without a job training.

    .venv/bin/python bench/bench_jobs.py                   # 600 demo images, CPU
    .venv/bin/python bench/bench_jobs.py --repeats 5 --steps 60

1. Throughput: ``train()`` called directly vs the same config through ``JobManager`` (a thread,
   the callbacks, a poller taking snapshots twice a second as four open tabs would), in one
   process, alternating so that both see the same machine load. Both at the manager's CPU
   thread count; ratio manager / bare, want >= 0.95. The bare engine at all threads is
   printed too, for what sparing a core for the pages costs.
2. Page reruns: the median time of an AppTest rerun of the Dataset page (the same content
   either way) and of the Train page, idle and while a job trains, with the app's settings
   (a core spared, the training thread niced), without the nice, and at torch's defaults;
   want at most twice the idle time.
3. ``--processes N``: a job of N torchrun processes (gloo on the CPU) started by the manager vs
   the same ``torchrun ... -m seglib train --config`` command run by hand, alternating; ratio
   manager / by hand, want >= 0.95.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from seglib.data import write_demo  # noqa: E402
from seglib.train import RunFolder, TrainConfig, process_jobs, train  # noqa: E402
from seglib.train.cpu_share import threads_sparing_a_core  # noqa: E402
from seglib.train.jobs import JobManager  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def config(data: Path, epochs: int, steps: int) -> TrainConfig:
    return TrainConfig.quick(str(data), epochs=epochs, max_steps_per_epoch=steps, leave_out_excluded=False,
                             device="cpu")


def train_speed(run_dir: Path) -> float:
    """Training images per second over the run (validation excluded), from its history."""
    history = RunFolder(run_dir).read_history()
    seen = sum(r["images_per_s"] * r["train_time"] for r in history)
    return seen / sum(r["train_time"] for r in history)


def bare(cfg: TrainConfig, out: Path, threads: int) -> float:
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        train(cfg, run_dir=out)
    finally:
        torch.set_num_threads(old)
    return train_speed(out)


def managed(cfg: TrainConfig, root: Path, threads: int) -> float:
    jobs = JobManager(root, cpu_threads=threads, nice=10)  # as the app's
    done = threading.Event()

    def poll():  # what the open tabs of the Train page do
        while not done.wait(0.5):
            jobs.snapshots()

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    try:
        snap = jobs.wait(jobs.submit(cfg, name="managed"), timeout=3600)
    finally:
        done.set()
        poller.join()
    assert snap.status == "done", snap.error
    return train_speed(root / "managed")


def throughput(data: Path, tmp: Path, args) -> None:
    threads = threads_sparing_a_core() or 1
    cfg = config(data, args.epochs, args.steps)
    print(f"throughput: Unet/mobilenet_v2, batch {cfg.batch_size}, {args.epochs} epochs x {args.steps} steps, "
          f"{threads} of {os.cpu_count()} CPU threads, {args.repeats} alternating repeats")
    bare(config(data, 1, 3), tmp / "warmup", threads)
    b, m = [], []
    for k in range(args.repeats):
        for name in ("bare", "manager") if k % 2 == 0 else ("manager", "bare"):  # alternate who goes first
            if name == "bare":
                b.append(bare(cfg, tmp / f"bare-{k}", threads))
            else:
                m.append(managed(cfg, tmp / f"managed-{k}", threads))
        print(f"  repeat {k}: bare {b[-1]:6.1f} img/s | manager {m[-1]:6.1f} img/s", flush=True)
    ratio = statistics.median(x / y for x, y in zip(m, b, strict=True))
    print(f"  median bare {statistics.median(b):.1f} img/s, manager {statistics.median(m):.1f} img/s: "
          f"ratio manager/bare = {ratio:.3f} (want >= 0.95)")
    full = bare(cfg, tmp / "full", os.cpu_count() or 1)
    print(f"  for comparison, the bare engine at torch's default {os.cpu_count()} threads: {full:.1f} img/s",
          flush=True)


def rerun_times(at, n: int) -> list[float]:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        at.run()
        times.append(time.perf_counter() - t0)
        assert not at.exception, at.exception
    return times


def latency(data_dir: Path, tmp: Path, args) -> None:
    import sys

    from streamlit.testing.v1 import AppTest

    sys.path.insert(0, str(ROOT))  # ui/ is the app's, not an installed package
    os.environ["SEGLIB_DATA_DIR"] = str(data_dir)
    os.environ["SEGLIB_CHECKPOINTS"] = str(tmp / "app-runs")
    demo = data_dir / "demo" / "mars_demo.npz"
    pages = {}
    for page in ("pages/1_dataset.py", "pages/4_train.py"):
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300)
        at.run()
        at.switch_page(page).run()
        rerun_times(at, 2)  # warm caches
        pages[page] = at
    from ui.train import manager  # the app's own manager: the Train page shows its job

    jobs = manager()
    app = (jobs.cpu_threads, jobs.nice)
    print(f"page reruns (AppTest in the app's process; median of {args.rounds} rounds x {args.reruns} reruns idle, "
          "then as many with a job training, alternating):")
    settings = [("app default", *app), ("no nice", app[0], 0), ("torch default", None, 0)]
    for label, threads, nice in settings:
        jobs.cpu_threads, jobs.nice = threads, nice
        idle = {p: [] for p in pages}
        busy = {p: [] for p in pages}
        speeds = []
        for _ in range(args.rounds):  # alternate so that both see the same load from elsewhere
            for p, at in pages.items():
                idle[p] += rerun_times(at, args.reruns)
            job = jobs.submit(config(demo, 1000, 0))
            while jobs.snapshot(job).global_step < 10:
                time.sleep(0.1)
            for p, at in pages.items():
                busy[p] += rerun_times(at, args.reruns)
            speeds.append(jobs.snapshot(job).images_per_s)
            jobs.cancel(job)
            jobs.wait(job)
        for p in pages:
            i, b = statistics.median(idle[p]), statistics.median(busy[p])
            print(f"  {Path(p).stem:10s} {label:13s} ({threads or os.cpu_count()} thread(s), nice +{nice}): idle "
                  f"{i * 1000:5.0f} ms, job training {b * 1000:5.0f} ms, ratio {b / i:.2f} (want <= 2); "
                  f"the job trained at {statistics.median(speeds):.1f} img/s")
    jobs.cpu_threads, jobs.nice = app


def processes(data: Path, tmp: Path, args) -> None:
    n, threads = args.processes, max(1, (os.cpu_count() or 1) // args.processes)
    cfg = config(data, args.epochs, args.steps)
    print(f"processes: {n} torchrun processes, {threads} thread(s) each, {args.repeats} alternating repeats")
    by_hand, managed_ = [], []
    for k in range(args.repeats):
        for name in ("hand", "manager") if k % 2 == 0 else ("manager", "hand"):
            if name == "hand":
                run = RunFolder(tmp / f"hand-{k}")
                run.path.mkdir(parents=True)
                run.write_config(cfg.to_dict())
                env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
                subprocess.run(process_jobs.command(run, cfg, n, resume=False), check=True, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                by_hand.append(train_speed(run.path))
            else:
                jobs = JobManager(tmp / f"mgr-{k}", cpu_threads=threads, nice=10)
                snap = jobs.wait(jobs.submit(cfg, name="managed", processes=n), timeout=3600)
                assert snap.status == "done", snap.error
                managed_.append(train_speed(tmp / f"mgr-{k}" / "managed"))
        print(f"  repeat {k}: by hand {by_hand[-1]:6.1f} img/s | manager {managed_[-1]:6.1f} img/s", flush=True)
    ratio = statistics.median(x / y for x, y in zip(managed_, by_hand, strict=True))
    print(f"  ratio manager/by hand = {ratio:.3f} (want >= 0.95)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=600, help="demo images")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--steps", type=int, default=30, help="steps per epoch")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--reruns", type=int, default=4, help="page reruns per round")
    ap.add_argument("--rounds", type=int, default=3, help="idle/busy rounds per setting")
    ap.add_argument("--skip-throughput", action="store_true")
    ap.add_argument("--skip-latency", action="store_true")
    ap.add_argument("--processes", type=int, default=0,
                    help="only compare an N-process torchrun job from the manager with the command run by hand")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-jobs-"))
    try:
        data_dir = tmp / "app-data"
        os.environ["SEGLIB_DATA_DIR"] = str(data_dir)
        demo = data_dir / "demo" / "mars_demo.npz"
        write_demo(demo, n=args.n, seed=0, n_test=0)
        print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
        if args.processes > 1:
            processes(demo, tmp, args)
            return
        if not args.skip_throughput:
            throughput(demo, tmp, args)
        if not args.skip_latency:
            latency(data_dir, tmp, args)
        print(f"load average at the end {os.getloadavg()[0]:.1f} (other processes on the machine skew both)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
