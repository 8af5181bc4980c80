"""The offerrank command line, run as a user runs it."""

from __future__ import annotations

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
    result = run_cli("generate", "--start", "2026-11-01", "--days", "2", "--events-per-day", "500",
                     "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "wrote 1,0" in result.stdout and str(tmp_path / "events") in result.stdout
    assert sorted(p.name for p in (tmp_path / "events").iterdir()) == ["2026-11-01", "2026-11-02"]


def test_bad_date_is_refused_with_a_message(tmp_path):
    result = run_cli("generate", "--start", "2026-13-01", "--out", str(tmp_path))
    assert result.returncode == 2
    assert "not a date in YYYY-MM-DD form" in result.stderr
