"""Is a run still training? A run's status.json records the pid and host of the process that
writes it; a run that says ``running`` but whose process is gone was interrupted (an app
restart, a kill, a crash) and can be resumed from its last finished epoch."""
from __future__ import annotations

import os
import socket
from pathlib import Path

from .runs import list_runs


def process_alive(pid: int | None, host: str | None) -> bool:
    """Whether the process that wrote a status may still be training. Another host's process
    cannot be checked from here, so it counts as alive; a zombie counts as dead."""
    if not pid or (host and host != socket.gethostname()):
        return bool(pid)
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def mark_interrupted(root: str | os.PathLike | None = None, skip=()) -> list[str]:
    """Mark runs under ``root`` whose status says running but whose process is gone as
    ``interrupted`` (with why, in ``error``), except those named in ``skip``. Returns their names."""
    marked = []
    for run in list_runs(root):
        if run.name in skip:
            continue
        status = run.read_status()
        if status.get("status") != "running" or process_alive(status.get("pid"), status.get("host")):
            continue
        why = (f"the process training it (pid {status.get('pid')}) ended during epoch "
               f"{int(status.get('epoch') or 0) + 1}; resume to continue from the last finished epoch")
        run.write_status("interrupted", error=why, interrupted_pid=status.get("pid"))
        run.log(f"interrupted: {why}")
        marked.append(run.name)
    return marked
