"""bench/gpu_run.py, the one-command GPU run, and its pieces: kept working on a CPU so it cannot rot.

The whole dry run (``bash bench/gpu_run.sh --dry-run``) is in .ci/run; here its pieces, the run's
logic with small stand-in parts (the order, the time budget, the report written as it goes, the
deadline and signals ending every process), and a real dry run stopped by SIGTERM after two parts.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from bench import end_to_end, figures, gpu_run, kernel_table
from bench.kernel_table import WorkRecord

REPO_ROOT = Path(__file__).resolve().parents[1]

pytest_plugins = ["pytester"]


# --------------------------------------------------------------------------- layout-conversion rule

CONV = ("aten::cudnn_convolution", "aten::_convolution", "aten::convolution", "aten::conv2d")
COPY_KERNEL = "void at::native::elementwise_kernel<128, 4, at::native::gpu_kernel_impl_nocast<at::native::direct_copy_kernel_cuda>>"


def test_layout_rule_counts_contiguous_copies_and_transposes_not_dtype_copies():
    records = [
        WorkRecord(COPY_KERNEL, 30.0, ("aten::copy_", "aten::clone", "aten::contiguous", "aten::reflection_pad2d")),
        WorkRecord(COPY_KERNEL, 20.0, ("aten::copy_", "aten::clone", "aten::contiguous") + CONV),
        WorkRecord("void cudnn::ops::nchwToNhwcKernel<__nv_bfloat16>", 5.0, CONV),
        WorkRecord("triton_poi_fused_clone_convolution_3", 4.0, ("## Call CompiledFxGraph ##",)),
        WorkRecord(COPY_KERNEL, 7.0, ("aten::copy_", "aten::_to_copy", "aten::to", "stylize")),      # dtype cast
        WorkRecord("sm90_xmma_fprop_implicit_gemm_bf16bf16_bf16f32_f32_nhwckrsc_nhwc", 900.0, CONV),
        WorkRecord("void at::native::reflection_pad3d_out_kernel<c10::BFloat16>", 34.0, ("aten::reflection_pad3d",)),
    ]
    summary = kernel_table.summarize(records, top=3)
    layout = summary["layout_conversions"]
    assert layout["count"] == 4 and layout["total_ms"] == pytest.approx(0.059)
    assert summary["other_copies"] == {"count": 1, "total_ms": pytest.approx(0.007)}
    assert summary["total_ms"] == pytest.approx(1.0) and layout["share"] == pytest.approx(0.059)
    assert [row["count"] for row in summary["top"]] == [1, 3, 1]  # by total time: the GEMM, the copies, the pad
    assert summary["regions_ms"]["stylize"] == pytest.approx(0.007)
    launchers = {row["launched_from"] for row in layout["by_source"]}
    assert "aten::copy_ < aten::clone < aten::contiguous" in launchers
    text = kernel_table.markdown(summary)
    assert "Layout conversions: **4** kernels" in text and "nchwToNhwcKernel" in text


def test_layout_rule_on_a_real_cpu_profile():
    """A real profile: the layout copy of .contiguous() is counted, a dtype cast and a reflect pad are not."""
    from torch.profiler import ProfilerActivity, profile

    images = torch.randn(4, 8, 16, 16).contiguous(memory_format=torch.channels_last)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        images.contiguous()
        images.to(torch.bfloat16)
        F.pad(images, (1, 1, 1, 1), mode="reflect")
    records = kernel_table.work_records(prof.events(), on_device=False)
    layout = [record for record in records if kernel_table.is_layout_conversion(record)]
    assert layout and all("aten::contiguous" in record.chain for record in layout)
    assert not any("aten::_to_copy" in record.chain or "reflection" in record.name for record in layout)
    assert any(kernel_table.is_other_copy(record) and "aten::_to_copy" in record.chain for record in records)


# --------------------------------------------------------------------------- DALI-missing plugin

def test_missing_dali_turns_only_dali_import_failures_into_skips(pytester, monkeypatch):
    import bench.missing_dali

    monkeypatch.setattr(bench.missing_dali, "dali_available", lambda: False)
    pytester.makepyfile(test_inner="""
        def test_needs_dali():
            raise ModuleNotFoundError("No module named 'nvidia.dali'", name="nvidia.dali")

        def test_subprocess_output_names_it():
            assert False, "stderr: ModuleNotFoundError: No module named 'nvidia.dali'"

        def test_real_failure():
            assert 1 == 2

        def test_other_missing_module():
            raise ModuleNotFoundError("No module named 'scipy'", name="scipy")
    """)
    result = pytester.runpytest_inprocess("-p", "bench.missing_dali", "-rs")
    result.assert_outcomes(passed=0, skipped=2, failed=2)
    result.stdout.fnmatch_lines(["*DALI not installed*"])


# --------------------------------------------------------------------------- train step (item 9)

@pytest.mark.filterwarnings("ignore::fastnst.RandomWeightsWarning")
def test_train_step_round_counts_stylized_rows_from_host_side_plans():
    """The figures' stylized rows come from the plans after the round (on CUDA nothing waits for the device)."""
    from bench.train_step import build_case

    case = build_case("native", "cpu", torch.device("cpu"), batch=8, steps=2)
    loss = case.run_round()
    assert torch.isfinite(loss)
    rows = case.last_call_rows()  # the CPU pads to no bucket
    assert rows["padded_to_last_call"] == rows["stylized_rows_last_call"] == case.last_plan.rows.numel()
    assert case.mean_stylized_per_batch(num_batches=200) == pytest.approx(8 * (0.5 * 0.4 + 0.5 * 0.1), abs=0.5)


# --------------------------------------------------------------------------- the run's logic

def _python(code: str):
    """A part's command: ``python -c code`` with OUT (the run's folder) and FIGURE (bench.figures.line)."""
    prelude = "import sys, time, subprocess, pathlib; from bench.figures import line as FIGURE; "
    return lambda run: [sys.executable, "-c", prelude + f"OUT = pathlib.Path({str(run.out)!r}); " + code]


def _part(name: str, code: str, estimate: float = 1.0, needs: str | None = None) -> gpu_run.Part:
    return gpu_run.Part(name, (estimate, estimate), _python(code), f"stand-in {name}", needs)


def _processes_of(run_id: str) -> list[int]:
    mark = f"{gpu_run.RUN_MARK}={run_id}".encode()
    alive = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            if mark in environ.read_bytes().split(b"\0"):
                alive.append(int(environ.parent.name))
        except OSError:
            pass
    return alive


def _report(out: Path) -> dict:
    return json.loads((out / "report.json").read_text(encoding="utf-8"))


def test_parts_run_in_order_and_what_does_not_fit_is_not_started(tmp_path, capsys):
    parts = (
        _part("env", "print(FIGURE('device', 'Test GPU'), flush=True)"),
        _part("first", "print(FIGURE('train_step[native] stylized_over_plain', 1.05, 'x'), flush=True)"),
        _part("too_long", "(OUT / 'started').write_text('x')", estimate=10_000),
        _part("broken", "print('a traceback', flush=True); sys.exit(3)"),
        _part("no_module", "(OUT / 'started').write_text('x')", needs="no_such_module_for_gpu_run"),
        _part("last", "print(FIGURE('train_step[cache] stylized_over_plain', 1.2, 'x'), flush=True)"),
    )
    assert gpu_run.main(["--out", str(tmp_path)], parts) == 1  # "broken" failed
    report = _report(tmp_path)
    assert {name: entry["status"] for name, entry in report["parts"].items()} == {
        "env": "ok", "first": "ok", "too_long": "not run (time)", "broken": "failed (exit 3)",
        "no_module": "not run (needs no_such_module_for_gpu_run, not installed)", "last": "ok"}
    assert not (tmp_path / "started").exists(), "a part that does not fit is never started"
    assert (tmp_path / "broken.log").read_text() == "a traceback\n"
    console = capsys.readouterr().out
    assert "  train_step[native] stylized_over_plain = 1.05 x  [met: <= 1.08]" in console
    assert "the end of broken.log:\na traceback" in console
    markdown = (tmp_path / "report.md").read_text()
    assert markdown.startswith("# GPU run: Test GPU, ")
    assert "| train_step[cache] stylized_over_plain | 1.2 x | MISSED: <= 1.05 |" in markdown
    assert "| end_to_end[paper224] projected 600 epochs | not measured  | <= 60 |" in markdown
    assert "| too_long | not run (time) | - | 10000 |" in markdown
    with pytest.raises(SystemExit, match="unknown part gpu"):
        gpu_run.select_parts("first,gpu", parts)
    assert [part.name for part in gpu_run.select_parts("last", parts)] == ["env", "last"]


def test_the_deadline_stops_a_part_keeps_its_figures_and_ends_every_process(tmp_path):
    escapee = "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'], start_new_session=True)"
    parts = (_part("env", "pass"),
             _part("slow", f"{escapee}; print(FIGURE('feed images_per_second', 5.0, 'img/s'), flush=True); "
                           "time.sleep(120)", estimate=1),
             _part("after", "pass", estimate=1))
    started = time.monotonic()
    code = gpu_run.main(["--out", str(tmp_path), "--time-limit", str(gpu_run.REPORT_MARGIN_S + 4)], parts)
    assert code == 1 and time.monotonic() - started < 30
    report = _report(tmp_path)
    assert report["parts"]["slow"]["status"] == "stopped (time)"
    assert report["parts"]["after"]["status"] == "not run (time)"
    assert [figure["name"] for figure in report["figures"]] == ["feed images_per_second"]
    assert _processes_of(report["run_id"]) == [], "the part and the process that left its group are gone"


def test_judging_goals_and_reading_junit(tmp_path):
    parts = (_part("env", "print(FIGURE(" + repr(gpu_run.FLOOR) + ", 3.4, 'x'), flush=True)"),
             _part("kernel_check", textwrap.dedent('''(OUT / 'kernel_check.xml').write_text(
                 '<testsuites><testsuite><testcase classname="tests.test_adain" name="test_a[cuda]"/>'
                 '<testcase classname="tests.test_adain" name="test_b[cuda]"><failure message="x"/></testcase>'
                 '<testcase classname="tests.test_adain" name="test_c[cuda]"><skipped/></testcase>'
                 '</testsuite></testsuites>')''')),
             _part("adain", "print(FIGURE('adain relu4_1 224px bfloat16 nchw forward', 0.9, 'of copy', "
                            "goal=['>=', 0.85]), FIGURE('train_step[paper224] stylized_over_plain', 4.0, 'x'), "
                            "sep=chr(10), flush=True)"))
    assert gpu_run.main(["--out", str(tmp_path)], parts) == 0
    markdown = (tmp_path / "report.md").read_text()
    assert "| kernel_check passed | 1 tests | met: >= 1 |" in markdown
    assert "| kernel_check failed | 1 tests | MISSED: <= 0 |" in markdown
    assert "- FAILED kernel_check: tests.test_adain::test_b[cuda]" in markdown
    assert "| adain relu4_1 224px bfloat16 nchw forward | 0.9 of copy | met: >= 0.85 |" in markdown
    assert "| train_step[paper224] stylized_over_plain | 4 x | MISSED: <= 3.91 |" in markdown  # 1.15 x the floor


def test_figure_lines_round_trip():
    assert figures.parse("..." + figures.line("a b", 1.5, "x", batch=8)) == {"name": "a b", "value": 1.5, "unit": "x",
                                                                            "batch": 8}
    assert figures.parse("plain output") is None and figures.parse(figures.PREFIX + "{broken") is None


def test_end_to_end_figures_from_a_metrics_row(capsys):
    row = {"epoch": 2, "epoch_seconds": 6.0, "images_per_second": 50_000 / 6.0, "stylize_seconds": 1.5,
           "data_wait_seconds": 0.6}
    end_to_end.emit_figures("paper224", row, {"model": "wrn28_4", "batch_size": 256, "compile": True}, 600, 50_000)
    emitted = {figure["name"]: figure for figure in map(figures.parse, capsys.readouterr().out.splitlines())}
    assert emitted["end_to_end[paper224] projected 600 epochs"]["value"] == pytest.approx(60.0)
    assert emitted["end_to_end[paper224] speed-up over the authors' 60.6 s/epoch"]["value"] == pytest.approx(10.1)
    assert emitted["end_to_end[paper224] data_wait share"]["value"] == pytest.approx(0.1)
    assert emitted["end_to_end[paper224] epoch 2 seconds"]["compile"] is True
    assert "end_to_end[paper224] step share" not in emitted  # only what train.run reports
    assert "end_to_end[paper224] whole epoch seconds" not in emitted  # a whole epoch ran


def test_end_to_end_projects_a_cut_epoch_from_its_images_per_second(capsys):
    row = {"epoch": 2, "epoch_seconds": 1.2, "images_per_second": 2560 / 1.2, "step_seconds": 1.0}
    end_to_end.emit_figures("plain", row, {"batch_size": 256, "max_steps_per_epoch": 10}, 600, 50_000)
    emitted = {figure["name"]: figure for figure in map(figures.parse, capsys.readouterr().out.splitlines())}
    assert emitted["end_to_end[plain] whole epoch seconds"]["value"] == pytest.approx(50_000 / 2560 * 1.2)
    assert emitted["end_to_end[plain] projected 600 epochs"]["value"] == pytest.approx(50_000 / 2560 * 1.2 * 10)
    assert emitted["end_to_end[plain] step share"]["value"] == pytest.approx(1.0 / 1.2)


@pytest.mark.slow
def test_a_dry_run_stopped_after_its_second_part_leaves_the_report_and_no_process(tmp_path):
    """The real script, as CI runs it, sent SIGTERM when its third part starts."""
    env = {**os.environ, "PYTHON": sys.executable}
    process = subprocess.Popen(["bash", str(REPO_ROOT / "bench" / "gpu_run.sh"), "--dry-run", "--out", str(tmp_path)],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    seen = []
    for text in process.stdout:
        seen.append(text)
        if text.startswith("[gpu_run] adain: start"):
            process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 128 + signal.SIGTERM, "".join(seen)[-3000:]
    report = _report(tmp_path)
    statuses = {name: entry["status"] for name, entry in report["parts"].items()}
    assert statuses["env"] == statuses["kernel_check"] == "ok"
    assert statuses["adain"] == "stopped (SIGTERM)"
    assert set(list(statuses.values())[3:]) == {"not run (stopped)"}
    assert "| kernel_check | ok |" in (tmp_path / "report.md").read_text()
    assert report["dry_run"] and _processes_of(report["run_id"]) == []
