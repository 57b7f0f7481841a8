#!/usr/bin/env bash
# Create .venv and install requirements when they changed since the last install.
# Usage: scripts/venv.sh [requirements file]   (sourced by run.sh and test.sh)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
req="${1:-requirements.txt}"
venv="${SEGLIB_VENV:-$here/.venv}"
python="${PYTHON:-python3}"
if [ ! -x "$venv/bin/python" ]; then
  echo "creating virtual environment in $venv" >&2
  "$python" -m venv "$venv"
fi
stamp="$venv/.installed-$(basename "$req")"
want="$(cat "$here/requirements.txt" "$here/$req" | sha256sum | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "installing $req into $venv (first time: a few minutes)" >&2
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$here/$req"
  echo "$want" > "$stamp"
fi
