"""Best of several ``pytest bench`` runs, in img/s against a baseline, or saved as one.

    pytest bench --bench-mode=cpu --benchmark-json=run1.json          # twice on a shared machine
    python -m bench.compare run1.json run2.json                         # img/s per case vs the baseline
    python -m bench.compare run1.json run2.json --update-baseline bench/baselines/cpu-2core.json

A regression check is pytest-benchmark's own: ``pytest bench --benchmark-compare=<baseline file>
--benchmark-compare-fail=median:15%`` (bench/conftest.py refuses a baseline of another bench mode).
What this adds: each benchmark's fastest entry among several runs (other processes only ever slow
a run down), the summary ``pytest bench`` prints at its end for files already written, and a baseline
trimmed of per-round timings and the host name, in pytest-benchmark's layout (``--benchmark-compare``
reads it). Bad input is one line ``python -m bench.compare: error: ...`` (exit 2).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from bench.conftest import load_baseline, summary_lines, summary_row
from fastnst.cli import FileFormatError, UsageError, add_debug_flag, program_name, run_cli

BASELINE_DIR = Path(__file__).resolve().parent / "baselines"


class BenchFileError(FileFormatError):
    """A results file that is missing, not JSON, or not pytest-benchmark's layout."""


def load_results(path: str | Path) -> dict:
    """A pytest-benchmark JSON file (``--benchmark-json``), checked for the fields read here."""
    path = Path(path)
    try:
        results = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BenchFileError(f"{path}: no such file") from None
    except (OSError, json.JSONDecodeError) as error:
        raise BenchFileError(f"{path}: not a readable JSON file ({error})") from None
    if not isinstance(results, dict) or not isinstance(results.get("benchmarks"), list):
        raise BenchFileError(f"{path}: expected pytest-benchmark JSON with a 'benchmarks' list")
    for index, benchmark in enumerate(results["benchmarks"]):
        if not isinstance(benchmark, dict) or "fullname" not in benchmark or not isinstance(benchmark.get("stats"), dict):
            raise BenchFileError(f"{path}: benchmarks[{index}] lacks 'fullname' or 'stats'")
    return results


def environment(results: dict) -> dict:
    """The run's device and bench mode, as ``bench/conftest.py`` records them (empty if absent)."""
    return results.get("machine_info", {}).get("fastnst", {})


def best_of(runs: list[dict]) -> dict:
    """One results dict holding, per benchmark, its entry with the lowest median among ``runs`` (one bench mode)."""
    modes = {environment(results).get("bench_mode") for results in runs}
    if len(modes) > 1:
        raise UsageError(f"the runs were made in different bench modes {sorted(map(str, modes))}: combine runs of one mode")
    best: dict[str, dict] = {}
    for results in runs:
        for benchmark in results["benchmarks"]:
            kept = best.get(benchmark["fullname"])
            if kept is None or benchmark["stats"]["median"] < kept["stats"]["median"]:
                best[benchmark["fullname"]] = benchmark
    return {**runs[0], "benchmarks": list(best.values()), "best_of_runs": len(runs)}


def trimmed_for_baseline(results: dict) -> dict:
    """The run without per-round timings and host name: small, and still pytest-benchmark's layout."""
    trimmed = json.loads(json.dumps(results))
    trimmed.get("machine_info", {}).pop("node", None)
    for benchmark in trimmed["benchmarks"]:
        benchmark["stats"].pop("data", None)
    return trimmed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=program_name("bench.compare"), description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", type=Path, nargs="+", metavar="run", help="pytest-benchmark JSON (--benchmark-json)")
    parser.add_argument("--baseline", type=Path, default=None,
                        help="baseline to compare with (default: bench/baselines/<device kind of the run>.json)")
    parser.add_argument("--update-baseline", type=Path, metavar="PATH", default=None,
                        help="instead of comparing, write the best of the runs (trimmed) to PATH")
    add_debug_flag(parser)
    args = parser.parse_args(argv)
    current = best_of([load_results(path) for path in args.runs])
    if args.update_baseline is not None:
        args.update_baseline.parent.mkdir(parents=True, exist_ok=True)
        args.update_baseline.write_text(json.dumps(trimmed_for_baseline(current), indent=2) + "\n", encoding="utf-8")
        print(f"wrote baseline {args.update_baseline} ({len(current['benchmarks'])} benchmarks)")
        return 0
    baseline_path = args.baseline or BASELINE_DIR / f"{environment(current).get('device_kind')}.json"
    mode = environment(current).get("bench_mode")
    if baseline_path.is_file() and environment(load_results(baseline_path)).get("bench_mode") != mode:
        raise UsageError(f"{baseline_path} was made in another bench mode than the run's {mode!r}: its workloads "
                         "differ in size; compare with a baseline of the same --bench-mode")
    rows = [summary_row(b["fullname"], b["stats"]["median"], b.get("extra_info", {})) for b in current["benchmarks"]]
    print("\n".join(summary_lines(rows, load_baseline(baseline_path, mode), str(baseline_path))))
    if not baseline_path.is_file():
        print(f"no baseline at {baseline_path}: save one with --update-baseline {baseline_path}")
    return 0


def cli(argv: list[str] | None = None) -> int:
    """Exit status 0, or 2 with one line on stderr for unusable input."""
    return run_cli(main, argv, prog=program_name("bench.compare"))


if __name__ == "__main__":
    sys.exit(cli())
