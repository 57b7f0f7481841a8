#!/usr/bin/env bash
# Start the app (on the embedded demo dataset unless you pick another one in the sidebar).
#   ./run.sh                 -> http://localhost:8501 (this machine only: .streamlit/config.toml)
#   ./run.sh --server.port 9000
# On a remote machine use an SSH tunnel; to serve a team see README, "Running on a server".
set -euo pipefail
cd "$(dirname "$0")"
scripts/venv.sh
export NO_ALBUMENTATIONS_UPDATE=1 HF_HUB_OFFLINE=1
exec .venv/bin/python -m streamlit run app.py "$@"
