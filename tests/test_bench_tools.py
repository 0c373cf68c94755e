"""The tools around ``pytest bench``: best-of runs and baselines, the plot, and the shared conftest.

No timing is asserted here: the results files are made up, and the one inner pytest run
checks what the conftest records and which settings it applies, not how fast anything is.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import compare, figures, plot

REPO_ROOT = Path(__file__).resolve().parents[1]

pytest_plugins = ["pytester"]

CPU_ENV = {"device": "cpu (2 cores, Test CPU)", "device_kind": "cpu-2core", "bench_mode": "cpu"}


def _benchmark(fullname: str, median: float, **extra_info) -> dict:
    # min and mean differ from the median on purpose, so a test can tell which one was compared.
    stats = {
        "median": median, "min": median * 0.5, "mean": median * 1.5, "max": median * 2.0,
        "q1": median * 0.9, "q3": median * 1.2, "rounds": 5, "iterations": 1, "data": [median] * 5,
    }
    return {"name": fullname.split("::")[-1], "fullname": fullname, "group": None, "stats": stats, "extra_info": extra_info}


def _results(medians: dict[str, float], env: dict = CPU_ENV, **extra_by_name) -> dict:
    return {
        "machine_info": {"node": "build-host-17", "fastnst": dict(env)},
        "commit_info": {"id": "0123456789abcdef"},
        "datetime": "2026-11-25T13:40:00",
        "benchmarks": [_benchmark(name, median, **extra_by_name.get(name, {})) for name, median in medians.items()],
    }


def _write(path: Path, results: dict) -> Path:
    path.write_text(json.dumps(results), encoding="utf-8")
    return path


STEP = "bench/test_train_step_bench.py::test_train_step[stylized]"
ADAIN = "bench/test_adain_bench.py::test_adain_forward[32px]"
CORRUPT = "bench/test_corruptions_bench.py::test_corrupt[fog]"


# --------------------------------------------------------------------------- compare


def test_best_of_several_runs_keeps_each_benchmarks_fastest_entry():
    quiet = _results({STEP: 2.0, ADAIN: 5e-3})
    contended = _results({STEP: 3.0, ADAIN: 1e-3, CORRUPT: 0.1})
    best = compare.best_of([quiet, contended])
    assert {b["fullname"]: b["stats"]["median"] for b in best["benchmarks"]} == {STEP: 2.0, ADAIN: 1e-3, CORRUPT: 0.1}
    assert best["best_of_runs"] == 2 and best["machine_info"] == quiet["machine_info"]
    with pytest.raises(ValueError, match="different bench modes"):
        compare.best_of([quiet, _results({STEP: 2.0}, env={**CPU_ENV, "bench_mode": "full"})])


def test_cli_prints_img_per_s_and_ratios_of_the_best_run_against_the_baseline(tmp_path, capsys):
    baseline = _write(tmp_path / "baseline.json", _results(
        {STEP: 2.0, ADAIN: 1e-3}, **{STEP: {"stylized_over_plain": 1.07, "images_per_second": 100.0, "shape": [32]}}))
    slow = _write(tmp_path / "slow.json", _results(
        {STEP: 4.0}, **{STEP: {"stylized_over_plain": 1.5, "images_per_second": 50.0, "shape": [32]}}))
    quick = _write(tmp_path / "quick.json", _results(
        {STEP: 1.6, ADAIN: 2e-3}, **{STEP: {"stylized_over_plain": 1.25, "images_per_second": 125.0, "shape": [32]}}))
    assert compare.main([str(slow), str(quick), "--baseline", str(baseline)]) == 0
    out = " ".join(capsys.readouterr().out.split())  # the columns' widths aside
    assert "train_step[stylized] 125 img/s (batch 32) +25.0% img/s vs baseline" in out
    assert "adain_forward[32px] 2.000 ms a call +100.0% time vs baseline" in out
    assert "stylized_over_plain: train_step[stylized] 1.25 (baseline 1.07)" in out
    full_mode = _write(tmp_path / "full.json", _results({STEP: 2.0}, env={**CPU_ENV, "bench_mode": "full"}))
    assert compare.cli([str(full_mode), "--baseline", str(baseline)]) == 2
    assert "another bench mode" in capsys.readouterr().err


def test_cli_rejects_unusable_input_naming_the_file(tmp_path, capsys):
    assert compare.cli([str(tmp_path / "absent.json")]) == 2
    assert "absent.json: no such file" in capsys.readouterr().err

    (tmp_path / "broken.json").write_text("{not json", encoding="utf-8")
    assert compare.cli([str(tmp_path / "broken.json")]) == 2
    assert "broken.json: not a readable JSON file" in capsys.readouterr().err

    _write(tmp_path / "no_stats.json", {"benchmarks": [{"fullname": STEP}]})
    assert compare.cli([str(tmp_path / "no_stats.json")]) == 2
    assert "benchmarks[0] lacks" in capsys.readouterr().err


def test_update_baseline_writes_a_trimmed_file_of_the_best_run(tmp_path, capsys):
    run = _write(tmp_path / "run.json", _results({STEP: 2.0, ADAIN: 1e-3}))
    other = _write(tmp_path / "other.json", _results({STEP: 1.5}))
    assert compare.main([str(run), str(other), "--update-baseline", str(tmp_path / "baselines" / "cpu-2core.json")]) == 0
    saved = json.loads((tmp_path / "baselines" / "cpu-2core.json").read_text(encoding="utf-8"))
    assert "node" not in saved["machine_info"]  # no host name in the repository
    assert all("data" not in benchmark["stats"] for benchmark in saved["benchmarks"])
    assert [b["stats"]["median"] for b in saved["benchmarks"]] == [1.5, 1e-3]


def test_trimmed_baseline_is_read_by_pytest_benchmark_itself(tmp_path):
    # `pytest bench --benchmark-compare=<baseline file>` goes through pytest-benchmark's file storage.
    storage_module = pytest.importorskip("pytest_benchmark.storage.file")
    baseline = tmp_path / "cpu-2core.json"
    baseline.write_text(json.dumps(compare.trimmed_for_baseline(_results({STEP: 2.0}))), encoding="utf-8")

    class _Logger:
        def warning(self, message):
            raise AssertionError(message)

    storage = storage_module.FileStorage(tmp_path / "storage", logger=_Logger(), default_machine_id="x")
    [(_, loaded)] = list(storage.load(str(baseline)))
    assert loaded["benchmarks"][0]["fullname"] == STEP
    assert loaded["benchmarks"][0]["stats"]["ops"] == pytest.approx(1 / 3.0)  # 1 / mean, filled on load


# --------------------------------------------------------------------------- plot


def _results_for_plot() -> dict:
    pipeline = "bench/test_pipeline_bench.py::test_pipeline[32px]"
    return _results(
        {STEP: 2.0, ADAIN: 1e-3, pipeline: 0.05},
        **{
            STEP: {"stylized_over_plain": 1.07, "images_per_s": 256.0},
            pipeline: {"images_per_s": 5120.0, "uses_gpu": True, "synthetic_ratio": 0.5},
            ADAIN: {"fused_gb_per_s": 3.2, "dtype": "float32"},
        },
    )


def test_plot_picks_throughputs_and_ratios_from_extra_info():
    results = _results_for_plot()
    throughputs = plot.extra_figures(results["benchmarks"], plot.THROUGHPUT_KEY)
    assert sorted(throughputs) == ["fused_gb_per_s", "images_per_s"]
    assert sorted(value for _, value in throughputs["images_per_s"]) == [256.0, 5120.0]
    ratios = plot.extra_figures(results["benchmarks"], plot.RATIO_KEY)
    assert list(ratios) == ["stylized_over_plain"]
    assert plot.short_label(results["benchmarks"][0]) == "train_step::train_step[stylized]"
    assert plot.short_label(results["benchmarks"][1]) == "adain::forward[32px]"


def test_plot_writes_a_png_with_one_panel_per_figure_kind(tmp_path, capsys):
    matplotlib_image = pytest.importorskip("matplotlib.image")
    source = _write(tmp_path / "results.json", _results_for_plot())
    out = tmp_path / "figures" / "bench.png"
    assert plot.main([str(source), "--out", str(out)]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # times + two throughput keys + ratios = 4 panels: taller than a times-only plot.
    tall_height = matplotlib_image.imread(out).shape[0]
    times_only = _write(tmp_path / "times_only.json", _results({STEP: 2.0, ADAIN: 1e-3, CORRUPT: 0.1}))
    assert plot.main([str(times_only), "--out", str(tmp_path / "small.png")]) == 0
    assert matplotlib_image.imread(tmp_path / "small.png").shape[0] < tall_height


def test_markdown_table_has_a_row_per_benchmark_with_its_figures():
    table = plot.markdown_table(_results_for_plot()).splitlines()
    assert len(table) == 2 + 3
    step_row = next(row for row in table if "train_step::" in row)
    assert "| 2.000 s |" in step_row and "stylized_over_plain 1.07" in step_row and "images_per_s 256" in step_row
    pipeline_row = next(row for row in table if "pipeline::" in row)
    assert "uses_gpu" not in pipeline_row and "synthetic_ratio" not in pipeline_row  # not results


def test_plot_refuses_an_empty_or_missing_file(tmp_path, capsys):
    empty = _write(tmp_path / "empty.json", {"benchmarks": []})
    assert plot.cli([str(empty), "--out", str(tmp_path / "x.png")]) == 2
    error = capsys.readouterr().err
    assert error.startswith("python -m bench.plot: error: ") and "empty.json: the results hold no benchmarks" in error
    assert plot.cli([str(tmp_path / "missing.json"), "--out", str(tmp_path / "x.png")]) == 2
    assert "missing.json: no such file" in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()


# --------------------------------------------------------------------------- conftest


def test_bench_mode_defaults_to_full_only_with_cuda():
    from bench import conftest as bench_conftest

    assert bench_conftest.resolve_bench_mode(None, cuda_available=True) == "full"
    assert bench_conftest.resolve_bench_mode(None, cuda_available=False) == "cpu"
    assert bench_conftest.resolve_bench_mode("cpu", cuda_available=True) == "cpu"
    assert str(bench_conftest.select_device("cpu", cuda_available=True)) == "cpu"
    assert str(bench_conftest.select_device("full", cuda_available=True)) == "cuda"
    assert str(bench_conftest.select_device("full", cuda_available=False)) == "cpu"


INNER_BENCH = """
import time

def test_sleep(benchmark, bench_mode, bench_device, cuda_sync):
    benchmark.extra_info["dtype"] = "none"
    def step():
        time.sleep(0.002)
        cuda_sync()
    benchmark(step)
    if benchmark.stats:
        benchmark.extra_info.update(shape=[8, 3, 32, 32], images_per_second=8 / benchmark.stats.stats.median,
                                    stylized_over_plain=1.25)

def test_not_a_benchmark(bench_mode):
    assert bench_mode in ("cpu", "full")
"""


@pytest.fixture
def inner_bench(pytester):
    pytester.makeconftest((REPO_ROOT / "bench" / "conftest.py").read_text(encoding="utf-8"))
    pytester.makepyfile(test_inner_bench=INNER_BENCH)
    return pytester


def _inner_run(pytester, *args) -> dict:
    result = pytester.runpytest_inprocess("--benchmark-json=out.json", "-p", "no:cacheprovider", *args)
    result.assert_outcomes(passed=2)
    return json.loads((pytester.path / "out.json").read_text(encoding="utf-8"))


def test_conftest_records_environment_and_applies_mode_defaults(inner_bench):
    import torch

    results = _inner_run(inner_bench, "--bench-mode=cpu", "--benchmark-max-time=0.02")
    [benchmark] = results["benchmarks"]  # the test without `benchmark` made no result
    info = benchmark["extra_info"]
    assert info["bench_mode"] == "cpu" and info["device"].startswith("cpu (") and info["device_kind"].startswith("cpu-")
    assert info["torch"] == torch.__version__ and info["dtype"] == "none"
    assert {"torchvision", "triton", "dali", "python"} <= set(info)
    assert results["machine_info"]["fastnst"]["device_kind"] == info["device_kind"]
    options = benchmark["options"]
    assert options["min_rounds"] == 3 and not options["warmup"]  # the cpu mode's defaults...
    assert options["max_time"] == pytest.approx(0.02)  # ...but an explicit flag wins
    assert benchmark["stats"]["rounds"] >= 3


def test_conftest_explicit_rounds_win_and_bad_mode_is_a_usage_error(inner_bench):
    results = _inner_run(inner_bench, "--bench-mode=cpu", "--benchmark-min-rounds=4", "--benchmark-max-time=0.001")
    assert results["benchmarks"][0]["options"]["min_rounds"] == 4
    assert results["benchmarks"][0]["stats"]["rounds"] == 4
    usage = inner_bench.runpytest_inprocess("--bench-mode=gpu")
    assert usage.ret == pytest.ExitCode.USAGE_ERROR
    assert "--bench-mode" in "\n".join(usage.errlines)


def test_summary_speaks_in_img_per_s_and_ratios_against_the_baseline(inner_bench):
    """Issue 21: under pytest-benchmark's table, img/s with the batch, the ratios, the change against a baseline."""
    import torch

    from bench import conftest as bench_conftest

    kind = bench_conftest.device_kind(torch.device("cpu"))
    fullname = "test_inner_bench.py::test_sleep"
    (inner_bench.path / "baselines").mkdir()
    (inner_bench.path / "baselines" / f"{kind}.json").write_text(json.dumps(_results(
        {fullname: 0.004}, env={**CPU_ENV, "device_kind": kind},
        **{fullname: {"images_per_second": 2000.0, "stylized_over_plain": 1.07, "shape": [8]}})))
    result = inner_bench.runpytest_inprocess("--bench-mode=cpu", "--benchmark-max-time=0.02", "-p", "no:cacheprovider",
                                             "--figure-lines")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*Name (time in ms)*", "*fastnst bench: images per second and ratios*",
                                 "sleep  * img/s  (batch 8)  *% img/s vs baseline",
                                 "stylized_over_plain: sleep 1.25 (baseline 1.07)", f"baseline: bench/baselines/{kind}.json"])
    lines = [figures.parse(text) for text in result.outlines if figures.parse(text)]
    assert [line["name"] for line in lines] == ["sleep images_per_second", "sleep stylized_over_plain",
                                                "sleep median_seconds"]
    assert lines[0]["batch"] == 8 and lines[0]["unit"] == "img/s"


def test_no_summary_without_timings_and_a_baseline_of_another_mode_is_refused(inner_bench, tmp_path):
    result = inner_bench.runpytest_inprocess("--bench-mode=cpu", "--benchmark-disable", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)
    assert "fastnst bench" not in result.stdout.str()
    full_mode = _write(tmp_path / "full.json", _results({STEP: 2.0}, env={**CPU_ENV, "bench_mode": "full"}))
    refused = inner_bench.runpytest_inprocess("--bench-mode=cpu", f"--benchmark-compare={full_mode}")
    assert refused.ret == pytest.ExitCode.USAGE_ERROR
    assert "saved run was made in bench mode 'full'" in "\n".join(refused.errlines)
