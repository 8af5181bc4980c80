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
