#!/usr/bin/env bash
# Set-up plus the two entry points of the README:
#   ./dev.sh demo            set up, then run the main job on the embedded default (generated sample data)
#   ./dev.sh test [ARGS...]  set up, then run the test suite (extra ARGS go to pytest)
# Set-up is idempotent: a virtualenv in .venv (re-installed when pyproject.toml changes) and Delta's jars
# fetched once into OFFERRANK_JARS_CACHE (default ~/.cache/offerrank/jars).
set -euo pipefail
cd "$(dirname "$0")"

PYTHON=${PYTHON:-python3.11}
VENV=${OFFERRANK_VENV:-.venv}

setup() {
    command -v java >/dev/null || { echo "offerrank needs Java 17 (java not found on PATH)" >&2; exit 1; }
    command -v "$PYTHON" >/dev/null || { echo "offerrank needs Python 3.11 ($PYTHON not found; set PYTHON=...)" >&2; exit 1; }
    [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
    local stamp="$VENV/.offerrank-installed" wanted
    wanted=$(sha256sum pyproject.toml | cut -c1-16)
    if [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
        "$VENV/bin/pip" install --quiet --upgrade pip
        "$VENV/bin/pip" install --quiet -e '.[dev]'
        echo "$wanted" >"$stamp"
    fi
    "$VENV/bin/offerrank" setup
}

case "${1:-}" in
    demo)
        setup
        "$VENV/bin/offerrank" generate --start 2026-11-01 --days 7 --events-per-day 20000 --fault-rate 0.002
        "$VENV/bin/offerrank" ingest --date 2026-11-01 --through 2026-11-07
        ;;
    test)
        shift
        setup
        exec "$VENV/bin/python" -m pytest "$@"
        ;;
    *)
        echo "usage: ./dev.sh demo | ./dev.sh test [pytest args]" >&2
        exit 2
        ;;
esac
