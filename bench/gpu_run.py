"""One command for a GPU host: tests, benchmarks, AdaIN bandwidth, profiles and the headline, into the repo.

    bash bench/gpu_run.sh                              # everything, results into bench/results, bench/baselines
    bash bench/gpu_run.sh --out "$OUT" --part tests    # one part (the device tool: one call per part)
    bash bench/gpu_run.sh --dry-run                    # CI: tiny sizes on the CPU, into a temp folder

Made for a lent H100 as it comes (Python 3.12, torch 2.11, Triton 3.6, no DALI, no package index):
it runs from the checkout with ``PYTHONPATH=<checkout>`` (``gpu_run.sh`` sets it), installs nothing,
and turns what is missing into a "skipped: <why>" line of the report instead of an error.

Parts (``--part``, comma-separated or repeated; ``all`` = every part, in this order):

  env       device and driver: ``nvidia-smi``, ``torch.cuda.get_device_properties``, library versions
  tests     ``pytest tests`` (the CUDA tests run where CUDA is); tests that fail only because DALI
            is not installed are reported as skipped (``bench/missing_dali.py``)
  bench     ``pytest bench --bench-mode=full --benchmark-json``, one pytest per bench file (a file
            that hangs or crashes loses only its own figures); needs pytest-benchmark, else skipped
  adain     AdaIN GB/s against a device copy of the same bytes at relu1_1..relu4_1 for 32, 64 and
            224 px, NCHW and channels_last, N=256, forward and backward
  profile   ``torch.profiler`` of one stylized training step at 224 px and at native size: top
            kernels by device time, and the layout-conversion copies (rule: bench/kernel_table.py)
  headline  ``stylized_over_plain`` at native size and at 224 px: taken from the bench part's
            train-step figures when it ran, else timed here on the same workload (bench/train_step.py)
  feed      the data feed: DALI's when installed (pytest bench's pipeline figures), and always a
            torch-only feed of the same batches (bench/torch_feed.py) against the trainer's images/s

Written (``--out``, default the checkout; the dry run defaults to a fresh temp folder):
  bench/results/<device>-<date>.md     the report          bench/results/<device>-<date>.json  all figures
  bench/results/<device>-<date>.png    bench/plot.py's plot   bench/results/<device>-<date>.log   the full log
  bench/baselines/<device>.json        the bench JSON, trimmed as ``python -m bench.compare --update-baseline``
Parts of one device and UTC date accumulate: a run reads the earlier ``<device>-<date>.json`` (in
``--out``, else in the checkout's bench/results) and replaces only the parts it runs (``--fresh``:
start over). So a session can split the work into calls of under 10 minutes each and copy each
call's files back into the checkout before the next.

Exit status: 0 when every part that ran passed or was skipped; 1 when a test failed or a part
failed, crashed or ran out of time (the report is written in every case).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
PART_ORDER = ("env", "tests", "bench", "adain", "profile", "headline", "feed")
WORKER_PARTS = ("env", "adain", "profile", "headline", "feed")  # run inside a `--worker` subprocess
GOALS = {  # from issue 10 (H100, ratios from one run)
    "stylized_over_plain_native": 1.08, "stylized_over_plain_paper224": 2.0,
    "feed_over_trainer": 3.0,  # the AdaIN fraction-of-copy goals live with their rows (bench/adain_bandwidth.py GOALS)
}
PAPER_STYLIZED_OVER_PLAIN = 2.7
REPORT_MARGIN_S = 25  # kept free at the end of --time-limit to write the report


@dataclass(frozen=True)
class Sizes:
    """Workload sizes: ``FULL`` on a GPU, ``DRY`` for the CPU dry run (every code path, tiny)."""

    bench_mode: str
    tests: tuple[str, ...]             # pytest arguments of the tests part
    bench_extra: tuple[str, ...]       # extra pytest arguments of each bench file
    bench_files: tuple[str, ...] | None  # bench file stems to run (None: all)
    adain_batch: int
    adain_image_sizes: tuple[int, ...]
    model: str | None                  # train-step model (None: bench/train_step.py's for the mode)
    batch: int | None
    steps: int | None
    paper_resolution: int              # the "224 px" variant's style resolution
    warmup_rounds: int
    timed_rounds: int
    feed_images: int
    feed_batch: int
    feed_batches: int
    buckets: tuple[int, ...]           # Stylizer bucket sizes compared in the profile part


FULL = Sizes("full", ("tests",), (), None, 256, (32, 64, 224), None, None, None, 224, 3, 5, 50000, 512, 200, (64, 16))
DRY = Sizes("cpu", ("tests/test_fastnst_networks.py", "-k", "layout_preserving_pad"),
            ("-k", "32px and nchw", "--benchmark-min-rounds=1", "--benchmark-max-time=0.001"), ("adain",),
            2, (16,), "wrn10_1", 16, 1, 40, 0, 1, 256, 64, 3, (2, 1))


# =========================================================================== worker parts (own process)

def _device(dry_run: bool):
    import torch

    return torch.device("cuda" if torch.cuda.is_available() and not dry_run else "cpu")


def part_env(sizes: Sizes, dry_run: bool) -> dict:
    import torch

    from bench.conftest import describe_device, device_kind, library_versions, usable_cpu_count

    device = _device(dry_run)
    info = {
        "device": describe_device(device), "device_kind": device_kind(device), "cpu_cores": usable_cpu_count(),
        "versions": {**library_versions(), "cudnn": torch.backends.cudnn.version() if torch.cuda.is_available() else None,
                     "pytest_benchmark": _distribution_version("pytest-benchmark")},
    }
    if shutil.which("nvidia-smi"):
        query = "name,driver_version,memory.total,clocks.max.sm,clocks.max.mem,power.limit,pstate,temperature.gpu"
        info["nvidia_smi_query"] = _command_output(["nvidia-smi", f"--query-gpu={query}", "--format=csv"])
        info["nvidia_smi"] = _command_output(["nvidia-smi"])
    else:
        info["nvidia_smi"] = "nvidia-smi: not on this host"
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info["cuda_properties"] = {
            "name": props.name, "compute_capability": f"{props.major}.{props.minor}",
            "total_memory_gib": round(props.total_memory / 2**30, 2), "multi_processor_count": props.multi_processor_count,
            "l2_cache_mb": round(getattr(props, "L2_cache_size", 0) / 2**20, 1) or None,
        }
    return {"status": "ok", **info}


def _distribution_version(name: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _command_output(command: list[str]) -> str:
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=60).stdout.strip()
    except (OSError, subprocess.SubprocessError) as error:
        return f"{command[0]}: {error}"


# --------------------------------------------------------------------------- adain

def _timer(device):
    """Median milliseconds of a call: on CUDA Triton's ``do_bench`` (device events, L2 flushed before
    every call), the same for the op and the copy it is compared with; on the CPU a wall clock."""
    if device.type == "cuda":
        import triton.testing

        return lambda fn: triton.testing.do_bench(fn, warmup=10, rep=50, return_mode="median")

    def cpu_timer(fn):
        fn()
        samples = []
        for _ in range(3):
            started = time.perf_counter()
            fn()
            samples.append((time.perf_counter() - started) * 1e3)
        return sorted(samples)[1]
    return cpu_timer


def part_adain(sizes: Sizes, dry_run: bool) -> dict:
    import torch

    device = _device(dry_run)
    try:
        from bench.adain_bandwidth import measure_bandwidth
    except ImportError as error:  # fastnst.kernels or Triton unusable here
        return {"status": "skipped", "reason": f"not available: {error}"}
    dtypes = (torch.float32, torch.bfloat16) if device.type == "cuda" else (torch.float32,)
    timing = {} if device.type == "cuda" else {"warmup_ms": 0, "rep_ms": 0}
    rows = measure_bandwidth(device, batch=sizes.adain_batch, image_sides=sizes.adain_image_sizes,
                             dtypes=dtypes, **timing)
    return {"status": "ok", "source": "bench.adain_bandwidth.measure_bandwidth", "batch": sizes.adain_batch,
            "dtype": ", ".join(str(dtype).removeprefix("torch.") for dtype in dtypes), "rows": rows,
            "timer": rows[0]["timer"] if rows else None}


# --------------------------------------------------------------------------- profile

def _case(variant: str, sizes: Sizes, device, **overrides):
    from bench.train_step import build_case

    resolution = sizes.paper_resolution if variant == "paper224" else "variant"
    return build_case(variant, sizes.bench_mode, device, model_name=sizes.model, batch=sizes.batch,
                      steps=overrides.pop("steps", sizes.steps), style_resolution=resolution, **overrides)


def _pad_layout_check(device) -> dict:
    """CUDA's plain reflect pad vs ours on a channels_last relu1_1-sized map: output layout and pad + conv time."""
    import torch
    from torch import nn

    from fastnst.networks import LayoutPreservingReflectionPad2d

    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    batch, side = (64, 224) if device.type == "cuda" else (2, 16)
    features = torch.randn(batch, 64, side, side, device=device, dtype=dtype).contiguous(memory_format=torch.channels_last)
    conv = nn.Conv2d(64, 64, 3).to(device, dtype, memory_format=torch.channels_last)
    timer = _timer(device)
    result = {"shape": list(features.shape), "dtype": str(dtype)}
    with torch.no_grad():
        for name, pad in (("nn.ReflectionPad2d", nn.ReflectionPad2d(1)), ("LayoutPreservingReflectionPad2d",
                                                                           LayoutPreservingReflectionPad2d(1))):
            padded = pad(features)
            result[name] = {"output_channels_last": padded.is_contiguous(memory_format=torch.channels_last),
                            "pad_ms": timer(lambda: pad(features)), "pad_conv_ms": timer(lambda: conv(pad(features)))}
    return result


def part_profile(sizes: Sizes, dry_run: bool) -> dict:
    import torch
    from torch.profiler import ProfilerActivity, profile

    from bench.kernel_table import summarize, work_records

    device = _device(dry_run)
    on_device = device.type == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if on_device else [])
    result = {"status": "ok", "device": str(device), "unit": "kernel" if on_device else "op (CPU self time)",
              "variants": {}}
    for variant in ("paper224", "native"):
        case = _case(variant, sizes, device, steps=1, label_regions=True)
        for _ in range(sizes.warmup_rounds):  # compile, cuDNN autotuning, allocator: outside the profile
            case.run_round()
        with profile(activities=activities) as prof:
            case.run_round()
        summary = summarize(work_records(prof.events(), on_device))
        summary["settings"] = case.settings()
        summary.update(case.last_call_rows())
        result["variants"][variant] = summary
        del case, prof
        if on_device:
            torch.cuda.empty_cache()
    result["pad_layout"] = _pad_layout_check(device)
    result["buckets"] = _bucket_timing(sizes, device)
    return result


def _median_round_seconds(case, sizes: Sizes) -> float:
    """Median wall-clock seconds of a round of steps after warm-up (each round ends with one sync)."""
    import statistics

    for _ in range(sizes.warmup_rounds):
        case.run_round()
    samples = []
    for _ in range(sizes.timed_rounds):
        started = time.perf_counter()
        case.run_round()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def _bucket_timing(sizes: Sizes, device) -> dict:
    """The 224 px stylized step with 16-row buckets (the default) and 64-row ones (full sizes): padded work
    against fewer cuDNN shapes (docs/stylizer.md, "16-row buckets"). Median of timed rounds after warm-up."""
    timings = {}
    for bucket in sizes.buckets:
        case = _case("paper224", sizes, device)
        case.stylizer.bucket_size = bucket
        timings[bucket] = {"seconds_per_step": _median_round_seconds(case, sizes) / case.steps,
                           "mean_stylized_per_batch": case.mean_stylized_per_batch()}
        del case
    return {"variant": "paper224", "by_bucket": timings}


# --------------------------------------------------------------------------- headline, feed

def part_headline(sizes: Sizes, dry_run: bool) -> dict:
    """stylized_over_plain timed here: median seconds of a round of steps (each round ends with one sync)."""
    import torch

    device = _device(dry_run)
    medians, settings = {}, {}
    for variant in ("plain", "native", "paper224"):
        case = _case(variant, sizes, device)
        medians[variant] = _median_round_seconds(case, sizes)
        settings[variant] = {**case.settings(), "images_per_second": case.batch * case.steps / medians[variant],
                             "mean_stylized_per_batch": case.mean_stylized_per_batch()}
        del case
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return {"status": "ok", "source": "bench/gpu_run.py (median of rounds, wall clock around a synchronized round)",
            "stylized_over_plain": {"native": medians["native"] / medians["plain"],
                                    "paper224": medians["paper224"] / medians["plain"]},
            "seconds_per_round": medians, "plain_images_per_second": settings["plain"]["images_per_second"],
            "settings": settings}


def part_feed(sizes: Sizes, dry_run: bool) -> dict:
    import torch

    from bench.torch_feed import measure_feed

    device = _device(dry_run)
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (sizes.feed_images, 32, 32, 3), dtype=torch.uint8, generator=generator).to(device)
    torch_feed = measure_feed(images, sizes.feed_batch, sizes.feed_batches)
    from bench.missing_dali import dali_available

    dali = ({"status": "measured by pytest bench (bench/test_pipeline_bench.py), see the bench part"}
            if dali_available() else {"status": "skipped", "reason": "DALI not installed on this host"})
    return {"status": "ok", "torch_feed": torch_feed, "dali": dali}


WORKERS = {"env": part_env, "adain": part_adain, "profile": part_profile, "headline": part_headline, "feed": part_feed}


def worker_main(parts: list[str], results_dir: Path, dry_run: bool) -> int:
    """Run ``parts`` in order, each result written to ``results_dir/<part>.json`` as soon as it is known."""
    sizes = DRY if dry_run else FULL
    for part in parts:
        print(f"[gpu_run] part {part}: start", flush=True)
        started = time.monotonic()
        try:
            result = WORKERS[part](sizes, dry_run)
        except Exception as error:  # one part's failure must not cost the others their figures
            traceback.print_exc()
            result = {"status": "failed", "reason": f"{type(error).__name__}: {error}",
                      "traceback": traceback.format_exc()[-4000:]}
        result["seconds"] = round(time.monotonic() - started, 2)
        (results_dir / f"{part}.json").write_text(json.dumps(result, indent=1, default=str), encoding="utf-8")
        print(f"[gpu_run] part {part}: {result['status']} in {result['seconds']:.1f} s", flush=True)
    return 0


# =========================================================================== the parent: subprocesses, state, report

class Run:
    """One invocation: where to write, the deadline, the log, the child environment."""

    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.dry_run = args.dry_run
        self.sizes = DRY if args.dry_run else FULL
        self.out = Path(args.out) if args.out else (Path(tempfile.mkdtemp(prefix="gpu_run_dry_")) if args.dry_run
                                                    else REPO_ROOT)
        self.scratch = Path(tempfile.mkdtemp(prefix="gpu_run_scratch_"))
        self.deadline = time.monotonic() + args.time_limit
        self.log_path = self.scratch / "run.log"
        self.log = self.log_path.open("w", encoding="utf-8")
        self.env = dict(os.environ)
        # Children run as `python -m ...` in the checkout, which puts it first on their sys.path: fastnst,
        # bench and tests import from there. The checkout is kept off their PYTHONPATH, which the processes
        # they start inherit: there it would make kernels/ and train/ importable as top-level names and
        # shadow an installed fastnst, which tests/test_packaging.py rightly refuses.
        inherited = [path for path in os.environ.get("PYTHONPATH", "").split(os.pathsep)
                     if path and Path(path).resolve() != REPO_ROOT]
        if inherited:
            self.env["PYTHONPATH"] = os.pathsep.join(inherited)
        else:
            self.env.pop("PYTHONPATH", None)
        self.env["PYTHONUNBUFFERED"] = "1"
        if args.dry_run:
            self.env["CUDA_VISIBLE_DEVICES"] = ""  # the dry run is the CPU path, also on a GPU host

    def say(self, text: str) -> None:
        print(text, flush=True)
        self.log.write(text + "\n")
        self.log.flush()

    def remaining(self) -> float:
        return self.deadline - time.monotonic() - REPORT_MARGIN_S

    def run_logged(self, command: list[str], timeout: float) -> tuple[int | None, float]:
        """Run ``command`` in the checkout, its output to the terminal and the log; (exit code or None
        when it ran past ``timeout`` and was killed, seconds)."""
        self.say(f"$ {' '.join(command)}   (time limit {timeout:.0f} s)")
        started = time.monotonic()
        process = subprocess.Popen(command, cwd=REPO_ROOT, env=self.env, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True, errors="replace", start_new_session=True)

        def copy_output():
            for line in process.stdout:
                sys.stdout.write(line)
                self.log.write(line)
            sys.stdout.flush()

        reader = threading.Thread(target=copy_output, daemon=True)
        reader.start()
        try:
            code = process.wait(timeout=max(1.0, timeout))
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)  # the child's own session: it and its children only
            process.wait()
            code = None
        reader.join(timeout=10)
        self.log.flush()
        return code, time.monotonic() - started


def _junit_summary(path: Path) -> dict:
    """Counts and failed test ids of a ``--junitxml`` file (empty when pytest wrote none)."""
    if not path.is_file():
        return {}
    root = ElementTree.parse(path).getroot()
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    summary = {key: sum(int(suite.get(key, 0)) for suite in suites) for key in ("tests", "failures", "errors", "skipped")}
    failed, dali_skipped = [], 0
    for case in root.iter("testcase"):
        name = f"{case.get('classname', '')}::{case.get('name', '')}"
        for kind in ("failure", "error"):
            for element in case.findall(kind):
                failed.append(f"{name} ({kind}): {(element.get('message') or '').splitlines()[0][:200] if element.get('message') else ''}")
        for element in case.findall("skipped"):
            if "DALI" in (element.get("message") or ""):
                dali_skipped += 1
    summary["passed"] = summary["tests"] - summary["failures"] - summary["errors"] - summary["skipped"]
    summary["failed"] = failed
    summary["skipped_for_missing_dali"] = dali_skipped
    return summary


def run_tests(run: Run) -> dict:
    junit = run.scratch / "tests.xml"
    command = [sys.executable, "-m", "pytest", *run.sizes.tests, "-q", "-rfEs", "-p", "bench.missing_dali",
               f"--junitxml={junit}"]
    code, seconds = run.run_logged(command, run.remaining())
    summary = _junit_summary(junit)
    if code is None:
        status = "timeout"
    elif code in (0, 5) and not summary.get("failures") and not summary.get("errors"):
        status = "ok"
    else:
        status = "failed"
    return {"status": status, "exit_code": code, "seconds": round(seconds, 1), "command": " ".join(command[1:]), **summary}


def _bench_files(run: Run) -> list[Path]:
    files = sorted((REPO_ROOT / "bench").glob("test_*_bench.py"))
    wanted = run.args.bench_files or run.sizes.bench_files
    if wanted:
        stems = {stem.strip() for item in wanted for stem in item.split(",") if stem.strip()}
        files = [path for path in files if path.stem.removeprefix("test_").removesuffix("_bench") in stems]
    return files


def run_bench(run: Run, earlier: dict | None) -> dict:
    if _distribution_version("pytest-benchmark") is None:
        return {"status": "skipped", "reason": "pytest-benchmark not installed: the pytest bench suite needs its "
                "`benchmark` fixture (the adain, profile, headline and feed parts do not)"}
    per_file, benchmarks, header = {}, {}, None
    for path in _bench_files(run):
        if run.remaining() < 30:
            per_file[path.stem] = {"status": "not run", "reason": "out of time"}
            continue
        json_path, junit = run.scratch / f"{path.stem}.json", run.scratch / f"{path.stem}.xml"
        command = [sys.executable, "-m", "pytest", str(path.relative_to(REPO_ROOT)), f"--bench-mode={run.sizes.bench_mode}",
                   f"--benchmark-json={json_path}", "-q", "-rfEs", "-p", "bench.missing_dali", f"--junitxml={junit}",
                   *run.sizes.bench_extra]
        code, seconds = run.run_logged(command, run.remaining())
        summary = _junit_summary(junit)
        status = "timeout" if code is None else ("ok" if code in (0, 5) else "failed")
        per_file[path.stem] = {"status": status, "exit_code": code, "seconds": round(seconds, 1),
                               **{key: summary.get(key) for key in ("passed", "failures", "errors", "skipped", "failed")}}
        if json_path.is_file():
            results = json.loads(json_path.read_text(encoding="utf-8"))
            header = header or results
            benchmarks.update({benchmark["fullname"]: benchmark for benchmark in results["benchmarks"]})
    if header is None and not (earlier and earlier.get("results")):
        return {"status": "failed" if any(f["status"] != "not run" for f in per_file.values()) else "timeout",
                "files": per_file, "reason": "no bench JSON was written"}
    from bench.compare import trimmed_for_baseline

    if earlier and earlier.get("results"):  # parts of one day accumulate: this run's figures replace earlier ones
        kept = {benchmark["fullname"]: benchmark for benchmark in earlier["results"]["benchmarks"]}
        benchmarks = {**kept, **benchmarks}
        header = header or earlier["results"]
        per_file = {**earlier.get("files", {}), **per_file}
    results = trimmed_for_baseline({**header, "benchmarks": sorted(benchmarks.values(), key=lambda b: b["fullname"])})
    failed = any(entry["status"] in ("failed", "timeout") for entry in per_file.values())
    return {"status": "failed" if failed else "ok", "files": per_file, "results": results}


def headline_from_bench(bench: dict | None) -> dict | None:
    """stylized_over_plain of the bench part's train-step figures, when both variants are there."""
    if not bench or not bench.get("results"):
        return None
    by_variant = {}
    for benchmark in bench["results"]["benchmarks"]:
        match = re.search(r"test_train_step\[(\w+)\]", benchmark["fullname"])
        if match:
            by_variant[match.group(1)] = benchmark.get("extra_info", {})
    ratios = {variant: by_variant.get(variant, {}).get("stylized_over_plain") for variant in ("native", "paper224")}
    if any(value is None for value in ratios.values()):
        return None
    return {"status": "ok", "source": "pytest bench (bench/test_train_step_bench.py, pytest-benchmark medians)",
            "stylized_over_plain": ratios,
            "plain_images_per_second": by_variant.get("plain", {}).get("images_per_second"),
            "settings": by_variant}


def run_worker(run: Run, parts: list[str]) -> dict[str, dict]:
    """Run worker parts in subprocesses; a crashed worker's part is recorded and the rest go on in a new one."""
    results: dict[str, dict] = {}
    pending = list(parts)
    while pending:
        if run.remaining() < 20:
            for part in pending:
                results[part] = {"status": "not run", "reason": "out of time"}
            break
        results_dir = Path(tempfile.mkdtemp(prefix="worker_", dir=run.scratch))
        command = [sys.executable, "-m", "bench.gpu_run", "--worker", ",".join(pending), "--results-dir", str(results_dir)]
        code, _ = run.run_logged(command + (["--dry-run"] if run.dry_run else []), run.remaining())
        for part in list(pending):
            path = results_dir / f"{part}.json"
            if path.is_file():
                results[part] = json.loads(path.read_text(encoding="utf-8"))
                pending.remove(part)
            else:  # the part running when the worker died or was stopped
                results[part] = {"status": "timeout" if code is None else "crashed",
                                 "reason": "ran past the time limit" if code is None else
                                 f"worker exited with code {code} during this part (see the log)"}
                pending.remove(part)
                break
        if code is None:
            for part in pending:
                results[part] = {"status": "not run", "reason": "out of time"}
            break
    return results


# --------------------------------------------------------------------------- state and files

def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


def _commit() -> str:
    try:
        head = subprocess.run(["git", "rev-parse", "--short=10", "HEAD"], cwd=REPO_ROOT, capture_output=True,
                              text=True, timeout=30)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO_ROOT,
                               capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return "unknown (no git)"
    if head.returncode != 0:
        return "unknown (not a git checkout)"
    return head.stdout.strip() + (" + uncommitted changes" if dirty.stdout.strip() else "")


def result_paths(out: Path, kind: str, date: str) -> dict[str, Path]:
    results = out / "bench" / "results"
    return {"state": results / f"{kind}-{date}.json", "report": results / f"{kind}-{date}.md",
            "plot": results / f"{kind}-{date}.png", "log": results / f"{kind}-{date}.log",
            "baseline": out / "bench" / "baselines" / f"{kind}.json"}


def load_earlier_state(run: Run, kind: str, date: str) -> dict | None:
    if run.args.fresh:
        return None
    for root in (run.out, REPO_ROOT):
        path = result_paths(root, kind, date)["state"]
        if path.is_file():
            try:
                state = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError):
                continue
            if state.get("dry_run") == run.dry_run:
                run.say(f"[gpu_run] merging with the earlier parts in {path} (--fresh to start over)")
                return state
    return None


def write_outputs(state: dict, paths: dict[str, Path], log_path: Path) -> list[Path]:
    written = []
    paths["state"].parent.mkdir(parents=True, exist_ok=True)
    paths["state"].write_text(json.dumps(state, indent=1, default=str) + "\n", encoding="utf-8")
    written.append(paths["state"])
    bench = state["parts"].get("bench", {})
    if bench.get("results") and bench["results"]["benchmarks"]:
        paths["baseline"].parent.mkdir(parents=True, exist_ok=True)
        paths["baseline"].write_text(json.dumps(bench["results"], indent=2) + "\n", encoding="utf-8")
        written.append(paths["baseline"])
        try:
            from bench.plot import plot_results

            plot_results(bench["results"], paths["plot"])
            written.append(paths["plot"])
        except Exception as error:  # matplotlib missing or a plotting bug: the report says so
            state["plot_error"] = f"{type(error).__name__}: {error}"
    paths["report"].write_text(render_report(state, paths), encoding="utf-8")
    written.append(paths["report"])
    shutil.copyfile(log_path, paths["log"])
    written.append(paths["log"])
    return written


# --------------------------------------------------------------------------- the report

def _status_line(part: dict | None) -> str:
    if not part:
        return "not run"
    text = part.get("status", "?")
    if part.get("reason"):
        text += f": {part['reason']}"
    return text


def _goal(value: float | None, goal: float, *, at_most: bool) -> str:
    if value is None:
        return "-"
    met = value <= goal if at_most else value >= goal
    return f"{'met' if met else 'MISSED'} ({'≤' if at_most else '≥'} {goal:g})"


def render_report(state: dict, paths: dict[str, Path]) -> str:
    parts = state["parts"]
    env = parts.get("env", {})
    lines = [f"# GPU run: {env.get('device', state['device_kind'])}, {state['date']}", ""]
    if state.get("dry_run"):
        lines += ["**DRY RUN on the CPU, tiny sizes: these figures measure nothing; they only show that "
                  "every part of `bench/gpu_run.py` runs.**", ""]
    lines += [f"- command: `{state['command']}` (calls merged into this report: {len(state['calls'])})",
              f"- code: {state['commit']}", f"- written: {state['updated']} (UTC)", "",
              "| part | status | seconds | when (UTC) |", "| --- | --- | ---: | --- |"]
    for name in PART_ORDER:
        part = parts.get(name)
        lines.append(f"| {name} | {_status_line(part)} | {part.get('seconds', '-') if part else '-'} | "
                     f"{part.get('when', '-') if part else '-'} |")
    lines += ["", "## Device and driver", ""]
    if env.get("status") == "ok":
        lines += [f"- device: {env['device']} (`{env['device_kind']}`), {env['cpu_cores']} CPU cores",
                  "- versions: " + ", ".join(f"{k} {v}" for k, v in env["versions"].items())]
        if env.get("cuda_properties"):
            lines.append("- torch.cuda properties: " + ", ".join(f"{k} {v}" for k, v in env["cuda_properties"].items()))
        lines += ["", "```", env.get("nvidia_smi_query") or "", env.get("nvidia_smi", ""), "```"]
    else:
        lines.append(_status_line(env))
    lines += _tests_section(parts.get("tests")) + _bench_section(parts.get("bench"), paths, state)
    lines += _headline_section(parts.get("headline")) + _adain_section(parts.get("adain"))
    lines += _profile_section(parts.get("profile")) + _feed_section(parts.get("feed"), parts)
    return "\n".join(lines) + "\n"


def _tests_section(tests: dict | None) -> list[str]:
    lines = ["", "## pytest tests", ""]
    if not tests or tests.get("status") in (None, "not run", "skipped"):
        return lines + [_status_line(tests)]
    lines.append(f"`{tests.get('command', '')}`: **{tests.get('passed', '?')} passed, {tests.get('failures', '?')} failed, "
                 f"{tests.get('errors', '?')} errors, {tests.get('skipped', '?')} skipped** (of which "
                 f"{tests.get('skipped_for_missing_dali', 0)} only for the missing DALI); exit code "
                 f"{tests.get('exit_code')}, {tests.get('seconds')} s.")
    for failed in tests.get("failed") or []:
        lines.append(f"- FAILED {failed}")
    return lines


def _bench_section(bench: dict | None, paths: dict[str, Path], state: dict) -> list[str]:
    lines = ["", "## pytest bench", ""]
    if not bench or not bench.get("files"):
        return lines + [_status_line(bench)]
    lines += ["| file | status | seconds | passed | failed | skipped |", "| --- | --- | ---: | ---: | ---: | ---: |"]
    for stem, entry in bench["files"].items():
        lines.append(f"| {stem} | {_status_line(entry)} | {entry.get('seconds', '-')} | {entry.get('passed', '-')} | "
                     f"{(entry.get('failures') or 0) + (entry.get('errors') or 0)} | {entry.get('skipped', '-')} |")
    for entry in bench["files"].values():
        for failed in entry.get("failed") or []:
            lines.append(f"- FAILED {failed}")
    if bench.get("results"):
        from bench.plot import markdown_table

        lines += ["", f"Baseline written to `bench/baselines/{paths['baseline'].name}`; plot "
                      f"`bench/results/{paths['plot'].name}`" + (f" (plot failed: {state['plot_error']})"
                                                                 if state.get("plot_error") else "") + ".",
                  "", markdown_table(bench["results"])]
    return lines


def _headline_section(headline: dict | None) -> list[str]:
    lines = ["", "## Headline: stylized_over_plain", ""]
    if not headline or headline.get("status") != "ok":
        return lines + [_status_line(headline)]
    ratios = headline["stylized_over_plain"]
    lines += [f"Source: {headline['source']}. A training step with style transfer over one without "
              f"(WRN, the paper's mix; the paper: {PAPER_STYLIZED_OVER_PLAIN}x).", "",
              "| variant | stylized / plain | goal |", "| --- | ---: | --- |",
              f"| native (32 px) | {ratios['native']:.3f} | "
              f"{_goal(ratios['native'], GOALS['stylized_over_plain_native'], at_most=True)} |",
              f"| paper224 (upsampled to 224 px) | {ratios['paper224']:.3f} | "
              f"{_goal(ratios['paper224'], GOALS['stylized_over_plain_paper224'], at_most=True)} |"]
    if headline.get("plain_images_per_second"):
        lines.append(f"\nTrainer without style transfer: {headline['plain_images_per_second']:.0f} images/s.")
    return lines


def _adain_section(adain: dict | None) -> list[str]:
    from bench.adain_bandwidth import markdown_table

    lines = ["", "## AdaIN bandwidth against a device copy", ""]
    if not adain or adain.get("status") != "ok":
        return lines + [_status_line(adain)]
    lines += [f"Source: {adain['source']}; batch {adain.get('batch')}, {adain.get('dtype')}; timer: {adain.get('timer')}.",
              "", markdown_table(adain["rows"]), ""]
    for row in adain["rows"]:  # the rows issue 10 sets a goal for (relu4_1 at 224 px)
        if row.get("goal"):
            lines.append(f"- {row['layer']}, {row['image_side']} px, {row['dtype']}, {row['layout']}: {row['pass']} "
                         f"{row['fraction_of_copy']:.2f} of copy, goal {_goal(row['fraction_of_copy'], row['goal'], at_most=False)}")
    return lines


def _profile_section(profile: dict | None) -> list[str]:
    from bench.kernel_table import markdown

    lines = ["", "## Profile of one stylized training step", ""]
    if not profile or profile.get("status") != "ok":
        return lines + [_status_line(profile)]
    unit = "kernel" if profile.get("device", "").startswith("cuda") else "op"
    lines.append("Layout conversions are counted by the rule in `bench/kernel_table.py`: work launched inside "
                 "`aten::contiguous`, or kernels named as layout transposes (nchwToNhwc, nhwcToNchw, transpose, "
                 "permute, Inductor clones).")
    for variant, summary in profile["variants"].items():
        settings = summary.get("settings", {})
        lines += ["", f"### {variant}: {settings.get('model')}, batch {settings.get('shape', ['?'])[0]}, style "
                      f"resolution {settings.get('style_resolution')}, compiled {settings.get('compiled')}; "
                      f"{summary.get('stylized_rows_last_call')} rows stylized, padded to {summary.get('padded_to_last_call')}",
                  "", f"Device time of the step: {summary['total_ms']:.3f} ms in {summary['num_kernels']} {unit}s; "
                      "by region: " + ", ".join(f"{k} {v:.3f} ms" for k, v in summary["regions_ms"].items()), "",
                  markdown(summary, unit)]
    buckets = profile.get("buckets")
    if buckets:
        lines += ["", f"Bucket size, {buckets['variant']} step (median of rounds after warm-up):", "",
                  "| bucket_size | ms per step |", "| ---: | ---: |"]
        lines += [f"| {bucket} | {row['seconds_per_step'] * 1e3:.3f} |" for bucket, row in buckets["by_bucket"].items()]
    pad = profile.get("pad_layout")
    if pad:
        lines += ["", f"Reflect pad on a channels_last {pad['shape']} {pad['dtype']} map:", "",
                  "| pad | output channels_last | pad ms | pad + conv ms |", "| --- | --- | ---: | ---: |"]
        for name in ("nn.ReflectionPad2d", "LayoutPreservingReflectionPad2d"):
            row = pad[name]
            lines.append(f"| {name} | {row['output_channels_last']} | {row['pad_ms']:.3f} | {row['pad_conv_ms']:.3f} |")
    return lines


def _feed_section(feed: dict | None, parts: dict) -> list[str]:
    lines = ["", "## Data feed", ""]
    if not feed or feed.get("status") != "ok":
        return lines + [_status_line(feed)]
    torch_feed = feed["torch_feed"]
    lines += [f"- DALI: {_status_line(feed['dali'])}",
              f"- torch-only feed (bench/torch_feed.py: resident uint8, crop + flip on the device, no TrivialAugment "
              f"or Random Erasing): **{torch_feed['images_per_second']:.0f} images/s** (batch {torch_feed['batch']}, "
              f"{torch_feed['num_batches']} batches, {torch_feed['device']})"]
    trainer = (parts.get("headline") or {}).get("plain_images_per_second")
    if trainer:
        ratio = torch_feed["images_per_second"] / trainer
        lines.append(f"- against the trainer without style transfer ({trainer:.0f} images/s): {ratio:.1f}x, goal "
                     f"{_goal(ratio, GOALS['feed_over_trainer'], at_most=False)}")
    return lines


# --------------------------------------------------------------------------- main

def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.gpu_run", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", action="append", default=None,
                        help=f"parts to run, comma-separated or repeated: {', '.join(PART_ORDER)} or all (default all)")
    parser.add_argument("--out", default=None, help="folder that gets bench/results and bench/baselines "
                        "(default: the checkout; with --dry-run a new temp folder)")
    parser.add_argument("--dry-run", action="store_true", help="tiny sizes on the CPU, every part (CI)")
    parser.add_argument("--time-limit", type=float, default=1800.0,
                        help="seconds for the whole run; parts that would start later are reported as not run "
                        "(default 1800; under the device tool's 600 s per call use e.g. 570)")
    parser.add_argument("--bench-files", action="append", default=None,
                        help="bench file stems for the bench part, e.g. adain,train_step (default all)")
    parser.add_argument("--fresh", action="store_true", help="do not merge with earlier parts of the same device and day")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--results-dir", default=None, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def resolve_parts(requested: list[str] | None) -> list[str]:
    names = [name.strip() for item in (requested or ["all"]) for name in item.split(",") if name.strip()]
    if "all" in names:
        return list(PART_ORDER)
    unknown = sorted(set(names) - set(PART_ORDER))
    if unknown:
        raise SystemExit(f"gpu_run: unknown part {', '.join(unknown)}; expected {', '.join(PART_ORDER)} or all")
    return [name for name in PART_ORDER if name in names]


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    if args.worker:
        return worker_main(args.worker.split(","), Path(args.results_dir), args.dry_run)
    parts = resolve_parts(args.part)
    run = Run(args)
    started = _utc_now()
    run.say(f"[gpu_run] parts {', '.join(parts)}{' (DRY RUN, CPU)' if run.dry_run else ''}; out {run.out}; "
            f"time limit {args.time_limit:.0f} s")
    new: dict[str, dict] = {}

    def stamp(name: str, result: dict) -> None:
        result.setdefault("when", _utc_now().isoformat(timespec="seconds"))
        new[name] = result
        run.say(f"[gpu_run] {name}: {_status_line(result)}")

    # env always runs first: it names the device, hence the files, and earlier parts to merge with.
    env = run_worker(run, ["env"])["env"]
    stamp("env", env)
    kind = env.get("device_kind") or "unknown-device"
    date = started.date().isoformat()
    earlier = load_earlier_state(run, kind, date)
    earlier_parts = (earlier or {}).get("parts", {})
    if "tests" in parts:
        stamp("tests", run_tests(run) if run.remaining() > 60 else {"status": "not run", "reason": "out of time"})
    if "bench" in parts:
        stamp("bench", run_bench(run, earlier_parts.get("bench")))
    # The headline comes from the bench part's train-step figures when they exist (this call's, else an
    # earlier call's of the same day): the published numbers, not a second measurement.
    headline = headline_from_bench(new.get("bench") or earlier_parts.get("bench")) if "headline" in parts else None
    if headline:
        stamp("headline", headline)
    worker_parts = [p for p in ("adain", "profile", "headline", "feed") if p in parts and p not in new]
    for name, result in run_worker(run, worker_parts).items() if worker_parts else []:
        stamp(name, result)

    state = {"schema": 1, "device_kind": kind, "date": date, "dry_run": run.dry_run, "commit": _commit(),
             "command": "bash bench/gpu_run.sh " + " ".join(argv if argv is not None else sys.argv[1:]),
             "updated": _utc_now().isoformat(timespec="seconds"),
             "calls": (earlier or {}).get("calls", []) + [{"when": started.isoformat(timespec="seconds"), "parts": parts}],
             "parts": {**earlier_parts, **new}}
    paths = result_paths(run.out, kind, date)
    run.log.close()
    written = write_outputs(state, paths, run.log_path)
    shutil.rmtree(run.scratch, ignore_errors=True)

    failing = [name for name, part in new.items() if part.get("status") in ("failed", "crashed", "timeout")]
    print("\n[gpu_run] summary")
    for name in PART_ORDER:
        if name in new:
            print(f"  {name:9s} {_status_line(new[name])[:160]}")
    headline = state["parts"].get("headline", {})
    if headline.get("status") == "ok":
        ratios = headline["stylized_over_plain"]
        print(f"  stylized_over_plain: native {ratios['native']:.3f}, paper224 {ratios['paper224']:.3f}")
    print("[gpu_run] wrote:\n" + "\n".join(f"  {path}" for path in written))
    if failing:
        print(f"[gpu_run] FAILED parts: {', '.join(failing)}")
    return 1 if failing else 0


if __name__ == "__main__":
    sys.exit(main())
