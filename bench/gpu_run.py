"""One command for a GPU host: every headline figure inside one 9-minute call, the headline first.

    bash bench/gpu_run.sh --out DIR                         # the parts that fit in --time-limit (540 s)
    bash bench/gpu_run.sh --out DIR --part feed,profile     # some parts (env always runs first)
    bash bench/gpu_run.sh --dry-run                         # CI: tiny sizes on the CPU, into a temp folder

Made for a lent GPU host that gives 15 minutes in all, at most 600 s a command, keeps only the
files under --out and shows only the last 12,000 characters of the console:

- parts run in ``PARTS``' order, by value per second; a part whose estimate does not fit in the time
  left is reported "not run (time)" without being started (the estimates are guesses until a GPU
  run's report gives each part's seconds);
- each part is one process in its own process group, its output in DIR/<part>.log; the console
  gets a line per figure the moment it is measured (``bench/figures.py``) and the goals at the end;
- DIR/report.md and DIR/report.json are rewritten after every figure and every part;
- on SIGTERM, SIGINT or the deadline, every process group it started is killed (and any process of
  the run that left its group: they all carry ``FASTNST_GPU_RUN=<run id>``), the report is written
  with what it has, and the exit status is non-zero: 1 for a failed part or the deadline, 128 + the
  signal's number for a signal.

It runs from the checkout as it is and installs nothing: the hosts lent so far come with Python
3.12, torch 2.11 and Triton 3.6 and without DALI (issue 20), and the run uses what is there; the env
part records the versions, and a part whose module is missing is reported "not run (needs ...)".
"""
from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import operator
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from bench import end_to_end, figures

REPO_ROOT = Path(__file__).resolve().parents[1]
REPORT_MARGIN_S = 15  # kept at the end of --time-limit to stop a part and write the report
RUN_MARK = "FASTNST_GPU_RUN"


@dataclass(frozen=True)
class Part:
    name: str
    estimate_s: tuple[float, float]  # (GPU, dry run) seconds, start-up and compilation included
    command: Callable[["Run"], list[str]]
    what: str
    needs: str | None = None         # a module it cannot run without: "not run (needs ...)" where absent


def _pytest(run: "Run", name: str, *args: str) -> list[str]:
    return [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "bench.missing_dali",
            f"--junitxml={run.out / f'{name}.xml'}", *args]


def _bench(run: "Run", name: str, *args: str) -> list[str]:
    timing = ["--bench-mode=cpu", "--benchmark-min-rounds=1", "--benchmark-max-time=0.001"] if run.dry_run else \
        ["--bench-mode=full"]
    return _pytest(run, name, "--figure-lines", f"--benchmark-json={run.out / f'{name}.bench.json'}", *timing, *args)


def _module(run: "Run", module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args, "--out", str(run.out), *(["--dry-run"] if run.dry_run else [])]


def _end_to_end(variant: str, estimate_s: tuple[float, float], what: str) -> Part:
    return Part(f"end_to_end_{variant}", estimate_s,
                lambda run: _module(run, "bench.end_to_end", variant, "--work", str(run.work)),
                f"2 epochs of train.run at the cifar10 preset, {what}; epoch 2 timed (bench/end_to_end.py)")


PARTS = (
    Part("env", (20, 20), lambda run: _module(run, "bench.gpu_parts", "env"),
         "device, driver, versions, which optional packages are present, the cost model's floor"),
    Part("kernel_check", (90, 40), lambda run: _pytest(
        run, "kernel_check", "tests/test_adain.py", "-k",
        "float64_reference and cpu and 2x3x5x7 and float32" if run.dry_run else "float64 and cuda"),
         "the fused AdaIN forward, backward and stats against float64 on the device (tests/test_adain.py)"),
    Part("adain", (40, 20), lambda run: _module(run, "bench.gpu_parts", "adain"),
         "AdaIN relu4_1 at 224 px, N=256, fp32 and bf16, both layouts: forward and backward GB/s against a copy"),
    Part("stylized_over_plain", (200, 90), lambda run: _bench(
        run, "stylized_over_plain", "bench/test_train_step_bench.py", "-k", "plain or native or paper224 or cache",
        *([] if run.dry_run else ["--benchmark-warmup=off", "--benchmark-min-rounds=5", "--benchmark-max-time=1"])),
         "a training step with and without style transfer: native, 224 px, cache (pytest-benchmark)",
         needs="pytest_benchmark"),
    _end_to_end("paper224", (150, 90), "224-px stylization (the preset; data generated first)"),
    _end_to_end("plain", (60, 60), "--no-stylize"),
    _end_to_end("native", (80, 70), "--style-resolution native"),
    _end_to_end("cache", (150, 100), "--stylize-cache (one stored variant per image, built first)"),
    Part("feed", (20, 20), lambda run: _module(run, "bench.gpu_parts", "feed"),
         "the training loader's 32 px batches, TrivialAugmentWide and Random Erasing, by each installed backend"),
    Part("adain_rest", (90, 30), lambda run: _module(run, "bench.gpu_parts", "adain_rest"),
         "AdaIN GB/s against a copy at the other relu1_1..relu4_1 maps of 32, 64, 224 px"),
    Part("profile", (150, 90), lambda run: _module(run, "bench.gpu_parts", "profile"),
         "torch.profiler of a stylized step (kernels, layout conversions), 64- vs 16-row buckets, reflect pads"),
    Part("cuda_tests", (150, 40), lambda run: _pytest(
        run, "cuda_tests", *(["tests/test_adain.py", "-k", "device_guard"] if run.dry_run else ["tests", "-k", "cuda"])),
         "the tests that need or name CUDA"),
    Part("bench_full", (600, 60), lambda run: _bench(run, "bench_full", "bench",
                                                     *(["-k", "adain_forward and 32px and nchw"] if run.dry_run else [])),
         "pytest bench --bench-mode=full: every benchmark", needs="pytest_benchmark"),
)
FLOOR = "cost_model floor stylized_over_plain 224px cifar10"  # a figure of the env part
# Issue 20's "Goals the run reports" (H100). figure name -> (relation, bound or bound of the figures);
# the AdaIN rows carry theirs (bench/adain_bandwidth.py GOALS).
GOALS: dict[str, tuple[str, Any]] = {
    "kernel_check passed": (">=", 1), "kernel_check failed": ("<=", 0),
    "train_step[native] stylized_over_plain": ("<=", 1.08),
    "train_step[cache] stylized_over_plain": ("<=", 1.05),
    "train_step[paper224] stylized_over_plain": ("<=", lambda values: 1.15 * values[FLOOR]),
    "end_to_end[paper224] projected 600 epochs": ("<=", 60),
    "end_to_end[native] projected 600 epochs": ("<=", 25),
    **{f"end_to_end[{variant}] data_wait share": ("<", 0.05) for variant in end_to_end.VARIANTS},
}
RELATIONS = {"<=": operator.le, "<": operator.lt, ">=": operator.ge}


def module_available(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):  # a missing parent package ("nvidia")
        return False


def _utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _commit() -> str:
    try:
        head = subprocess.run(["git", "rev-parse", "--short=10", "HEAD"], cwd=REPO_ROOT, capture_output=True,
                              text=True, timeout=30)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO_ROOT,
                               capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return "unknown (no git)"
    return (head.stdout.strip() + (" + uncommitted changes" if dirty.stdout.strip() else "")) or "unknown"


def _format(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


class Run:
    """One invocation: its parts' processes, the deadline, the state the report is made of."""

    dry_run: bool
    out: Path
    work: Path

    def __init__(self, args: argparse.Namespace, parts: tuple[Part, ...]):
        self.dry_run = args.dry_run
        self.out = Path(args.out or tempfile.mkdtemp(prefix="gpu_run_dry_")).resolve()
        self.out.mkdir(parents=True, exist_ok=True)
        self.work = Path(args.work or tempfile.mkdtemp(prefix="gpu_run_work_")).resolve()
        self.keep_work = args.work is not None
        self.started = time.monotonic()
        self.deadline = self.started + args.time_limit
        self.lock = threading.RLock()
        self.parts = parts
        self.current: subprocess.Popen | None = None  # the running part's process, leader of its group
        self.stopped_by: int | None = None              # the signal that stopped the run
        self.run_id = uuid.uuid4().hex
        self.state = {"run_id": self.run_id, "dry_run": self.dry_run, "commit": _commit(), "started": _utc_now(),
                      "command": "bash bench/gpu_run.sh " + " ".join(args.argv), "time_limit_s": args.time_limit,
                      "parts": {part.name: {"status": "waiting", "what": part.what,
                                            "estimate_s": part.estimate_s[self.dry_run]} for part in parts},
                      "figures": []}
        # Children import from the checkout as their working directory; kept off their PYTHONPATH, where it
        # would make kernels/ and train/ top-level names and shadow an installed fastnst (tests/test_packaging.py).
        inherited = [path for path in os.environ.get("PYTHONPATH", "").split(os.pathsep)
                     if path and Path(path).resolve() != REPO_ROOT]
        self.env = {**{k: v for k, v in os.environ.items() if k != "PYTHONPATH"}, "PYTHONUNBUFFERED": "1",
                    RUN_MARK: self.run_id, **({"PYTHONPATH": os.pathsep.join(inherited)} if inherited else {})}
        if self.dry_run:
            self.env["CUDA_VISIBLE_DEVICES"] = ""  # the dry run is the CPU path, also on a GPU host

    def say(self, text: str) -> None:
        with self.lock:
            print(text, flush=True)

    # ----------------------------------------------------------------------------------- running a part

    def run_part(self, part: Part) -> bool:
        """Run ``part`` if it fits; False when it failed or was stopped by the deadline."""
        entry = self.state["parts"][part.name]
        left = self.deadline - time.monotonic() - REPORT_MARGIN_S
        if part.needs and not module_available(part.needs):
            entry["status"] = f"not run (needs {part.needs}, not installed)"
        elif entry["estimate_s"] > left:
            entry["status"] = "not run (time)"
        if entry["status"] != "waiting":
            self.say(f"[gpu_run] {part.name}: {entry['status']}")
            self.write_report()
            return True
        self.say(f"[gpu_run] {part.name}: start ({part.what}; estimate {entry['estimate_s']:.0f} s, {left:.0f} s left)")
        started = time.monotonic()
        entry.update(status="running", log=f"{part.name}.log")
        self.write_report()
        cap = 2 * entry["estimate_s"] + 30  # a part that hangs costs the parts after it no more than this
        (self.out / f"{part.name}.xml").unlink(missing_ok=True)  # no stale junit of an earlier run is read
        with open(self.out / entry["log"], "w", encoding="utf-8") as log:
            process = self.current = subprocess.Popen(
                part.command(self), cwd=REPO_ROOT, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                text=True, errors="replace", start_new_session=True)
            reader = threading.Thread(target=self._read, args=(part.name, process.stdout, log), daemon=True)
            reader.start()
            if self.stopped_by:  # a signal while the process was being started
                self.end_group(wait=False)
            try:
                code = process.wait(timeout=min(left, cap))
                entry["status"] = "ok" if code == 0 else f"failed (exit {code})"
            except subprocess.TimeoutExpired:
                entry["status"] = "stopped (time)" if left < cap else "stopped (ran past twice its estimate)"
            if self.stopped_by:
                entry["status"] = f"stopped ({signal.Signals(self.stopped_by).name})"
            self.end_group()
            reader.join(timeout=10)
        entry["seconds"] = round(time.monotonic() - started, 1)
        self._read_junit(part.name, entry)
        self.say(f"[gpu_run] {part.name}: {entry['status']} in {entry['seconds']:.0f} s")
        self.write_report()
        if entry["status"].startswith("failed"):
            tail = (self.out / entry["log"]).read_text(encoding="utf-8", errors="replace")[-1500:]
            self.say(f"[gpu_run] the end of {entry['log']}:\n{tail}")
        return entry["status"] == "ok"

    def _read(self, part_name: str, stream, log) -> None:
        for text in stream:
            log.write(text)
            figure = figures.parse(text)
            if figure:
                self.add_figure(part_name, figure)
        log.flush()

    def add_figure(self, part_name: str, figure: dict) -> None:
        with self.lock:
            self.state["figures"].append({"part": part_name, **figure})
            judged = self.judge(figure)
            self.say(f"  {figure['name']} = {_format(figure['value'])[:300]} {figure.get('unit', '')}"
                     + (f"  [{judged}]" if judged else ""))
            self.write_report()

    def _read_junit(self, part_name: str, entry: dict) -> None:
        """pytest's --junitxml: counts as figures, failed test ids into the part's entry."""
        path = self.out / f"{part_name}.xml"
        if not path.is_file():
            return
        root = ElementTree.parse(path).getroot()
        cases = list(root.iter("testcase"))
        failed = [f"{case.get('classname')}::{case.get('name')}" for case in cases
                  if case.find("failure") is not None or case.find("error") is not None]
        skipped = sum(case.find("skipped") is not None for case in cases)
        entry["failed_tests"] = failed[:30]
        for name, count in (("passed", len(cases) - len(failed) - skipped), ("failed", len(failed)),
                            ("skipped", skipped)):
            self.add_figure(part_name, {"name": f"{part_name} {name}", "value": count, "unit": "tests"})

    # ----------------------------------------------------------------------------------- stopping

    def on_signal(self, signum, frame) -> None:
        """SIGTERM / SIGINT: end the running part now; the loop then starts no other and writes the report."""
        self.stopped_by = signum
        self.end_group(wait=False)

    def end_group(self, wait: bool = True) -> None:
        """End the running part's process group (SIGTERM, then SIGKILL after 5 s), then any process of the
        run that left it (all carry RUN_MARK in their environment; Linux's /proc lists them)."""
        process = self.current
        if process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        if not wait:  # in the signal handler: the part's wait() returns, and the loop ends it for good
            return
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=5)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        mark = f"{RUN_MARK}={self.run_id}".encode()
        for environ in Path("/proc").glob("[0-9]*/environ"):
            with contextlib.suppress(OSError, ValueError):
                if mark in environ.read_bytes().split(b"\0"):
                    os.kill(int(environ.parent.name), signal.SIGKILL)
        self.current = None

    # ----------------------------------------------------------------------------------- the report

    def values(self) -> dict:
        return {figure["name"]: figure["value"] for figure in self.state["figures"]}

    def judge(self, figure: dict, values: dict | None = None) -> str:
        goal = figure.get("goal") or GOALS.get(figure["name"])
        if goal is None:
            return ""
        relation, bound = goal
        if callable(bound):
            try:
                bound = bound(values or self.values())
            except KeyError:
                return f"{relation} ? (its bound needs the env part)"
        met = RELATIONS[relation](figure["value"], float(bound))
        return f"{'met' if met else 'MISSED'}: {relation} {bound:.3g}"

    def goal_lines(self) -> list[str]:
        """A Markdown row per goal: the AdaIN rows that carry one, then GOALS, measured or not."""
        values, latest = self.values(), {figure["name"]: figure for figure in self.state["figures"]}
        judged = [figure for figure in self.state["figures"] if figure.get("goal")]
        judged += [latest.get(name) or {"name": name, "value": "not measured", "goal": goal}
                   for name, goal in GOALS.items()]
        rows = []
        for figure in judged:
            if figure["value"] == "not measured":
                relation, bound = figure["goal"]
                verdict = f"{relation} {'1.15 x the floor' if callable(bound) else _format(bound)}"
            else:
                verdict = self.judge(figure, values)
            rows.append(f"| {figure['name']} | {_format(figure['value'])} {figure.get('unit', '')} | {verdict} |")
        return rows

    def render(self) -> str:
        state, values = self.state, self.values()
        lines = [f"# GPU run: {values.get('device', 'device not known yet')}, {state['started'][:10]}", ""]
        if self.dry_run:
            lines += ["**DRY RUN on the CPU at tiny sizes: these figures measure nothing; they show that every "
                      "part of `bench/gpu_run.py` runs.**", ""]
        lines += [f"- command: `{state['command']}`", f"- code: {state['commit']}",
                  f"- started {state['started']} UTC; written {state['updated']} UTC, after "
                  f"{state['elapsed_s']:.0f} s of the {state['time_limit_s']:.0f} s limit",
                  "", "## Goals (issue 20)", "", "| figure | value | goal |", "| --- | ---: | --- |", *self.goal_lines(),
                  "", "## Parts", "", "| part | status | seconds | estimate | what |", "| --- | --- | ---: | ---: | --- |"]
        for name, entry in state["parts"].items():
            lines.append(f"| {name} | {entry['status']} | {entry.get('seconds', '-')} | {entry['estimate_s']:.0f} | "
                         f"{entry['what']} |")
        lines += [f"- FAILED {name}: {test}" for name, entry in state["parts"].items()
                  for test in entry.get("failed_tests", [])]
        lines += ["", "## Figures", "", "| part | figure | value | details |", "| --- | --- | ---: | --- |"]
        for figure in state["figures"]:
            details = ", ".join(f"{key} {_format(value)}" for key, value in figure.items()
                                if key not in ("part", "name", "value", "unit", "goal"))
            text = _format(figure["value"]).replace("\n", " ").replace("|", "/")
            lines.append(f"| {figure['part']} | {figure['name']} | {text} {figure.get('unit', '')} | {details} |")
        lines += ["", "Each part's output: `<part>.log` beside this file; pytest's: `<part>.xml` (junit) and "
                      "`<part>.bench.json` (pytest-benchmark)."]
        return "\n".join(lines) + "\n"

    def write_report(self) -> None:
        with self.lock:
            self.state.update(updated=_utc_now(), elapsed_s=round(time.monotonic() - self.started, 1))
            for name, text in (("report.json", json.dumps(self.state, indent=1, default=str)), ("report.md", self.render())):
                temporary = self.out / f".{name}.tmp"
                temporary.write_text(text, encoding="utf-8")
                os.replace(temporary, self.out / name)  # a stop mid-write never leaves half a report


def _parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bash bench/gpu_run.sh", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=None, help="folder for the report, logs and results (required unless "
                        "--dry-run, which defaults to a new temp folder)")
    parser.add_argument("--dry-run", action="store_true", help="tiny sizes on the CPU, every part (CI)")
    parser.add_argument("--time-limit", type=float, default=540.0,
                        help="seconds for the whole run, the report included (default 540: one 600-s call)")
    parser.add_argument("--part", default=None, help=f"comma-separated parts to run (env always runs first): "
                        f"{', '.join(part.name for part in PARTS)}")
    parser.add_argument("--work", default=None, help="folder for the end-to-end parts' generated data, kept "
                        "(default: a temp folder, removed at the end)")
    args = parser.parse_args(argv)
    if not args.out and not args.dry_run:
        parser.error("--out DIR is required (the folder the GPU host hands back)")
    args.argv = argv
    return args


def select_parts(requested: str | None, parts: tuple[Part, ...] = PARTS) -> tuple[Part, ...]:
    if requested is None:
        return parts
    names = {"env"} | {name.strip() for name in requested.split(",") if name.strip()}
    unknown = sorted(names - {part.name for part in parts})
    if unknown:
        raise SystemExit(f"gpu_run: error: unknown part {', '.join(unknown)}; "
                         f"expected {', '.join(part.name for part in parts)}")
    return tuple(part for part in parts if part.name in names)


def main(argv: list[str] | None = None, parts: tuple[Part, ...] = PARTS) -> int:
    args = _parse_args(sys.argv[1:] if argv is None else argv)
    run = Run(args, select_parts(args.part, parts))
    run.say(f"[gpu_run] {len(run.parts)} parts{' (DRY RUN, CPU)' if run.dry_run else ''}, time limit "
            f"{args.time_limit:.0f} s; report: {run.out / 'report.md'}")
    handlers = {signum: signal.signal(signum, run.on_signal) for signum in (signal.SIGTERM, signal.SIGINT)}
    status = 0
    try:
        for part in run.parts:
            if run.stopped_by:
                run.state["parts"][part.name]["status"] = "not run (stopped)"
            elif not run.run_part(part):
                status = 1
    finally:
        run.end_group()
        run.write_report()
        for signum, handler in handlers.items():
            signal.signal(signum, handler)
        if not run.keep_work:
            shutil.rmtree(run.work, ignore_errors=True)
    if run.stopped_by:
        status = 128 + run.stopped_by
    run.say("[gpu_run] goals:\n" + "\n".join(run.goal_lines()))
    run.say("[gpu_run] parts: " + ", ".join(f"{name} {entry['status']}" for name, entry in run.state["parts"].items()))
    run.say(f"[gpu_run] report: {run.out / 'report.md'} (exit {status})")
    return status


if __name__ == "__main__":
    sys.exit(main())
