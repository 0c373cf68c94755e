"""Plot one ``pytest bench`` results file: time per call, throughputs and ratios.

    python -m bench.plot bench/baselines/cpu-2core.json --out bench/figures.png

Panels, top to bottom: the dimensionless figures benchmarks record in ``extra_info``
(keys with ``ratio``, ``speedup``, ``overhead`` or ``_over_`` in their name, e.g.
``stylized_over_plain``, a training step's time with stylization over one without,
drawn with the goal and the paper's figure), one panel per throughput (numeric keys ending in
``_per_s`` or ``_per_second``, log scale), then the median time of every benchmark
(log scale, bar = q1..q3). Colours tell benchmark files apart.
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display needed
import matplotlib.pyplot as plt  # noqa: E402

from bench.compare import BenchFileError, environment, load_results  # noqa: E402
from fastnst.cli import add_debug_flag, program_name, run_cli  # noqa: E402

THROUGHPUT_KEY = re.compile(r"_per_s(ec|econd)?$")
RATIO_KEY = re.compile(r"ratio|speedup|overhead|_over_")
# Marks drawn in the ratio panel for the project's headline figure (bench/test_train_step_bench.py).
REFERENCE_LINES = {"stylized_over_plain": [(1.08, "goal (H100)", "tab:green"), (2.7, "paper", "tab:red")]}
SETTING_KEYS = {"synthetic_ratio"}  # inputs of a benchmark that happen to match the patterns above
# Also in the Markdown table: times a benchmark derives itself (e.g. a whole-set estimate).
TIME_KEY = re.compile(r"_ms$|seconds")
MAX_PANELS_PER_KIND = 4  # ratio keys, and throughput keys, plotted at most


def format_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3f} {unit}"
    return f"{seconds / 1e-9:.1f} ns"


def short_label(benchmark: dict) -> str:
    """``adain::forward[32px-float32-nchw]`` from ``bench/test_adain_bench.py::test_adain_forward[...]``."""
    path, _, test = benchmark["fullname"].partition("::")
    stem = Path(path).stem.removeprefix("test_").removesuffix("_bench")
    return f"{stem}::{test.removeprefix('test_').removeprefix(stem + '_')}"


def file_of(benchmark: dict) -> str:
    return Path(benchmark["fullname"].partition("::")[0]).stem


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def extra_figures(benchmarks: list[dict], key_pattern: re.Pattern) -> dict[str, list[tuple[dict, float]]]:
    """key -> [(benchmark, value)] for the numeric extra_info entries whose key matches."""
    figures: dict[str, list[tuple[dict, float]]] = {}
    for benchmark in benchmarks:
        for key, value in benchmark.get("extra_info", {}).items():
            if key not in SETTING_KEYS and key_pattern.search(key) and _is_number(value):
                figures.setdefault(key, []).append((benchmark, float(value)))
    return figures


def _colours(benchmarks: list[dict]) -> dict[str, str]:
    files = sorted({file_of(benchmark) for benchmark in benchmarks})
    palette = plt.get_cmap("tab10").colors
    return {name: matplotlib.colors.to_hex(palette[index % len(palette)]) for index, name in enumerate(files)}


def _bar_panel(axes, labels, values, colours, *, xlabel, log=False, errors=None, value_text=None) -> None:
    positions = range(len(labels))
    bars = axes.barh(positions, values, color=colours, xerr=errors, error_kw={"elinewidth": 0.8, "capsize": 2})
    axes.bar_label(bars, labels=[(value_text or "{:.3g}".format)(value) for value in values], padding=3, fontsize=6)
    axes.margins(x=0.15)  # room for the value labels
    axes.set_yticks(list(positions), labels, fontsize=7)
    axes.invert_yaxis()  # first benchmark on top
    axes.set_xlabel(xlabel)
    if log:
        axes.set_xscale("log")
    axes.grid(axis="x", alpha=0.3)


def plot_results(results: dict, out_path: str | Path, *, title: str | None = None) -> Path:
    """Write the figure for one results file to ``out_path`` (PNG) and return its path."""
    benchmarks = sorted(results["benchmarks"], key=lambda benchmark: benchmark["fullname"])
    if not benchmarks:
        raise BenchFileError("the results hold no benchmarks: nothing to plot")
    colour_of_file = _colours(benchmarks)
    # Headline first: the ratios with reference marks (a training step with / without
    # stylization), other ratios, throughputs; then every benchmark's time. One panel per key.
    ratios = sorted(extra_figures(benchmarks, RATIO_KEY).items(), key=lambda item: (item[0] not in REFERENCE_LINES, -len(item[1])))
    throughputs = sorted(extra_figures(benchmarks, THROUGHPUT_KEY).items(), key=lambda item: -len(item[1]))
    figure_panels = ratios[:MAX_PANELS_PER_KIND] + throughputs[:MAX_PANELS_PER_KIND]
    panels = [len(entries) for _, entries in figure_panels] + [len(benchmarks)]
    figure, axes_list = plt.subplots(
        len(panels), 1, figsize=(10, 1.2 + 0.22 * sum(panels) + 0.6 * len(panels)), layout="constrained",
        gridspec_kw={"height_ratios": [count + 1.5 for count in panels]}, squeeze=False,
    )
    axes_list = list(axes_list[:, 0])

    for key, entries in figure_panels:
        values = [value for _, value in entries]
        is_ratio = RATIO_KEY.search(key) is not None
        axes = axes_list.pop(0)
        _bar_panel(
            axes, [short_label(benchmark) for benchmark, _ in entries], values,
            [colour_of_file[file_of(benchmark)] for benchmark, _ in entries],
            xlabel=key.replace("_", " ") + (" (x)" if is_ratio else ""),
            log=not is_ratio or max(values) > 50 * max(min(values), 1e-12),  # ratios are linear unless they span decades
        )
        if is_ratio:
            axes.axvline(1.0, color="black", linewidth=0.8)
        for value, label, colour in REFERENCE_LINES.get(key, []):
            axes.axvline(value, color=colour, linestyle="--", linewidth=1.5, zorder=3)
            axes.annotate(f"{label} {value}x", (value, 1.0), xycoords=("data", "axes fraction"), xytext=(3, -3),
                          textcoords="offset points", va="top", fontsize=7, color=colour, zorder=4,
                          bbox={"facecolor": "white", "edgecolor": "none", "pad": 1})
    medians = [benchmark["stats"]["median"] for benchmark in benchmarks]
    # Asymmetric error bar q1..q3 around the median, when the file has quartiles.
    lower = [max(benchmark["stats"]["median"] - benchmark["stats"].get("q1", benchmark["stats"]["median"]), 0.0) for benchmark in benchmarks]
    upper = [max(benchmark["stats"].get("q3", benchmark["stats"]["median"]) - benchmark["stats"]["median"], 0.0) for benchmark in benchmarks]
    _bar_panel(
        axes_list.pop(0), [short_label(benchmark) for benchmark in benchmarks], medians,
        [colour_of_file[file_of(benchmark)] for benchmark in benchmarks],
        xlabel="median seconds per call (bar: q1..q3)", log=True, errors=[lower, upper], value_text=format_seconds,
    )

    env = environment(results)
    date = str(results.get("datetime", ""))[:10]
    commit = str(results.get("commit_info", {}).get("id") or "")[:8]
    figure.suptitle(
        title or f"pytest bench, {env.get('bench_mode', '?')} mode, {env.get('device', 'unknown device')}"
        f"{', ' + date if date else ''}{', commit ' + commit if commit else ''}",
        fontsize=9,
    )
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out_path, dpi=110, bbox_inches="tight")  # long labels stay inside
    plt.close(figure)
    return out_path


def markdown_table(results: dict) -> str:
    """The same figures as a Markdown table (for bench/README.md)."""
    lines = ["| benchmark | median | q1 .. q3 | recorded figures |", "| --- | ---: | ---: | --- |"]
    for benchmark in sorted(results["benchmarks"], key=lambda benchmark: benchmark["fullname"]):
        stats = benchmark["stats"]
        figures = [
            f"{key} {value:.3g}"
            for key, value in benchmark.get("extra_info", {}).items()
            if key not in SETTING_KEYS and any(pattern.search(key) for pattern in (THROUGHPUT_KEY, RATIO_KEY, TIME_KEY))
            and _is_number(value)
        ]
        spread = f"{format_seconds(stats['q1'])} .. {format_seconds(stats['q3'])}" if "q1" in stats and "q3" in stats else "-"
        lines.append(f"| `{short_label(benchmark)}` | {format_seconds(stats['median'])} | {spread} | {', '.join(figures)} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Plot (and print the table); raises on an unusable results file (``cli``: one line, exit 2)."""
    parser = argparse.ArgumentParser(prog=program_name("bench.plot"), description=__doc__.split("\n\n")[0])
    parser.add_argument("results", type=Path, help="pytest-benchmark JSON (a run or a saved baseline)")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "figures.png", help="PNG to write")
    parser.add_argument("--title", default=None, help="figure title (default: mode, device, date, commit)")
    parser.add_argument("--table", action="store_true", help="also print the figures as a Markdown table")
    add_debug_flag(parser)
    args = parser.parse_args(argv)
    results = load_results(args.results)
    try:
        path = plot_results(results, args.out, title=args.title)
    except BenchFileError as error:  # plot_results' own checks of the contents (e.g. no benchmarks)
        raise BenchFileError(f"{args.results}: {error}") from error
    print(f"wrote {path}")
    if args.table:
        print(markdown_table(results))
    return 0


def cli(argv: list[str] | None = None) -> int:
    return run_cli(main, argv, prog=program_name("bench.plot"))


if __name__ == "__main__":
    sys.exit(cli())
