"""How a training thread shares the CPU with the app's pages: a lower priority for the thread,
fewer torch intra-op threads while it trains on the CPU, and how many threads leave a core free."""
from __future__ import annotations

import os
import sys
import threading

import torch


def base_priority() -> int:
    """The process's nice value: that of its main thread (on Linux the thread whose id is the
    pid), whichever thread asks. Read it once and give it to :func:`set_priority`."""
    try:
        return os.getpriority(os.PRIO_PROCESS, os.getpid())
    except (AttributeError, OSError):  # no getpriority (Windows)
        return 0


def set_priority(base: int, nice: int) -> None:
    """Give this thread the nice value ``base + nice`` (Linux keeps one per thread, and threads
    this one starts, such as OpenMP's, inherit it; elsewhere the call would renice the process).
    Absolute, not relative to the calling thread: a job's thread started by a finished job's
    thread inherits that thread's nice value, and adding to it again would nice each job more."""
    if sys.platform != "linux":
        return
    target = min(base + max(nice, 0), 19)  # 19: the lowest priority Linux has
    try:
        if os.getpriority(os.PRIO_PROCESS, 0) != target:  # 0: the calling thread on Linux
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), target)
    except OSError:
        pass  # not allowed here (raising a priority needs privilege): train at the inherited one


class torch_threads:
    """Within the block, torch ops of this thread use at most ``n`` intra-op threads when the
    job trains on the CPU (a no-op for n=None or a GPU); the previous count is restored after.
    torch keeps the count per thread (OpenMP), but new threads copy the last one set."""

    def __init__(self, n: int | None, device: str):
        on_cpu = device == "cpu" or (device == "auto" and not gpu_available())
        self.n = n if n and on_cpu else None
        self.old: int | None = None

    def __enter__(self):
        if self.n and self.n < torch.get_num_threads():
            self.old = torch.get_num_threads()
            torch.set_num_threads(self.n)
        return self

    def __exit__(self, *exc):
        if self.old is not None:
            torch.set_num_threads(self.old)
        return False


def threads_sparing_a_core() -> int | None:
    """Intra-op threads that leave one core to the rest of the process (the app's pages), or
    None on a one-core machine. OpenMP threads that share cores with other busy threads wait
    on each other at every barrier: on 2 cores, 2 training threads plus a page rerun train
    several times slower than 1 thread (see bench/bench_jobs.py)."""
    cores = os.cpu_count() or 1
    return cores - 1 if cores > 1 else None


def gpu_available() -> bool:
    return torch.cuda.is_available() or torch.backends.mps.is_available()
