"""Quarantine routing shared by the ingest and profiles jobs: every record-level expectation of a versioned suite
becomes a reason code on the rows that fail it, each code has a sentence, and the job checks that what it routed
equals what Great Expectations counted (the suite is the one source of each rule); and the rows the `quarantine`
table holds: each rejected record with its codes and sentence, each damaged data file (`damaged_file`) and each
symbolic link (`symbolic_link`, never followed) as one row.
"""

from __future__ import annotations

from datetime import date

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from offerrank.engines.landing import LINK_NOT_FOLLOWED, as_uri
from offerrank.engines.quality import CODE_FROM_VALUE, ExpectationOutcome, failure_predicates
from offerrank.events.xdm import PARSE_REASONS, map_values

DAMAGED_FILE = "damaged_file"  # the quarantine code of a data file that cannot be read whole
SYMBOLIC_LINK = "symbolic_link"  # the quarantine code of a link in a landing folder, never followed


def quarantine_reasons(suite: dict, *extra: dict[str, str]) -> dict[str, str]:
    """Reason code -> sentence: the suite's expectations (`meta.quarantine_code` / `meta.reason`), the parse
    reasons and any `extra` codes of the job."""
    reasons = {e["meta"]["quarantine_code"]: e["meta"]["reason"] for e in suite["expectations"]}
    for more in (PARSE_REASONS, *extra):
        reasons.update(more)
    return reasons


def route_records(parsed: DataFrame, record_suite: dict, parameters: dict) -> DataFrame:
    """Add `reason_codes`: every record-level expectation the record fails (empty array = valid)."""
    codes = [column for _, column in failure_predicates(record_suite, parameters)]
    # The codes are distinct, so removing the nulls as a set difference keeps every code once, in suite order; it is
    # compiled to code, where a `filter` lambda is interpreted for each of the ~20 codes of every record.
    no_code = F.array(F.lit(None).cast("string"))
    return parsed.withColumn("reason_codes", F.array_except(F.array(*codes), no_code))


def reason_sentences(reasons: dict[str, str]) -> Column:
    """The `reason_codes` of a rejected row as one human sentence per code, joined by '; '."""
    return F.array_join(F.transform("reason_codes", lambda c: map_values(c, reasons)), "; ")


def check_routing_agrees(outcomes: list[ExpectationOutcome], routed_counts: dict[str, int]) -> None:
    """GX's unexpected counts must equal the rows the job routed per code: the suite is the one rule source."""
    for outcome in outcomes:
        code = outcome.quarantine_code
        expected = (
            sum(n for c, n in routed_counts.items() if c in PARSE_REASONS)
            if code == CODE_FROM_VALUE
            else 0
            if code is None
            else routed_counts.get(code, 0)
        )
        if (outcome.unexpected_count or 0) != expected:
            raise RuntimeError(
                f"record routing disagrees with Great Expectations for {outcome.expectation}({outcome.column}): "
                f"GX found {outcome.unexpected_count}, the job routed {expected}"
            )


def to_quarantine(rejected: DataFrame, reasons: dict[str, str], run_date: date, run_id: str) -> DataFrame:
    """Rejected records with their reason codes and one human sentence."""
    return rejected.select(
        F.lit(run_date).alias("run_date"),
        F.lit(run_id).alias("run_id"),
        "source_file",
        "event_id",
        "reason_codes",
        reason_sentences(reasons).alias("reasons"),
        "raw",
    )


def file_quarantine(
    spark: SparkSession, damaged_files: dict[str, str], links: list[str], run_date: date, run_id: str
) -> DataFrame:
    """One quarantine row per damaged data file (`damaged_file`) and per symbolic link (`symbolic_link`), with no
    event id nor text: none of it was read."""
    rows = [
        (run_date, run_id, as_uri(path), None, [DAMAGED_FILE], f"the file could not be read whole: {why}", None)
        for path, why in sorted(damaged_files.items())
    ]
    # a link's own name, never where it points
    rows += [(run_date, run_id, link_uri(link), None, [SYMBOLIC_LINK], LINK_NOT_FOLLOWED, None) for link in links]
    schema = (
        "run_date date, run_id string, source_file string, event_id string, reason_codes array<string>, "
        "reasons string, raw string"
    )
    return spark.createDataFrame(rows, schema)


def link_uri(link: str) -> str:
    """A symbolic link's location as a URI, without following it."""
    parent, _, name = link.rpartition("/")
    return f"{as_uri(parent)}/{name}"
