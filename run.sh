#!/usr/bin/env bash
# Start the app (on the embedded demo dataset unless you pick another one in the sidebar).
#   ./run.sh                 -> http://localhost:8501 (this machine only: .streamlit/config.toml)
#   ./run.sh --server.port 9000
#   ./run.sh --dev           for editing the app: reruns on save, errors shown whole
# On a remote machine use an SSH tunnel; to serve a team see README, "Running on a server".
set -euo pipefail
cd "$(dirname "$0")"
scripts/venv.sh
venv="${SEGLIB_VENV:-$PWD/.venv}"   # where scripts/venv.sh put it
export NO_ALBUMENTATIONS_UPDATE=1 HF_HUB_OFFLINE=1
args=()
for a in "$@"; do
  if [ "$a" = "--dev" ]; then
    # Poll the app's own modules (watchdog would watch .venv too); show tracebacks in the page.
    args+=(--server.fileWatcherType poll --server.runOnSave true --client.showErrorDetails full)
  else
    args+=("$a")
  fi
done
exec "$venv"/bin/python -m streamlit run app.py "${args[@]}"
