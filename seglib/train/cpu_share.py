"""How a training thread shares the CPU with the app's pages: a lower priority for the thread,
fewer torch intra-op threads while it trains on the CPU, and how many threads leave a core free."""
from __future__ import annotations

import os
import sys
import threading

import torch


def lower_priority(nice: int) -> None:
    """Lower this thread's CPU priority. Linux keeps a nice value per thread (and threads this
    one starts, such as OpenMP's, inherit it); elsewhere the call would renice the process."""
    if nice > 0 and sys.platform == "linux":
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), os.getpriority(os.PRIO_PROCESS, 0) + nice)
        except OSError:
            pass  # not allowed here: train at the process's priority


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
