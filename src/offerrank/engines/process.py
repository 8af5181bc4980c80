"""How offerrank's processes end: every entry point (the `offerrank` CLI, the Spark jobs under spark-submit) exits
through `exit_cleanly`.

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
