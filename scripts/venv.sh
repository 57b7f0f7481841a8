#!/usr/bin/env bash
# Create .venv and install seglib (editable) with the dependencies listed in pyproject.toml; do it
# again only when pyproject.toml changed since, or when extras are asked for that are not in yet.
# Usage: scripts/venv.sh [EXTRAS]     run.sh: no extras (the app);  test.sh: dev (pytest, playwright, ruff)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
extras="${1:-}"
venv="${SEGLIB_VENV:-$here/.venv}"
python="${PYTHON:-python3}"
if [ ! -x "$venv/bin/python" ]; then
  echo "creating virtual environment in $venv" >&2
  "$python" -m venv "$venv"
fi
want="$(sha256sum "$here/pyproject.toml" | cut -d' ' -f1)"
stamp="$venv/.installed-${extras:-base}"
# What dev installs is a superset of the base install: it satisfies run.sh too.
for have in "$stamp" "$venv/.installed-dev"; do
  if [ -f "$have" ] && [ "$(cat "$have")" = "$want" ] && { [ -z "$extras" ] || [ "$have" = "$stamp" ]; }; then
    exit 0
  fi
done
echo "installing seglib${extras:+[$extras]} and its dependencies into $venv (first time: a few minutes)" >&2
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -e "$here${extras:+[$extras]}"
echo "$want" > "$stamp"
