"""Shared set-up of ``pytest bench``: bench mode, timing defaults, and what every result records.

A benchmark file needs none of this to run, but gets it for free:

- ``--bench-mode=cpu|full`` (default ``full`` when CUDA is available, else ``cpu``).
  ``cpu`` is the CI size: small workloads on the CPU, the whole suite in a few minutes
  on 2 cores. ``full`` is the paper-sized workload on the best device.
- fixtures ``bench_mode`` (``"cpu"`` or ``"full"``), ``bench_device`` (``torch.device``)
  and ``cuda_sync`` (wait for the device; a no-op on the CPU: a GPU benchmark must end
  each timed call with it, or it times kernel launches instead of kernels).
- every test that uses ``benchmark`` gets ``extra_info`` pre-filled with the device,
  the bench mode and the library versions (the file adds its dtype and shapes); the
  same facts go into the JSON's ``machine_info["fastnst"]``, which ``bench.compare``
  and ``bench.plot`` read.
- pytest-benchmark defaults suited to each mode (a bounded number of rounds, warm-up
  on GPUs, a median-first table); any ``--benchmark-*`` flag given explicitly wins.
- at the end, under pytest-benchmark's table, a summary in the units a person reads: images/s
  per case with its batch, the ``stylized_over_plain`` ratios, and the change against
  ``bench/baselines/<device kind>.json`` where one of the same bench mode exists;
  ``--figure-lines`` also prints each case's figures the moment it is measured
  (``bench/figures.py``, read by ``bench/gpu_run.py``).
- ``--benchmark-compare=<baseline>`` of another bench mode is refused (its workloads differ).

Triton kernels are *not* switched to the interpreter here (unlike ``tests/``): a
benchmark times the path users run, which on the CPU is the PyTorch reference.
"""
from __future__ import annotations

import contextlib
import functools
import json
import os
import platform
import re
import shlex
from importlib import metadata
from pathlib import Path

import pytest
import torch

from bench import figures

BENCH_MODES = ("cpu", "full")

# pytest-benchmark option -> value per bench mode, applied unless given explicitly.
# cpu: calibration already makes one untimed call, which absorbs first-call costs; CPU
# steps take seconds, so more warm-up would double the suite's time; three timed rounds
# give a median. full: warm-up on (cuDNN autotuning, allocator, compiled graphs need
# several calls) and more rounds, since GPU step times are short and jittery.
TIMING_DEFAULTS = {
    "cpu": {
        "benchmark_warmup": False,
        "benchmark_min_rounds": 3,
        "benchmark_max_time": 0.5,
    },
    "full": {
        "benchmark_warmup": True,
        "benchmark_warmup_iterations": 20,
        "benchmark_min_rounds": 10,
        "benchmark_max_time": 2.0,
    },
}
# Display defaults (both modes): medians first, tables ordered by test id.
DISPLAY_DEFAULTS = {
    "benchmark_columns": ["median", "iqr", "min", "max", "rounds", "iterations"],
    "benchmark_sort": "fullname",
}


# --------------------------------------------------------------------------- options


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--bench-mode",
        choices=BENCH_MODES,
        default=None,
        help="Workload size: 'cpu' (small, on the CPU, the CI size) or 'full' (paper sizes on the "
        "best device). Default: full when CUDA is available, else cpu.",
    )
    parser.addoption("--figure-lines", action="store_true",
                     help="print each case's figures as an '@figure {json}' line the moment it is measured")


def resolve_bench_mode(requested: str | None, cuda_available: bool) -> str:
    """The bench mode to use: the one asked for, else ``full`` with CUDA and ``cpu`` without."""
    if requested is None:
        return "full" if cuda_available else "cpu"
    if requested not in BENCH_MODES:
        raise pytest.UsageError(f"--bench-mode must be one of {BENCH_MODES}, got {requested!r}")
    return requested


def _flags_given(config: pytest.Config) -> set[str]:
    """The ``--option`` names the user set: command line, PYTEST_ADDOPTS and ini addopts."""
    words = list(config.invocation_params.args)
    words += shlex.split(os.environ.get("PYTEST_ADDOPTS", ""))
    words += list(config.getini("addopts"))
    return {str(word).split("=", 1)[0] for word in words if str(word).startswith("--")}


def apply_timing_defaults(config: pytest.Config, bench_mode: str) -> None:
    """Set the mode's pytest-benchmark defaults on ``config.option``, leaving explicit flags alone."""
    given = _flags_given(config)
    for dest, value in {**TIMING_DEFAULTS[bench_mode], **DISPLAY_DEFAULTS}.items():
        flag = "--" + dest.replace("_", "-")
        if flag not in given and hasattr(config.option, dest):
            setattr(config.option, dest, value)


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    # tryfirst: pytest-benchmark reads its options in its own pytest_configure.
    if not config.pluginmanager.hasplugin("benchmark"):
        raise pytest.UsageError("pytest bench needs pytest-benchmark (pip install pytest-benchmark); on a host "
                                "without it, bench/gpu_run.py still runs its parts that do not need it (bench/README.md)")
    bench_mode = resolve_bench_mode(config.getoption("--bench-mode"), torch.cuda.is_available())
    config.stash[_BENCH_MODE_KEY] = bench_mode
    config.stash[_ROWS_KEY] = []
    apply_timing_defaults(config, bench_mode)


_BENCH_MODE_KEY = pytest.StashKey[str]()
_ROWS_KEY = pytest.StashKey[list]()  # one summary row per timed case, in the order they ran


# --------------------------------------------------------------------------- environment


def _cpu_model_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def usable_cpu_count() -> int:
    """Cores this process may run on (a container's limit, not the host's)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def describe_device(device: torch.device) -> str:
    """``"NVIDIA H100 80GB HBM3"`` or ``"cpu (2 cores, AMD EPYC ...)"``."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({usable_cpu_count()} cores, {_cpu_model_name()})"


def device_kind(device: torch.device) -> str:
    """The baseline name for a device: ``cpu-2core``, ``nvidia-h100-80gb-hbm3``."""
    if device.type == "cuda":
        return re.sub(r"[^a-z0-9]+", "-", torch.cuda.get_device_name(device).lower()).strip("-")
    return f"cpu-{usable_cpu_count()}core"


def _dali_version() -> str | None:
    # The DALI wheel's name carries the CUDA version (nvidia-dali-cuda130); importing DALI is slow.
    for distribution in metadata.distributions():
        name = (distribution.metadata["Name"] or "").lower()
        if name.startswith("nvidia-dali"):
            return f"{name} {distribution.version}"
    return None


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


@functools.cache
def library_versions() -> dict[str, str | None]:
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "torchvision": _version("torchvision"),
        "triton": _version("triton"),
        "dali": _dali_version(),
    }


def environment_info(bench_mode: str, device: torch.device) -> dict:
    """What a result needs to be compared with another: where, how big, with which libraries."""
    return {
        "device": describe_device(device),
        "device_kind": device_kind(device),
        "bench_mode": bench_mode,
        "torch_threads": torch.get_num_threads(),
        **library_versions(),
    }


def select_device(bench_mode: str, cuda_available: bool) -> torch.device:
    """cpu mode measures the CPU even on a GPU machine, so its figures match the CPU baselines."""
    return torch.device("cuda" if bench_mode == "full" and cuda_available else "cpu")


def synchronize(device: torch.device) -> None:
    """Wait for every kernel queued on ``device`` (the CPU runs eagerly: nothing to wait for)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@pytest.hookimpl(optionalhook=True)  # a hook of pytest-benchmark: its absence is reported in pytest_configure
def pytest_benchmark_update_machine_info(config: pytest.Config, machine_info: dict) -> None:
    bench_mode = config.stash[_BENCH_MODE_KEY]
    machine_info["fastnst"] = environment_info(bench_mode, select_device(bench_mode, torch.cuda.is_available()))


def pytest_report_header(config: pytest.Config) -> str:
    bench_mode = config.stash[_BENCH_MODE_KEY]
    device = select_device(bench_mode, torch.cuda.is_available())
    return f"bench mode: {bench_mode} on {describe_device(device)}"


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def bench_mode(pytestconfig: pytest.Config) -> str:
    """``"cpu"`` (CI-sized workloads) or ``"full"`` (paper-sized); pick sizes with it."""
    return pytestconfig.stash[_BENCH_MODE_KEY]


@pytest.fixture(scope="session")
def bench_device(bench_mode: str) -> torch.device:
    """Where to run: CUDA in full mode when there is a GPU, else the CPU."""
    return select_device(bench_mode, torch.cuda.is_available())


@pytest.fixture(scope="session")
def cuda_sync(bench_device: torch.device):
    """``cuda_sync()`` waits for the bench device; call it at the end of each timed function."""
    return functools.partial(synchronize, bench_device)


@pytest.fixture(autouse=True)
def _record_environment(request: pytest.FixtureRequest, bench_mode: str, bench_device: torch.device):
    # Only where the test benchmarks: asking for `benchmark` elsewhere would make an empty result.
    if "benchmark" not in request.fixturenames:
        yield
        return
    benchmark = request.getfixturevalue("benchmark")
    benchmark.extra_info.update(environment_info(bench_mode, bench_device))
    yield
    if benchmark.stats:  # timed (not --benchmark-disable, not skipped)
        row = summary_row(request.node.nodeid, benchmark.stats.stats.median, benchmark.extra_info)
        request.config.stash[_ROWS_KEY].append(row)
        if request.config.getoption("--figure-lines"):
            capture = request.config.pluginmanager.get_plugin("capturemanager")  # None under -p no:capture
            with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
                for key, unit in FIGURE_UNITS.items():
                    if row[key] is not None:
                        figures.emit(f"{row['case']} {key}", row[key], unit, batch=row["batch"])


# --------------------------------------------------------------------------- the summary in img/s and ratios

FIGURE_UNITS = {"images_per_second": "img/s", "stylized_over_plain": "x", "fraction_of_copy": "of copy",
                "median_seconds": "s"}


def summary_row(nodeid: str, median_seconds: float, extra_info: dict) -> dict:
    shape = extra_info.get("shape") or [None]
    row = {"fullname": nodeid, "case": nodeid.rpartition("::")[2].removeprefix("test_"),
           "batch": extra_info.get("batch") or shape[0], "median_seconds": median_seconds}
    return row | {key: extra_info.get(key) for key in FIGURE_UNITS if key != "median_seconds"}


def load_baseline(path: Path, bench_mode: str | None) -> dict[str, dict]:
    """fullname -> summary row of a saved baseline of ``bench_mode`` (empty if none, or another mode)."""
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if saved.get("machine_info", {}).get("fastnst", {}).get("bench_mode") != bench_mode:
        return {}
    return {benchmark["fullname"]: summary_row(benchmark["fullname"], benchmark["stats"]["median"],
                                               benchmark.get("extra_info", {}))
            for benchmark in saved.get("benchmarks", [])}


def _change(row: dict, before: dict | None) -> str:
    if not before:
        return ""
    if row["images_per_second"] and before["images_per_second"]:
        return f"  {row['images_per_second'] / before['images_per_second'] - 1:+.1%} img/s vs baseline"
    return f"  {row['median_seconds'] / before['median_seconds'] - 1:+.1%} time vs baseline"


def summary_lines(rows: list[dict], baseline: dict[str, dict], baseline_name: str) -> list[str]:
    """images/s per case with its batch, the stylized_over_plain ratios, each with its change against the baseline."""
    width = max((len(row["case"]) for row in rows), default=0)
    lines = []
    for row in rows:
        figure = (f"{row['images_per_second']:12,.0f} img/s  (batch {row['batch']})" if row["images_per_second"]
                  else f"{row['median_seconds'] * 1e3:12,.3f} ms a call")
        lines.append(f"{row['case']:<{width}}  {figure}{_change(row, baseline.get(row['fullname']))}")
    ratios = [row for row in rows if row["stylized_over_plain"] is not None]
    if ratios:
        def before(row):
            value = (baseline.get(row["fullname"]) or {}).get("stylized_over_plain")
            return f" (baseline {value:.2f})" if value is not None else ""
        lines.append("stylized_over_plain: " + ", ".join(
            f"{row['case']} {row['stylized_over_plain']:.2f}{before(row)}" for row in ratios))
    if baseline:
        lines.append(f"baseline: {baseline_name}")
    return lines


@pytest.hookimpl(trylast=True)  # under pytest-benchmark's table: the last thing printed
def pytest_terminal_summary(terminalreporter, config: pytest.Config) -> None:
    rows = config.stash.get(_ROWS_KEY, [])
    if not rows:
        return
    bench_mode = config.stash[_BENCH_MODE_KEY]
    kind = device_kind(select_device(bench_mode, torch.cuda.is_available()))
    path = Path(__file__).resolve().parent / "baselines" / f"{kind}.json"
    terminalreporter.write_sep("-", "fastnst bench: images per second and ratios")
    for text in summary_lines(rows, load_baseline(path, bench_mode), f"bench/baselines/{path.name}"):
        terminalreporter.write_line(text)


@pytest.hookimpl(optionalhook=True)
def pytest_benchmark_compare_machine_info(config: pytest.Config, machine_info: dict, compared_benchmark: dict) -> None:
    saved_mode = compared_benchmark.get("machine_info", {}).get("fastnst", {}).get("bench_mode")
    if saved_mode != machine_info["fastnst"]["bench_mode"]:
        raise pytest.UsageError(f"--benchmark-compare: the saved run was made in bench mode {saved_mode!r}, this one "
                                f"in {machine_info['fastnst']['bench_mode']!r}; their workloads differ in size: "
                                f"compare with a run of --bench-mode={saved_mode}")
