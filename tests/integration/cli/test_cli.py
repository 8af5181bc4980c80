"""The offerrank command line, run as a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys


def run_cli(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "offerrank.cli", *args], capture_output=True, text=True, **kwargs)


def test_help_lists_commands_with_descriptions():
    result = run_cli("--help")
    assert result.returncode == 0
    for command in ("generate", "setup", "settings"):
        assert command in result.stdout
    assert "write sample events" in result.stdout


def test_generate_prints_where_and_how_many(tmp_path):
    result = run_cli(
        "generate", "--start", "2026-11-01", "--days", "2", "--events-per-day", "500", "--out", str(tmp_path)
    )
    assert result.returncode == 0, result.stderr
    assert "wrote 1,0" in result.stdout and str(tmp_path / "events") in result.stdout
    assert sorted(p.name for p in (tmp_path / "events").iterdir()) == ["2026-11-01", "2026-11-02"]


def test_bad_date_is_refused_with_a_message(tmp_path):
    result = run_cli("generate", "--start", "2026-13-01", "--out", str(tmp_path))
    assert result.returncode == 2
    assert "not a date in YYYY-MM-DD form" in result.stderr


def test_lookup_prints_the_ranked_offers_and_refuses_unknown_placements(ranked_warehouse):
    home = ["--home", str(ranked_warehouse.home)]
    result = run_cli(*home, "lookup", "--placement", "home-hero", "--channel", "web", "--limit", "2", "--json")
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["placement_id"] == "home-hero" and len(answer["offers"]) == 2 and answer["offers"][0]["rank"] == 1
    text = run_cli(*home, "lookup", "--placement", "checkout-banner", "--channel", "web", "--limit", "2")
    assert text.returncode == 0 and "no published ranking: fallback" in text.stdout and "#1" in text.stdout
    unknown = run_cli(*home, "lookup", "--placement", "nowhere", "--channel", "web")
    assert unknown.returncode == 2 and "unknown placement 'nowhere'" in unknown.stderr


def test_rankings_show_lists_the_top_offers_without_spark(ranked_warehouse):
    result = run_cli("--home", str(ranked_warehouse.home), "rankings", "show", "--top", "1")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0].startswith("published ranking version")
    assert sum(" #1 " in line for line in result.stdout.splitlines()) == 3


def run_cli_without_spark(*args: str) -> subprocess.CompletedProcess:
    """Run the CLI listing every module it imports (`-X importtime`, on stderr); assert it never imported pyspark,
    so it started no JVM."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "offerrank.cli", *args], capture_output=True, text=True
    )
    imported = [
        line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines() if line.startswith("import time:")
    ]
    assert imported and not [name for name in imported if name.split(".")[0] in ("pyspark", "py4j")], args
    return result


def test_registry_commands_read_and_write_the_registry_without_spark(tmp_path):
    from datetime import date

    from offerrank.sim.generator import generate

    generate(tmp_path / "sample", date(2026, 11, 1), days=1, events_per_day=200)
    home, catalog = ["--home", str(tmp_path)], str(tmp_path / "sample" / "catalog.yaml")
    applied = run_cli_without_spark(*home, "apply", "-f", catalog)
    assert applied.returncode == 0, applied.stderr
    assert "left alone: 0 entities\nregistry version: 0 (by " in applied.stdout
    assert "registry unchanged" in run_cli_without_spark(*home, "apply", "-f", catalog).stdout
    listed = run_cli_without_spark(*home, "models", "list")
    assert listed.returncode == 0, listed.stderr
    assert [line.split()[:3] for line in listed.stdout.splitlines()[1:]] == [
        ["auto-email", "auto_optimization", "active"],
        ["auto-web", "auto_optimization", "active"],
        ["personalized-mobile", "personalized", "active"],
    ]
    updated = run_cli_without_spark(*home, "models", "update", "auto-web", "--exploration-share", "0.3")
    assert updated.returncode == 0 and "registry version 1" in updated.stdout, updated.stderr
    assert '"exploration_share": 0.3' in run_cli_without_spark(*home, "models", "show", "auto-web").stdout
    history = run_cli_without_spark(*home, "models", "history", "auto-web").stdout.strip().splitlines()
    assert [line.split(maxsplit=5)[4:] for line in history[1:]] == [
        ["active", "created"],
        ["active", "exploration_share 0.1 -> 0.3"],
    ]
    validated = run_cli_without_spark(*home, "catalog", "validate", "--file", catalog)
    assert validated.returncode == 0 and ": valid (1 datasets" in validated.stdout, validated.stderr


def test_rankings_history_and_rollback_run_without_spark(ranked_warehouse, tmp_path):
    from tests.factories import published_ranking, warehouse_copy

    settings = warehouse_copy(ranked_warehouse, tmp_path)
    published_ranking(settings)
    home = ["--home", str(tmp_path)]
    rolled = run_cli_without_spark(*home, "rankings", "rollback", "--to-version", "1")
    assert rolled.returncode == 0, rolled.stderr
    history = run_cli_without_spark(*home, "rankings", "history")
    assert history.returncode == 0 and [line.split()[2] for line in history.stdout.splitlines()] == [
        "published",
        "rolled_back",
    ]
