#!/usr/bin/env bash
# Run the whole test suite on the CPU: the linter (ruff), then the library, pages (AppTest) and,
# when Debian's chromium is present (installed here if we are root with apt-get), real-browser tests;
# PostgreSQL store tests against Debian's postgresql (installed likewise; the dev extra brings psycopg).
#   ./test.sh                 everything but slow/GPU tests
#   ./test.sh -m slow         only the slow ones;  ./test.sh tests/test_stats.py -k cache
set -euo pipefail
cd "$(dirname "$0")"
scripts/venv.sh dev
venv="${SEGLIB_VENV:-$PWD/.venv}"   # where scripts/venv.sh put it
if [ ! -x /usr/bin/chromium ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "installing Debian's chromium for the browser tests" >&2
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
    || echo "chromium could not be installed: browser tests will be skipped" >&2
fi
if ! ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "installing Debian's postgresql for the review store's PostgreSQL tests" >&2
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null) \
    || echo "postgresql could not be installed: tests/test_postgres.py will be skipped" >&2
fi
"$venv"/bin/ruff check .
export NO_ALBUMENTATIONS_UPDATE=1 HF_HUB_OFFLINE=1 MPLBACKEND=Agg
exec "$venv"/bin/python -m pytest "$@"
