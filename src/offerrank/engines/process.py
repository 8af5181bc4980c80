"""How offerrank's processes start and end: every entry point (the `offerrank` CLI, the Spark jobs under
spark-submit) configures logging once with `configure_logging` and exits through `exit_cleanly`.

offerrank's modules log through `logging.getLogger(__name__)`: under Airflow the task's handlers show those records
in the task log; elsewhere `configure_logging` sends them to stderr (the CLI prints its summaries to stdout).

A normal interpreter exit runs C++ static destructors while native thread pools may still hold threads (pyarrow's,
and delta-rs' runtime behind `deltalake`); about one exit in 30-90 then aborts with "terminate called without an
active exception" (SIGABRT, exit -6 / 134) after the work succeeded, and an orchestrator retries a finished run.
So, like Airflow's own task processes, we stop Spark, flush what was printed and end the process with `os._exit`.
"""

from __future__ import annotations

import logging
import os
import sys
from contextlib import suppress
from typing import NoReturn

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
LOG_LEVEL = "OFFERRANK_LOG_LEVEL"  # the environment variable of offerrank's log level (default INFO)


def configure_logging(level: str | None = None) -> None:
    """Log offerrank's records (`level`, else $OFFERRANK_LOG_LEVEL, else INFO) and others' warnings to stderr.

    Adds no handler when the process already has one (an Airflow task, pytest): its handlers show the records. A
    job file run by spark-submit is `__main__`, so its logger is leveled too."""
    name = (level or os.environ.get(LOG_LEVEL, "INFO")).strip().upper()
    number = logging.getLevelName(name)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.WARNING, format=LOG_FORMAT, datefmt="%H:%M:%S", stream=sys.stderr)
    for logger in ("offerrank", "__main__"):
        logging.getLogger(logger).setLevel(number if isinstance(number, int) else logging.INFO)
    if not isinstance(number, int):
        logging.getLogger("offerrank").warning("%s=%s is not a log level; using INFO", LOG_LEVEL, name)


def exit_cleanly(code: int) -> NoReturn:
    """Stop this process's SparkSession (if any), flush output and logs, and exit with `code` at once."""
    if "pyspark" in sys.modules:
        from pyspark.sql import SparkSession

        session = SparkSession.getActiveSession()
        if session is not None:
            session.stop()
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with suppress(ValueError, OSError):
            stream.flush()
    os._exit(code)
