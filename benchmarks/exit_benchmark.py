"""Benchmark: how often the `offerrank` command aborts at exit, with a plain interpreter exit and with offerrank's.

Publishes one ranking into a fresh warehouse (no Spark), then runs a JVM-free command that reads and writes the
ranking tables with `deltalake` (`offerrank rankings rollback --to-version 1`) N times each way, two at a time:
1. `sys.exit(main())`: the interpreter's normal exit (what `offerrank` did before `offerrank.engines.process`);
2. the `offerrank` entry point, which ends through `exit_cleanly`.
Prints the exit codes seen and the abort rate of each.

    python benchmarks/exit_benchmark.py [--runs 300] [--workdir /tmp/offerrank-exits]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.factories import published_ranking  # noqa: E402

PLAIN_EXIT = "import sys; from offerrank.cli import main; sys.exit(main())"


def exit_code(command: list[str], env: dict[str, str]) -> int:
    return subprocess.run(command, capture_output=True, env=env).returncode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/offerrank-exits"))
    args = parser.parse_args()

    from offerrank.settings import load_settings

    shutil.rmtree(args.workdir, ignore_errors=True)
    settings = load_settings(home=args.workdir)
    published_ranking(settings)
    env = {**os.environ, "OFFERRANK_HOME": str(args.workdir)}
    command_args = ["rankings", "rollback", "--to-version", "1"]
    ways = {
        "plain interpreter exit": [sys.executable, "-c", PLAIN_EXIT, *command_args],
        "offerrank entry point": [shutil.which("offerrank", path=str(Path(sys.executable).parent)), *command_args],
    }
    for name, command in ways.items():
        with ThreadPoolExecutor(2) as pool:
            codes = Counter(pool.map(lambda _, c=command: exit_code(c, env), range(args.runs)))
        aborts = args.runs - codes[0]
        print(f"{name:<24} {args.runs} runs: exit codes {dict(codes)}; abort rate {aborts / args.runs:.1%}")


if __name__ == "__main__":
    main()
