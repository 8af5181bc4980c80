"""Benchmark: the registry commands as a user runs them (a fresh `offerrank` process each, deltalake, no JVM).

In a temporary home, generates the sample catalog (one small day of events: `apply` checks the dataset's layout),
then times, wall clock, median of `--repeats` runs, each in a fresh subprocess:
- `offerrank apply -f <sample catalog>` on an empty warehouse (the commit that creates the registry),
- `offerrank apply -f <catalog>` changing one offer (a MERGE commit on an existing registry),
- `offerrank models list`.
Prints wall seconds, and the CPU seconds each process used (which a loaded machine does not inflate). Targets on 2
cores: `models list` <= 2 s and `apply` of the sample catalog <= 5 s. No asserts: a shared machine's figures vary.

    python benchmarks/registry_benchmark.py [--repeats 3] [--src /path/to/other/checkout/src]   # --src: time that
        code instead (e.g. a release before the registry went JVM-free)
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path


def timed(home: Path, env: dict[str, str], *args: str) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + system) of one `offerrank` run in a fresh process; fails loudly when the
    command fails. The CPU figure is not inflated when other work shares the machine."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "offerrank.cli", "--home", str(home), *args], capture_output=True, text=True, env=env
    )
    elapsed = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        raise SystemExit(f"offerrank {' '.join(args)} failed ({result.returncode}):\n{result.stderr[-2000:]}")
    return elapsed, after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="runs per command; the median is printed (default 3)")
    parser.add_argument("--src", type=Path, help="the offerrank source folder to time (default: this one's)")
    args = parser.parse_args()
    import yaml

    src = (args.src or Path(__file__).resolve().parents[1] / "src").resolve()
    env = {**os.environ, "PYTHONPATH": str(src)}
    # the sample comes from this checkout's generator; only the timed commands run `src`'s code
    from offerrank.sim.generator import generate

    with tempfile.TemporaryDirectory(prefix="offerrank-registry-") as workdir:
        home = Path(workdir)
        sample = home / "sample"
        generate(sample, date(2026, 11, 1), days=1, seed=7, events_per_day=200)
        catalog = sample / "catalog.yaml"
        data = yaml.safe_load(catalog.read_text())
        data["offers"][0]["priority"] = data["offers"][0].get("priority", 0) + 1
        changed = sample / "catalog-changed.yaml"  # beside the sample: its dataset paths stay valid
        changed.write_text(yaml.safe_dump(data, sort_keys=False))

        figures: dict[str, list[tuple[float, float]]] = {
            "apply (new registry)": [],
            "apply (one change)": [],
            "models list": [],
        }
        for _ in range(args.repeats):
            shutil.rmtree(home / "warehouse", ignore_errors=True)
            figures["apply (new registry)"].append(timed(home, env, "apply", "-f", str(catalog)))
        for run in range(args.repeats):  # alternate, so that each apply changes one offer: one MERGE commit
            figures["apply (one change)"].append(
                timed(home, env, "apply", "-f", str(changed if run % 2 == 0 else catalog))
            )
        for _ in range(args.repeats):
            figures["models list"].append(timed(home, env, "models", "list"))

    print(f"offerrank registry commands, {src}, {os.cpu_count()} cores, median of {args.repeats} fresh processes")
    for name, runs in figures.items():
        walls = ", ".join(f"{wall:.2f}" for wall, _ in runs)
        cpu = statistics.median(cpu for _, cpu in runs)
        print(
            f"  {name:<22} {statistics.median(wall for wall, _ in runs):6.2f} s wall   (runs: {walls}; "
            f"median CPU {cpu:.2f} s)"
        )
    print(f"load average (1, 5, 15 min): {', '.join(f'{load:.1f}' for load in os.getloadavg())}")
    print("targets: models list <= 2 s, apply of the sample catalog <= 5 s")


if __name__ == "__main__":
    main()
