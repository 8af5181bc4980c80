"""Great Expectations glue: versioned suites from `expectations/`, validation of Spark (or, for a few summary rows,
pandas) DataFrames, data docs.

A suite file is the single source of a rule. `DataQualityRun.validate` runs it with GX and writes the data docs;
`failure_predicates` turns the same record-level expectations into Spark columns, so the job can route each
failing row to quarantine under the expectation's `meta.quarantine_code`.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

DOCS_SITE = "offerrank"  # the one data docs site every job adds its validations to
CODE_FROM_VALUE = "$value"  # meta.quarantine_code meaning "the failing column's value is the code"


@dataclass(frozen=True)
class ExpectationOutcome:
    """One expectation's result, as stored in `dq_results`."""

    suite: str
    expectation: str
    column: str
    quarantine_code: str | None
    success: bool
    unexpected_count: int | None
    observed: str | None


def load_suite(expectations_dir: Path, name: str) -> dict[str, Any]:
    """The suite `name` as stored in `expectations/<name>.json`."""
    path = expectations_dir / f"{name}.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"expectation suite {name!r} not found at {path}") from None


def _resolve(value: Any, parameters: dict[str, Any]) -> Any:
    if isinstance(value, dict) and "$PARAMETER" in value:
        return parameters[value["$PARAMETER"]]
    return value


_OPERATORS = {
    "==": lambda c, p: c == p,
    "!=": lambda c, p: c != p,
    "<": lambda c, p: c < p,
    "<=": lambda c, p: c <= p,
    ">": lambda c, p: c > p,
    ">=": lambda c, p: c >= p,
    "IN": lambda c, p: c.isin(p),
    "NOT_IN": lambda c, p: ~c.isin(p),
}


def _row_condition(condition: dict[str, Any]) -> Column:
    """A GX row condition (its serialized Condition form) as a Spark filter: a row it leaves out is not checked."""
    kind = condition["type"]
    if kind in ("and", "or"):
        parts = [_row_condition(part) for part in condition["conditions"]]
        combined = parts[0]
        for part in parts[1:]:
            combined = (combined & part) if kind == "and" else (combined | part)
        return combined
    column = F.col(condition["column"]["name"])
    if kind == "nullity":
        return column.isNull() if condition["is_null"] else column.isNotNull()
    if kind == "comparison":
        return _OPERATORS[condition["operator"]](column, condition["parameter"])
    raise ValueError(f"unsupported row condition type {kind!r}")


def _passes(expectation: dict[str, Any], parameters: dict[str, Any]) -> Column:
    """The Spark condition under which a row meets the expectation, with GX's null semantics."""
    kind, kwargs = expectation["type"], expectation["kwargs"]
    if kind == "expect_column_pair_values_to_be_equal":
        a, b = F.col(kwargs["column_A"]), F.col(kwargs["column_B"])
        return a.isNull() | b.isNull() | (a == b)
    column = F.col(kwargs["column"])
    if kind == "expect_column_values_to_not_be_null":
        return column.isNotNull()
    if kind == "expect_column_values_to_be_in_set":
        return column.isNull() | column.isin(kwargs["value_set"])
    if kind == "expect_column_values_to_match_regex":
        return column.isNull() | column.rlike(kwargs["regex"])
    if kind == "expect_column_values_to_be_between":
        condition = F.lit(True)
        minimum, maximum = _resolve(kwargs.get("min_value"), parameters), _resolve(kwargs.get("max_value"), parameters)
        if minimum is not None:
            condition = condition & (column >= F.lit(minimum))
        if maximum is not None:
            condition = condition & (column <= F.lit(maximum))
        return column.isNull() | condition
    raise ValueError(f"no row routing is defined for {kind}; use it in a dataset-level suite instead")


def failure_predicates(suite: dict[str, Any], parameters: dict[str, Any]) -> list[tuple[str, Column]]:
    """Per record-level expectation, (its quarantine code, a Column that is the code when the row fails, else null)."""
    predicates = []
    for expectation in suite["expectations"]:
        kwargs = expectation["kwargs"]
        applies = _row_condition(kwargs["row_condition"]) if "row_condition" in kwargs else F.lit(True)
        code = expectation["meta"]["quarantine_code"]
        code_column = F.col(kwargs["column"]) if code == CODE_FROM_VALUE else F.lit(code)
        failing = F.coalesce(applies, F.lit(False)) & ~_passes(expectation, parameters)
        predicates.append((code, F.when(failing, code_column)))
    return predicates


def checked_columns(suite: dict[str, Any]) -> list[str]:
    """The columns the suite's expectations and their row conditions read, in suite order: all GX needs to see."""

    def named(condition: dict[str, Any]) -> list[str]:
        if condition["type"] in ("and", "or"):
            return [name for part in condition["conditions"] for name in named(part)]
        return [condition["column"]["name"]]

    columns = []
    for expectation in suite["expectations"]:
        kwargs = expectation["kwargs"]
        columns += [kwargs[key] for key in ("column", "column_A", "column_B") if key in kwargs]
        columns += named(kwargs["row_condition"]) if "row_condition" in kwargs else []
    return list(dict.fromkeys(columns))


@dataclass(frozen=True)
class _GxContext:
    """GX's module, the ephemeral context with the run's docs site, and its Spark and pandas data sources."""

    gx: Any
    context: Any
    spark_source: Any
    pandas_source: Any

    @classmethod
    def start(cls, docs_dir: str) -> _GxContext:
        os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig

        context = gx.get_context(mode="ephemeral")
        context.variables.progress_bars = ProgressBarsConfig(globally=False)
        context.add_data_docs_site(
            site_name=DOCS_SITE,
            site_config={
                "class_name": "SiteBuilder",
                "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": docs_dir},
                "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
            },
        )
        # The job caches what it validates already; GX persisting it again would double the memory.
        spark_source = context.data_sources.add_spark("offerrank", persist=False)
        return cls(gx, context, spark_source, context.data_sources.add_pandas("offerrank-summaries"))


class DataQualityRun:
    """One ephemeral GX context per job run: its validations share one data docs site and index, built once when
    the run's validations are done (`with DataQualityRun(docs_dir) as quality:`), not once per validation.

    Importing GX and starting its context take seconds in a new process: they run in a background thread from the
    moment the run is created, while the job reads its data, and the first validation waits for them."""

    def __init__(self, docs_dir: str):
        self.docs_dir = docs_dir
        self.validated = 0
        background = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gx-start")
        self._started = background.submit(_GxContext.start, docs_dir)
        background.shutdown(wait=False)

    def __enter__(self) -> DataQualityRun:
        return self

    def __exit__(self, *_) -> None:
        """Add the run's validations to the data docs, also when the job failed after some."""
        if self.validated:
            self._started.result().context.build_data_docs(site_names=[DOCS_SITE])

    @property
    def index_page(self) -> str:
        return f"{self.docs_dir.rstrip('/')}/index.html"

    def validate(
        self, frame: DataFrame | pd.DataFrame, suite: dict[str, Any], parameters: dict[str, Any], run_name: str
    ) -> list[ExpectationOutcome]:
        """Validate `frame` against `suite` with Great Expectations (on Spark, or in memory for a pandas frame); its
        result joins the run's data docs when the run's validations are done."""
        started = self._started.result()
        from great_expectations.core.expectation_suite import ExpectationSuite

        gx_suite = started.context.suites.add(
            ExpectationSuite(name=suite["name"], expectations=suite["expectations"], meta=suite.get("meta"))
        )
        source = started.pandas_source if isinstance(frame, pd.DataFrame) else started.spark_source
        batch = source.add_dataframe_asset(suite["name"]).add_batch_definition_whole_dataframe(run_name)
        definition = started.context.validation_definitions.add(
            started.gx.ValidationDefinition(name=run_name, data=batch, suite=gx_suite)
        )
        result = definition.run(
            batch_parameters={"dataframe": frame},
            expectation_parameters=parameters,
            # Counts, no sample of failing values: a sample is a Spark job per expectation (a full scan when few
            # rows fail), and the quarantine holds every failing record with its reasons anyway.
            result_format={"result_format": "SUMMARY", "partial_unexpected_count": 0},
        )
        self.validated += 1
        return [_outcome(suite["name"], item) for item in result.results]


def _outcome(suite_name: str, item: Any) -> ExpectationOutcome:
    config = item.expectation_config
    observed = item.result.get("observed_value")
    column = config.kwargs.get("column") or f"{config.kwargs.get('column_A')}={config.kwargs.get('column_B')}"
    return ExpectationOutcome(
        suite=suite_name,
        expectation=config.type,
        column=column,
        quarantine_code=(config.meta or {}).get("quarantine_code"),
        success=bool(item.success),
        unexpected_count=item.result.get("unexpected_count"),
        observed=None if observed is None else str(observed),
    )
