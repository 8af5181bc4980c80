#!/usr/bin/env bash
# Set-up plus the two entry points of the README:
#   ./dev.sh demo            set up, then run the main job on the embedded default (generated sample data)
#   ./dev.sh test [ARGS...]  set up (plus Debian's PostgreSQL for the distributed-path tests), the static checks
#                            (ruff, import-linter, mkdocs --strict), then the whole test suite (extra ARGS go to pytest)
#   ./dev.sh test --fast     set up, the static checks, then the unit tier only (pure functions, under a minute)
#   ./dev.sh airflow         set up, then start the full local Airflow (UI on http://localhost:8080)
# Set-up is idempotent: a virtualenv in .venv (installed with uv; re-installed when pyproject.toml changes) and Delta's jars
# fetched once into OFFERRANK_JARS_CACHE (default ~/.cache/offerrank/jars).
set -euo pipefail
cd "$(dirname "$0")"

PYTHON=${PYTHON:-python3.11}
VENV=${OFFERRANK_VENV:-.venv}

# The virtualenv alone: what the fast tier needs (no Spark, no JVM).
setup_python() {
    command -v java >/dev/null || { echo "offerrank needs Java 17 (java not found on PATH)" >&2; exit 1; }
    command -v "$PYTHON" >/dev/null || { echo "offerrank needs Python 3.11 ($PYTHON not found; set PYTHON=...)" >&2; exit 1; }
    [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
    local stamp="$VENV/.offerrank-installed" wanted
    wanted=$(sha256sum pyproject.toml | cut -c1-16)
    if [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
        # uv installs the same versions as pip, in half the time from its cache (~/.cache/uv): the fast tier's budget
        "$VENV/bin/pip" install --quiet uv
        "$VENV/bin/uv" pip install --quiet --python "$VENV/bin/python" -e '.[dev,deploy]'
        echo "$wanted" >"$stamp"
    fi
}

setup() {
    setup_python
    "$VENV/bin/offerrank" setup
}

# The fast tier's checks before any test: lint and format (ruff), the import layers (import-linter), the docs site
# (mkdocs, strict: a broken link fails).
static_checks() {
    "$VENV/bin/ruff" check .
    "$VENV/bin/ruff" format --check --quiet .
    "$VENV/bin/lint-imports" --no-cache >/dev/null || "$VENV/bin/lint-imports" --no-cache
    # the type checker over src/offerrank (and jobs/ through its symlink): see pyproject.toml's [tool.mypy]
    "$VENV/bin/mypy"
    NO_MKDOCS_2_WARNING=1 "$VENV/bin/mkdocs" build --strict --quiet --site-dir "$VENV/docs-site"
}

# The system tier starts a throw-away PostgreSQL and drives Airflow's UI in headless Chromium (Playwright with the
# system browser): both from Debian's packages.
test_services() {
    local missing=()
    compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null || missing+=(postgresql)
    [ -x /usr/bin/chromium ] || missing+=(chromium)
    [ ${#missing[@]} -eq 0 ] && return
    if [ "$(id -u)" -ne 0 ]; then
        echo "the tests need Debian's ${missing[*]}: sudo apt-get install -y ${missing[*]}" >&2
        exit 1
    fi
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}") >/dev/null
}

# Embedded Airflow: SQLite metadata under var/airflow, the DAGs of this repo, Spark on local[*] behind a local Spark
# Connect server.
airflow_env() {
    export PATH="$PWD/$VENV/bin:$PATH"
    export AIRFLOW_HOME=${AIRFLOW_HOME:-$PWD/var/airflow}
    export AIRFLOW__CORE__DAGS_FOLDER=${AIRFLOW__CORE__DAGS_FOLDER:-$PWD/dags}
    export AIRFLOW__CORE__LOAD_EXAMPLES=${AIRFLOW__CORE__LOAD_EXAMPLES:-False}
    # the DAG's Spark steps run on a local Spark Connect server, started by the first of them and kept running
    export OFFERRANK_SPARK_REMOTE=${OFFERRANK_SPARK_REMOTE:-local}
    export OFFERRANK_HOME=${OFFERRANK_HOME:-$PWD/var}
    "$VENV/bin/airflow" db migrate >/dev/null
}

case "${1:-}" in
    demo)
        setup
        airflow_env
        # the demo leaves no Spark Connect server behind (`./dev.sh airflow` keeps the one its runs start)
        trap '"$VENV/bin/offerrank" spark-server stop >/dev/null' EXIT
        "$VENV/bin/offerrank" generate --start 2026-11-01 --days 7 --events-per-day 20000 --fault-rate 0.002
        "$VENV/bin/offerrank" apply -f "$OFFERRANK_HOME/sample/catalog.yaml"
        "$VENV/bin/offerrank" ingest --date 2026-11-01 --through 2026-11-06
        # The nightly DAG, through Airflow itself, for the last day: a run of now (as a trigger from the UI makes)
        # with the run date as its parameter, so the UI shows its real start and duration.
        "$VENV/bin/airflow" dags test offer_ranking -c '{"run_date": "2026-11-07"}' >"$AIRFLOW_HOME/demo-run.log" 2>&1 \
            && grep -q "DagRun Finished: .*state=success" "$AIRFLOW_HOME/demo-run.log" \
            || { tail -40 "$AIRFLOW_HOME/demo-run.log"; echo "the offer_ranking run failed" >&2; exit 1; }
        echo "Airflow run of offer_ranking for 2026-11-07 succeeded (log: $AIRFLOW_HOME/demo-run.log)"
        "$VENV/bin/offerrank" rankings show --top 3
        ;;
    airflow)
        setup
        airflow_env
        exec "$VENV/bin/airflow" standalone
        ;;
    test)
        shift
        if [ "${1:-}" = "--fast" ]; then
            shift
            setup_python
            static_checks
            exec "$VENV/bin/python" -m pytest -m unit "$@"
        fi
        setup
        static_checks
        test_services
        # two workers by default (pytest-xdist): one runs the DAG runs and the deployment's services test after
        # test, the other the rest a file at a time (tests/conftest.py says how); on 2 cores the two overlap one's
        # waits for services and JVMs with the other's work. OFFERRANK_TEST_WORKERS=1: one process.
        workers=${OFFERRANK_TEST_WORKERS:-2}
        if [ "$workers" -gt 1 ]; then
            exec "$VENV/bin/python" -m pytest -n "$workers" --dist loadscope --no-loadscope-reorder "$@"
        fi
        exec "$VENV/bin/python" -m pytest "$@"
        ;;
    *)
        echo "usage: ./dev.sh demo | ./dev.sh test [--fast] [pytest args] | ./dev.sh airflow" >&2
        exit 2
        ;;
esac
