"""Compare a ``pytest bench`` run with a saved baseline; exit non-zero on a regression.

    pytest bench --bench-mode=cpu --benchmark-json=out.json
    python -m bench.compare out.json --baseline bench/baselines/cpu-2core.json --threshold 0.15
    python -m bench.compare out.json --update-baseline bench/baselines/cpu-2core.json
    python -m bench.compare run1.json run2.json run3.json --update-baseline ...   # best of 3

Benchmarks are matched by pytest node id (``bench/test_x_bench.py::test_y[param]``).
A benchmark is a regression when its time (median by default) exceeds the baseline's
by more than ``--threshold`` (a fraction: 0.15 = 15 % slower). Benchmarks only in the
run ("new") or only in the baseline ("missing", e.g. skipped or crashed) are listed;
missing ones fail the comparison only with ``--fail-on-missing``. Given several run
files, each benchmark's fastest one counts (best of N: contention on a shared machine
only ever slows a run down), for the comparison and for a saved baseline alike.

Exit status: 0 no regression, 1 regression (or missing with ``--fail-on-missing``),
2 unusable input (unreadable file, or run and baseline made in different bench modes,
whose workloads differ in size and cannot be compared), reported as one line
``python -m bench.compare: error: ...`` by fastnst's shared handler (``--debug``: the traceback).
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

from fastnst.cli import FileFormatError, UsageError, add_debug_flag, program_name, run_cli

BASELINE_DIR = Path(__file__).resolve().parent / "baselines"
# extra_info figures printed side by side under the table (not part of the pass/fail rule).
HEADLINE_KEYS = ("stylized_over_plain",)
METRICS = ("median", "min", "mean")

# Exit statuses.
OK, REGRESSION, UNUSABLE = 0, 1, 2


class BenchFileError(FileFormatError):
    """A results file that is missing, not JSON, or not pytest-benchmark's layout."""


@dataclass(frozen=True)
class Comparison:
    fullname: str
    status: str  # "ok", "regression", "faster", "new" or "missing"
    baseline_seconds: float | None
    current_seconds: float | None

    @property
    def change(self) -> float | None:
        """Relative change of time: +0.20 is 20 % slower than the baseline."""
        if self.baseline_seconds is None or self.current_seconds is None:
            return None
        return self.current_seconds / self.baseline_seconds - 1.0


def load_results(path: str | Path) -> dict:
    """A pytest-benchmark JSON file (``--benchmark-json``), checked for the fields compared here."""
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


def best_of(runs: list[dict], metric: str = "median") -> dict:
    """One results dict holding, per benchmark, its entry with the lowest ``metric`` among ``runs``.

    Best of N: on a shared machine other processes only ever slow a run down, so the
    fastest of a few runs is the steadiest figure. The first run's machine and commit
    facts are kept; runs in different bench modes are refused.
    """
    modes = {environment(results).get("bench_mode") for results in runs}
    if len(modes) > 1:
        raise UsageError(f"the runs were made in different bench modes {sorted(map(str, modes))}: combine runs of one mode")
    best: dict[str, dict] = {}
    for results in runs:
        for benchmark in results["benchmarks"]:
            kept = best.get(benchmark["fullname"])
            if kept is None or _seconds(benchmark, metric) < _seconds(kept, metric):
                best[benchmark["fullname"]] = benchmark
    return {**runs[0], "benchmarks": list(best.values()), "best_of_runs": len(runs)}


def environment(results: dict) -> dict:
    """The run's device and bench mode, as ``bench/conftest.py`` records them (empty if absent)."""
    return results.get("machine_info", {}).get("fastnst", {})


def incompatibilities(current: dict, baseline: dict) -> tuple[list[str], list[str]]:
    """(errors, warnings) about comparing these two runs at all."""
    errors, warnings = [], []
    current_env, baseline_env = environment(current), environment(baseline)
    if current_env.get("bench_mode") != baseline_env.get("bench_mode"):
        errors.append(
            f"bench mode differs: run {current_env.get('bench_mode')!r}, baseline {baseline_env.get('bench_mode')!r} "
            "(the workloads differ in size; rerun with the baseline's --bench-mode)"
        )
    if current_env.get("device") != baseline_env.get("device"):
        warnings.append(
            f"device differs: run {current_env.get('device')!r}, baseline {baseline_env.get('device')!r}; "
            "timings may differ for that reason alone"
        )
    return errors, warnings


def _seconds(benchmark: dict, metric: str) -> float:
    return float(benchmark["stats"][metric])


def compare_results(current: dict, baseline: dict, *, threshold: float, metric: str = "median") -> list[Comparison]:
    """One Comparison per benchmark in either run, in the baseline's order then the new ones."""
    if threshold < 0:
        raise UsageError(f"--threshold must be >= 0 (a fraction, 0.15 = 15 %), got {threshold}")
    if metric not in METRICS:
        raise UsageError(f"--metric must be one of {METRICS}, got {metric!r}")
    current_by_name = {benchmark["fullname"]: benchmark for benchmark in current["benchmarks"]}
    baseline_by_name = {benchmark["fullname"]: benchmark for benchmark in baseline["benchmarks"]}
    comparisons = []
    for fullname, baseline_benchmark in baseline_by_name.items():
        baseline_seconds = _seconds(baseline_benchmark, metric)
        if fullname not in current_by_name:
            comparisons.append(Comparison(fullname, "missing", baseline_seconds, None))
            continue
        current_seconds = _seconds(current_by_name[fullname], metric)
        if current_seconds > baseline_seconds * (1.0 + threshold):
            status = "regression"
        elif current_seconds * (1.0 + threshold) < baseline_seconds:
            status = "faster"
        else:
            status = "ok"
        comparisons.append(Comparison(fullname, status, baseline_seconds, current_seconds))
    for fullname, current_benchmark in current_by_name.items():
        if fullname not in baseline_by_name:
            comparisons.append(Comparison(fullname, "new", None, _seconds(current_benchmark, metric)))
    return comparisons


def exit_status(comparisons: list[Comparison], *, fail_on_missing: bool = False) -> int:
    failing = {"regression", "missing"} if fail_on_missing else {"regression"}
    return REGRESSION if any(comparison.status in failing for comparison in comparisons) else OK


def format_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3f} {unit}"
    return f"{seconds / 1e-9:.1f} ns"


def format_table(comparisons: list[Comparison], *, metric: str, threshold: float) -> str:
    """A fixed-width table, one row per benchmark, and a one-line summary."""
    name_width = max([len("benchmark")] + [len(comparison.fullname) for comparison in comparisons])
    header = f"{'benchmark':<{name_width}}  {'baseline':>12}  {'run':>12}  {'change':>8}  status"
    lines = [f"{metric} time per call; regression = more than {threshold:.0%} slower", header, "-" * len(header)]
    for comparison in comparisons:
        change = "-" if comparison.change is None else f"{comparison.change:+.1%}"
        status = comparison.status.upper() if comparison.status == "regression" else comparison.status
        lines.append(
            f"{comparison.fullname:<{name_width}}  {format_seconds(comparison.baseline_seconds):>12}  "
            f"{format_seconds(comparison.current_seconds):>12}  {change:>8}  {status}"
        )
    counts = {}
    for comparison in comparisons:
        counts[comparison.status] = counts.get(comparison.status, 0) + 1
    lines.append(", ".join(f"{count} {status}" for status, count in sorted(counts.items())) or "no benchmarks")
    return "\n".join(lines)


def headline_lines(current: dict, baseline: dict) -> list[str]:
    """``name key: baseline -> run`` for the HEADLINE_KEYS figures a run records."""
    baseline_by_name = {benchmark["fullname"]: benchmark for benchmark in baseline["benchmarks"]}
    lines = []
    for benchmark in current["benchmarks"]:
        for key in HEADLINE_KEYS:
            value = benchmark.get("extra_info", {}).get(key)
            if isinstance(value, (int, float)):
                before = baseline_by_name.get(benchmark["fullname"], {}).get("extra_info", {}).get(key)
                before_text = f"{before:.3f}" if isinstance(before, (int, float)) else "-"
                lines.append(f"{benchmark['fullname']} {key}: baseline {before_text}, run {value:.3f}")
    return lines


def trimmed_for_baseline(results: dict) -> dict:
    """The run without per-round timings and host name: small, and still pytest-benchmark's layout
    (so ``pytest bench --benchmark-compare=<baseline file>`` reads it too)."""
    trimmed = json.loads(json.dumps(results))
    trimmed.get("machine_info", {}).pop("node", None)
    for benchmark in trimmed["benchmarks"]:
        benchmark["stats"].pop("data", None)
    return trimmed


def default_baseline(current: dict) -> Path:
    """``bench/baselines/<device kind>.json`` for the run's device."""
    kind = environment(current).get("device_kind")
    if not kind:
        raise BenchFileError("the run records no device kind (was it made with bench/conftest.py?); pass --baseline")
    path = BASELINE_DIR / f"{kind}.json"
    if not path.is_file():
        saved = ", ".join(sorted(baseline.name for baseline in BASELINE_DIR.glob("*.json"))) or "none"
        raise BenchFileError(
            f"no baseline for device kind {kind!r} at {path} (saved: {saved}); pass --baseline, "
            f"or save this run as one with --update-baseline {path}"
        )
    return path


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=program_name("bench.compare"), description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "runs", type=Path, nargs="+", metavar="run",
        help="pytest-benchmark JSON of the new run (--benchmark-json); with several, each benchmark's best median counts",
    )
    parser.add_argument(
        "--baseline", type=Path, default=None,
        help="baseline JSON to compare with (default: bench/baselines/<device kind of the run>.json)",
    )
    parser.add_argument("--threshold", type=float, default=0.15, help="allowed slow-down as a fraction (default 0.15)")
    parser.add_argument("--metric", choices=METRICS, default="median", help="statistic compared (default median)")
    parser.add_argument("--fail-on-missing", action="store_true", help="also fail when a baseline benchmark did not run")
    parser.add_argument(
        "--update-baseline", type=Path, metavar="PATH", default=None,
        help="instead of comparing, write the run (trimmed) to PATH as the new baseline",
    )
    add_debug_flag(parser)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Compare (or save a baseline); returns OK or REGRESSION, raises on unusable input (``cli``: exit 2)."""
    args = _parse_args(argv)
    current = best_of([load_results(path) for path in args.runs], args.metric)
    if args.update_baseline is not None:
        args.update_baseline.parent.mkdir(parents=True, exist_ok=True)
        args.update_baseline.write_text(json.dumps(trimmed_for_baseline(current), indent=2) + "\n", encoding="utf-8")
        print(f"wrote baseline {args.update_baseline} ({len(current['benchmarks'])} benchmarks)")
        return OK
    baseline_path = args.baseline or default_baseline(current)
    baseline = load_results(baseline_path)
    comparisons = compare_results(current, baseline, threshold=args.threshold, metric=args.metric)
    errors, warnings = incompatibilities(current, baseline)
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if errors:
        raise UsageError(f"{', '.join(map(str, args.runs))} vs baseline {baseline_path}: {'; '.join(errors)}")
    print(f"run {', '.join(map(str, args.runs))} vs baseline {baseline_path}")
    print(format_table(comparisons, metric=args.metric, threshold=args.threshold))
    for line in headline_lines(current, baseline):
        print(line)
    return exit_status(comparisons, fail_on_missing=args.fail_on_missing)


def cli(argv: list[str] | None = None) -> int:
    """Exit status: OK, REGRESSION, or UNUSABLE (2) with one line on stderr."""
    return run_cli(main, argv, prog=program_name("bench.compare"))


if __name__ == "__main__":
    sys.exit(cli())
