#!/usr/bin/env bash
# Start the app (on the embedded demo dataset unless you pick another one in the sidebar).
#   ./run.sh                 -> http://localhost:8501
#   ./run.sh --server.port 9000 --server.address 0.0.0.0
set -euo pipefail
cd "$(dirname "$0")"
scripts/venv.sh
export NO_ALBUMENTATIONS_UPDATE=1 HF_HUB_OFFLINE=1
exec .venv/bin/python -m streamlit run app.py "$@"
