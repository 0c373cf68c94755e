"""bench/gpu_run.py, the one-command GPU run, and its pieces: kept working on a CPU so it cannot rot.

The whole dry run (``bash bench/gpu_run.sh --dry-run``) is in .ci/run; here its pieces, a short
dry run of two parts, and the run's logic with stubbed parts (exit status, merging, the report).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # `bench` is a top-level folder of the checkout, not an installed package
    sys.path.insert(0, str(REPO_ROOT))

from bench import gpu_run, kernel_table  # noqa: E402
from bench.kernel_table import WorkRecord  # noqa: E402
from bench.torch_feed import CROP_PADDING, TorchFeed, measure_feed  # noqa: E402

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


# --------------------------------------------------------------------------- torch-only feed

def test_torch_feed_gives_crops_of_padded_images_flipped_or_not():
    count, side = 12, 8
    images = torch.arange(count * side * side * 3, dtype=torch.int64).remainder(251).add(1).to(torch.uint8)
    images = images.view(count, side, side, 3)  # no zero pixel: the zero padding is recognisable
    feed = TorchFeed(images, batch_size=4, seed=3)
    seen, flipped = [], 0
    for _ in range(count // 4):
        batch = feed.next_batch()
        indices = feed._order[feed._position - 4:feed._position]
        assert batch.shape == (4, 3, side, side) and batch.dtype == torch.uint8
        assert batch.is_contiguous(memory_format=torch.channels_last)
        for crop, index in zip(batch.permute(0, 2, 3, 1), indices.tolist()):
            padded = F.pad(images[index], (0, 0, CROP_PADDING, CROP_PADDING, CROP_PADDING, CROP_PADDING))
            windows = [padded[y:y + side, x:x + side] for y in range(2 * CROP_PADDING + 1)
                       for x in range(2 * CROP_PADDING + 1)]
            plain = any(torch.equal(crop, window) for window in windows)
            mirrored = any(torch.equal(crop, window.flip(1)) for window in windows)
            assert plain or mirrored, "each sample is a window of its padded image, flipped or not"
            flipped += mirrored and not plain
        seen += indices.tolist()
    assert sorted(seen) == list(range(count)), "one epoch visits every image once"
    assert 0 < flipped < count
    result = measure_feed(images, batch_size=4, num_batches=2, warmup=1)
    assert result["images_per_second"] > 0 and result["channels_last"] and result["image_shape"] == [3, side, side]


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

def test_junit_summary_and_headline_from_bench(tmp_path):
    junit = tmp_path / "junit.xml"
    junit.write_text("""<?xml version="1.0"?><testsuites><testsuite tests="4" failures="1" errors="0" skipped="2">
        <testcase classname="tests.test_a" name="test_ok"/>
        <testcase classname="tests.test_a" name="test_bad"><failure message="assert 1 == 2&#10;more">x</failure></testcase>
        <testcase classname="tests.test_b" name="test_loader"><skipped message="Skipped: DALI not installed on this host"/></testcase>
        <testcase classname="tests.test_c" name="test_cuda"><skipped message="needs CUDA"/></testcase>
        </testsuite></testsuites>""", encoding="utf-8")
    summary = gpu_run._junit_summary(junit)
    assert (summary["passed"], summary["failures"], summary["skipped"], summary["skipped_for_missing_dali"]) == (1, 1, 2, 1)
    assert summary["failed"] == ["tests.test_a::test_bad (failure): assert 1 == 2"]
    assert gpu_run._junit_summary(tmp_path / "absent.xml") == {}

    def step(variant, **extra_info):
        return {"fullname": f"bench/test_train_step_bench.py::test_train_step[{variant}]", "stats": {"median": 1.0},
                "extra_info": extra_info}
    bench = {"results": {"benchmarks": [step("plain", images_per_second=5e4), step("native", stylized_over_plain=1.05),
                                        step("paper224", stylized_over_plain=1.9)]}}
    headline = gpu_run.headline_from_bench(bench)
    assert headline["stylized_over_plain"] == {"native": 1.05, "paper224": 1.9}
    assert headline["plain_images_per_second"] == 5e4
    assert gpu_run.headline_from_bench({"results": {"benchmarks": bench["results"]["benchmarks"][:2]}}) is None


def _stub_parts(monkeypatch, tests_status: str):
    def fake_worker(run, parts):
        out = {}
        for part in parts:
            if part == "env":
                out[part] = {"status": "ok", "device": "Test GPU", "device_kind": "test-gpu", "cpu_cores": 2,
                             "versions": {"torch": "x"}, "nvidia_smi": "stub"}
            elif part == "feed":
                out[part] = {"status": "ok", "dali": {"status": "skipped", "reason": "DALI not installed on this host"},
                             "torch_feed": {"images_per_second": 3e5, "batch": 512, "num_batches": 10, "device": "cuda"}}
            elif part == "headline":
                out[part] = {"status": "ok", "source": "stub", "stylized_over_plain": {"native": 1.05, "paper224": 2.4},
                             "plain_images_per_second": 5e4}
            else:
                out[part] = {"status": "crashed", "reason": "worker exited with code -11 during this part"}
        return out

    monkeypatch.setattr(gpu_run, "run_worker", fake_worker)
    monkeypatch.setattr(gpu_run, "run_tests", lambda run: {"status": tests_status, "passed": 3, "failures": 1,
                                                           "errors": 0, "skipped": 0, "exit_code": 1,
                                                           "failed": ["tests/test_x.py::test_y (failure): boom"]})


def test_a_failed_test_exits_non_zero_and_the_report_is_still_written(tmp_path, monkeypatch, capsys):
    _stub_parts(monkeypatch, "failed")
    code = gpu_run.main(["--part", "tests,headline,feed", "--out", str(tmp_path), "--fresh"])
    assert code == 1
    [report] = (tmp_path / "bench" / "results").glob("test-gpu-*.md")
    text = report.read_text(encoding="utf-8")
    assert "FAILED tests/test_x.py::test_y" in text
    assert "| paper224 (upsampled to 224 px) | 2.400 | MISSED (≤ 2) |" in text
    assert "DALI: skipped: DALI not installed on this host" in text and "6.0x, goal met (≥ 3)" in text
    assert not (tmp_path / "bench" / "baselines").exists(), "no bench part, no baseline"
    assert "FAILED parts: tests" in capsys.readouterr().out


def test_parts_of_one_day_accumulate_across_calls(tmp_path, monkeypatch):
    _stub_parts(monkeypatch, "ok")
    assert gpu_run.main(["--part", "tests", "--out", str(tmp_path)]) == 0
    assert gpu_run.main(["--part", "adain", "--out", str(tmp_path)]) == 1  # the stub crashes it
    [state_path] = (tmp_path / "bench" / "results").glob("test-gpu-*.json")
    state = json.loads(state_path.read_text(encoding="utf-8"))
    assert [call["parts"] for call in state["calls"]] == [["tests"], ["adain"]]
    assert state["parts"]["tests"]["status"] == "ok" and state["parts"]["adain"]["status"] == "crashed"
    with pytest.raises(SystemExit, match="unknown part"):
        gpu_run.resolve_parts(["tests,gpu"])


@pytest.mark.slow
def test_dry_run_of_two_parts_writes_its_files_outside_the_repo(tmp_path):
    """The real script, as CI runs it, for the two cheapest parts (the whole dry run is in .ci/run)."""
    env = {**os.environ, "PYTHON": sys.executable}
    completed = subprocess.run(["bash", str(REPO_ROOT / "bench" / "gpu_run.sh"), "--dry-run", "--part", "feed",
                                "--out", str(tmp_path)], capture_output=True, text=True, timeout=300, env=env)
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    results = tmp_path / "bench" / "results"
    [report] = results.glob("*.md")
    assert "DRY RUN" in report.read_text(encoding="utf-8")
    assert {path.suffix for path in results.iterdir()} == {".md", ".json", ".log"}
    state = json.loads(next(results.glob("*.json")).read_text(encoding="utf-8"))
    assert state["parts"]["env"]["status"] == "ok" and state["parts"]["feed"]["status"] == "ok"


def test_adain_part_reports_the_goal_rows_from_measure_bandwidth():
    """The adain part calls bench.adain_bandwidth as it is, and the report judges the rows that carry a goal."""
    result = gpu_run.part_adain(gpu_run.DRY, dry_run=True)
    assert result["status"] == "ok" and result["rows"]
    assert {row["image_side"] for row in result["rows"]} == set(gpu_run.DRY.adain_image_sizes)
    goal_row = {**result["rows"][0], "layer": "relu4_1", "image_side": 224, "pass": "forward", "goal": 0.85,
                "fraction_of_copy": 0.9}
    missed_row = {**goal_row, "pass": "backward", "goal": 0.75, "fraction_of_copy": 0.5}
    text = "\n".join(gpu_run._adain_section({**result, "rows": [*result["rows"], goal_row, missed_row]}))
    assert "| relu1_1 | 16 |" in text
    assert "relu4_1, 224 px, float32, nchw: forward 0.90 of copy, goal met (≥ 0.85)" in text
    assert "backward 0.50 of copy, goal MISSED (≥ 0.75)" in text
