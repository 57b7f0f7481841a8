"""run.sh and test.sh use the virtual environment scripts/venv.sh made, wherever SEGLIB_VENV puts it."""
from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _fake_venv(tmp_path: Path, extras: str) -> Path:
    """A venv that scripts/venv.sh takes as up to date, whose python and ruff only say how they were called."""
    venv = tmp_path / "elsewhere-venv"
    (venv / "bin").mkdir(parents=True)
    for tool in ("python", "ruff"):
        exe = venv / "bin" / tool
        exe.write_text(f'#!/bin/sh\necho "{tool} $*"\n')
        exe.chmod(0o755)
    stamp = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    (venv / f".installed-{extras}").write_text(stamp + "\n")
    return venv


@pytest.mark.parametrize(("script", "extras", "expected"), [
    ("run.sh", "base", "python -m streamlit run app.py --server.port 9999"),
    ("test.sh", "dev", "python -m pytest --server.port 9999"),
])
def test_script_runs_the_python_of_seglib_venv(tmp_path, script, extras, expected):
    venv = _fake_venv(tmp_path, extras)
    # No apt-get on PATH's reach matters: chromium/postgres installs are skipped when not root or present.
    env = dict(os.environ, SEGLIB_VENV=str(venv))
    if script == "test.sh":
        env["PATH"] = f"{venv / 'bin'}:{env['PATH']}"
    out = subprocess.run(["bash", str(ROOT / script), "--server.port", "9999"], env=env, cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert expected in out.stdout
