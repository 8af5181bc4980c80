"""Builders of test inputs shared by the tiers (plain functions; the fixtures that use them live in conftest)."""

from __future__ import annotations

import socket
from datetime import date, datetime
from pathlib import Path

from offerrank.tables import OFFER_RANKINGS, PARAMETER_COLUMNS, Reason

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
DATA = TESTS / "data"

# Offers the sample catalog of the `ranked_warehouse` fixture (seed 5) makes eligible: the lookup drops the others.
AI_PLACEMENTS = {
    ("dp-web-home", "home-hero", "web"): ["offer-009", "offer-010", "offer-014", "offer-019", "offer-021"],
    ("dp-newsletter", "newsletter-top", "email"): ["offer-006", "offer-008", "offer-014"],
}
PRIORITY_PLACEMENTS = {("dp-web-home", "product-sidebar", "web"): ["offer-019", "offer-017", "offer-010"]}


# The tests' own Spark session works on inline rows and days of a few thousand events: besides one shuffle partition
# (its settings' `spark_shuffle_partitions=1`, which also sizes Delta's log replay), no whole-stage code generation
# nor adaptive re-planning, whose Janino compiles and JIT of generated classes cost more than such data (three
# generated nights of 6,000 events: 94 s instead of 136 s). The system tier's DAG runs keep the product's defaults
# (the cluster's run of a 3,000-event day uses this conf too).
SMALL_INPUT_SPARK_CONF = {
    "spark.sql.codegen.wholeStage": "false",
    "spark.sql.codegen.factoryMode": "NO_CODEGEN",
    "spark.sql.adaptive.enabled": "false",
}


def ranking_rows(version: int) -> list[dict]:
    """A complete ranking (rows of `offer_rankings`) whose order and posteriors differ by `version` (rotated
    offers, alpha grows)."""
    import numpy as np

    from offerrank.learning.bandit import probability_best

    rows = []
    for (decision, placement, channel), offers in {**AI_PLACEMENTS, **PRIORITY_PLACEMENTS}.items():
        ai = (decision, placement, channel) in AI_PLACEMENTS
        turn = version % len(offers)
        alphas = 10.0 * version + 20 - np.arange(1, len(offers) + 1)
        p_best = probability_best(alphas, np.full(len(offers), 400.0), seed=version) if ai else [None] * len(offers)
        for rank, offer in enumerate(offers[turn:] + offers[:turn], 1):
            alpha, beta = (alphas[rank - 1], 400.0) if ai else (None, None)
            rows.append(
                {
                    "ranking_version": version,
                    "model_name": "auto-web" if ai else "priority",
                    "decision_id": decision,
                    "placement_id": placement,
                    "channel": channel,
                    "segment": "*",
                    "rank": rank,
                    "offer_id": offer,
                    "score": alpha / (alpha + beta) if ai else 100.0 - rank,
                    "p_best": float(p_best[rank - 1]) if ai else None,
                    "traffic_share": None,
                    "alpha": float(alpha) if ai else None,
                    "beta": beta,
                    "impressions": 400,
                    "conversions": 10,
                    "reason": (Reason.MODEL if ai else Reason.PRIORITY).value,
                    **dict.fromkeys(PARAMETER_COLUMNS),
                    "as_of_date": date(2026, 11, version),
                    "run_id": f"run-{version}",
                    "published_at": datetime(2026, 11, version, 3),
                }
            )
    return rows


def published_order(version: int, placement: str) -> list[str]:
    """The offer ids of `placement` in ranking `version`, first to last."""
    rows = sorted((r for r in ranking_rows(version) if r["placement_id"] == placement), key=lambda r: r["rank"])
    return [row["offer_id"] for row in rows]


def publish_rows(settings, rows: list[dict]) -> int:
    """Replace `offer_rankings` in one commit, as the publish step does; returns the new table version."""
    import pandas as pd

    from offerrank.engines.delta_rs import write_frame

    return write_frame(settings, OFFER_RANKINGS, pd.DataFrame(rows), "overwrite")


def published_ranking(settings) -> None:
    """Ranking version 1 published and recorded in `ranking_runs`, as the publish step leaves it (no Spark)."""
    from datetime import UTC

    from offerrank.jobs.publish import Publisher

    version = publish_rows(settings, ranking_rows(1))
    Publisher(settings).record(
        ranking_version=1,
        run_date=date(2026, 11, 1),
        run_id="run-1",
        status="published",
        placements=3,
        offers=13,
        rankings_table_version=version,
        published_at=datetime(2026, 11, 1, 3, tzinfo=UTC),
    )


def prepared_home(spark, home: Path, first: date) -> None:
    """A home with two generated days from `first` (3,000 events each), the sample catalog applied and the first day
    ingested: the input of the DAG runs of the system tier."""
    from offerrank.catalog import load_catalog
    from offerrank.catalog.registry import Registry
    from offerrank.jobs.ingest import run as run_ingest
    from offerrank.settings import load_settings
    from offerrank.sim.generator import generate

    generate(home / "sample", first, days=2, seed=9, events_per_day=3_000)
    settings = load_settings(home=home)
    Registry(settings).commit(load_catalog(home / "sample" / "catalog.yaml"), datetime(2026, 11, 24))
    assert run_ingest(spark, settings, first).success


def warehouse_copy(settings, home: Path, **overrides):
    """Settings of a copy of `settings`' warehouse under `home` (with `overrides`): a test that changes it leaves the
    original to the tests that share it. The catalog's landing folders are read in place."""
    import shutil

    from offerrank.settings import load_settings

    shutil.copytree(settings.warehouse, home / "warehouse")
    return load_settings(home=home, **overrides)


def free_port() -> int:
    """A TCP port nothing listens on now (for a throw-away service)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def hostile_files(folder: Path) -> list[tuple[Path, str]]:
    """Files a user may pass as a catalog or a world that YAML or Python cannot read (issue #54, item 15), each
    with the problem the one-line error names."""
    files = {
        "huge-int.yaml": (
            "offers:\n  - id: a\n    priority: " + "9" * 5000 + "\n",
            r"a number has more than 4300 digits",
        ),
        "deep.yaml": ("offers: " + "[" * 5000 + "]" * 5000 + "\n", r"nested too deeply"),
        "latin-1.yaml": ("offers:\n  - id: café\n".encode("latin-1"), r"is not UTF-8 text \(byte 0xe9 at offset 19\)"),
        "broken.yaml": ("offers: [1, 2\n", r"not valid YAML: line 2, column 1: expected ',' or '\]', but got"),
        "month.yaml": ("start: 2026-13-01\n", r"not valid YAML: month must be in 1..12"),
    }
    cases = []
    for name, (content, problem) in files.items():
        path = folder / name
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
        cases.append((path, problem))
    (folder / "folder.yaml").mkdir()
    cases.append((folder / "folder.yaml", r"is a folder, not a \w+ file"))
    return cases
