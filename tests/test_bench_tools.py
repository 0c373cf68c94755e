"""The tools around ``pytest bench``: baseline comparison, the plot, and the shared conftest.

No timing is asserted here: the results files are made up, and the one inner pytest run
checks what the conftest records and which settings it applies, not how fast anything is.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

# `bench` is a top-level folder of the checkout, not an installed package.
REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench import compare, plot  # noqa: E402

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


def test_slowdown_beyond_threshold_is_a_regression_and_within_it_is_not():
    baseline = _results({STEP: 2.0, ADAIN: 1e-3})
    current = _results({STEP: 2.0 * 1.25, ADAIN: 1e-3 * 1.10})
    by_name = {c.fullname: c for c in compare.compare_results(current, baseline, threshold=0.15)}
    assert by_name[STEP].status == "regression"
    assert by_name[STEP].change == pytest.approx(0.25)
    assert by_name[ADAIN].status == "ok"
    assert compare.exit_status(list(by_name.values())) == compare.REGRESSION
    # A looser threshold accepts the same run.
    looser = compare.compare_results(current, baseline, threshold=0.30)
    assert {c.status for c in looser} == {"ok"}
    assert compare.exit_status(looser) == compare.OK


def test_faster_new_and_missing_are_reported_and_missing_fails_only_when_asked():
    baseline = _results({STEP: 2.0, ADAIN: 1e-3})
    current = _results({STEP: 1.0, CORRUPT: 5e-3})
    comparisons = compare.compare_results(current, baseline, threshold=0.15)
    assert [(c.fullname, c.status) for c in comparisons] == [(STEP, "faster"), (ADAIN, "missing"), (CORRUPT, "new")]
    assert comparisons[1].current_seconds is None and comparisons[1].change is None
    assert compare.exit_status(comparisons) == compare.OK
    assert compare.exit_status(comparisons, fail_on_missing=True) == compare.REGRESSION


def test_metric_chooses_the_statistic_compared():
    baseline = _results({STEP: 2.0})
    current = _results({STEP: 2.0})
    current["benchmarks"][0]["stats"]["min"] = 3.0  # only the minimum got slower
    assert compare.compare_results(current, baseline, threshold=0.15)[0].status == "ok"
    assert compare.compare_results(current, baseline, threshold=0.15, metric="min")[0].status == "regression"
    with pytest.raises(ValueError, match="--threshold"):
        compare.compare_results(current, baseline, threshold=-0.1)


def test_runs_in_different_bench_modes_cannot_be_compared_and_other_devices_warn():
    baseline = _results({STEP: 2.0})
    full_mode = _results({STEP: 2.0}, env={**CPU_ENV, "bench_mode": "full"})
    errors, warnings = compare.incompatibilities(full_mode, baseline)
    assert len(errors) == 1 and "bench mode" in errors[0] and not warnings
    other_cpu = _results({STEP: 2.0}, env={**CPU_ENV, "device": "cpu (2 cores, Other CPU)"})
    errors, warnings = compare.incompatibilities(other_cpu, baseline)
    assert not errors and len(warnings) == 1 and "Other CPU" in warnings[0]


def test_best_of_several_runs_keeps_each_benchmarks_fastest_entry():
    quiet = _results({STEP: 2.0, ADAIN: 5e-3})
    contended = _results({STEP: 3.0, ADAIN: 1e-3, CORRUPT: 0.1})
    best = compare.best_of([quiet, contended])
    assert {b["fullname"]: b["stats"]["median"] for b in best["benchmarks"]} == {STEP: 2.0, ADAIN: 1e-3, CORRUPT: 0.1}
    assert best["best_of_runs"] == 2 and best["machine_info"] == quiet["machine_info"]
    with pytest.raises(ValueError, match="different bench modes"):
        compare.best_of([quiet, _results({STEP: 2.0}, env={**CPU_ENV, "bench_mode": "full"})])


def test_cli_exit_status_and_table(tmp_path, capsys):
    baseline = _write(tmp_path / "baseline.json", _results({STEP: 2.0, ADAIN: 1e-3}))
    slower = _write(tmp_path / "slower.json", _results({STEP: 3.0, ADAIN: 1e-3}))
    assert compare.main([str(slower), "--baseline", str(baseline), "--threshold", "0.15"]) == compare.REGRESSION
    table = capsys.readouterr().out
    step_row = next(line for line in table.splitlines() if line.startswith(STEP))
    assert "REGRESSION" in step_row and "+50.0%" in step_row and "2.000 s" in step_row and "3.000 s" in step_row
    assert "1 ok, 1 regression" in table
    assert compare.main([str(slower), "--baseline", str(baseline), "--threshold", "0.6"]) == compare.OK
    # A second, quiet run of the same code clears the slow one (best of 2).
    quiet = _write(tmp_path / "quiet.json", _results({STEP: 2.1, ADAIN: 1e-3}))
    assert compare.main([str(slower), str(quiet), "--baseline", str(baseline)]) == compare.OK


def test_cli_prints_the_headline_ratio_of_both_runs(tmp_path, capsys):
    baseline = _write(tmp_path / "baseline.json", _results({STEP: 2.0}, **{STEP: {"stylized_over_plain": 1.07}}))
    run = _write(tmp_path / "run.json", _results({STEP: 2.1}, **{STEP: {"stylized_over_plain": 1.25}}))
    assert compare.main([str(run), "--baseline", str(baseline)]) == compare.OK
    assert f"{STEP} stylized_over_plain: baseline 1.070, run 1.250" in capsys.readouterr().out


def test_cli_rejects_unusable_input_naming_the_file(tmp_path, capsys):
    baseline = _write(tmp_path / "baseline.json", _results({STEP: 2.0}))
    full_mode = _write(tmp_path / "full.json", _results({STEP: 2.0}, env={**CPU_ENV, "bench_mode": "full"}))
    assert compare.cli([str(full_mode), "--baseline", str(baseline)]) == compare.UNUSABLE
    assert "bench mode differs" in capsys.readouterr().err

    assert compare.cli([str(tmp_path / "absent.json"), "--baseline", str(baseline)]) == compare.UNUSABLE
    assert "absent.json: no such file" in capsys.readouterr().err

    (tmp_path / "broken.json").write_text("{not json", encoding="utf-8")
    assert compare.cli([str(tmp_path / "broken.json"), "--baseline", str(baseline)]) == compare.UNUSABLE
    assert "broken.json: not a readable JSON file" in capsys.readouterr().err

    _write(tmp_path / "no_stats.json", {"benchmarks": [{"fullname": STEP}]})
    assert compare.cli([str(tmp_path / "no_stats.json"), "--baseline", str(baseline)]) == compare.UNUSABLE
    assert "benchmarks[0] lacks" in capsys.readouterr().err


def test_update_baseline_writes_a_trimmed_file_that_compares_equal(tmp_path, monkeypatch, capsys):
    run = _write(tmp_path / "run.json", _results({STEP: 2.0, ADAIN: 1e-3}))
    baseline_dir = tmp_path / "baselines"
    assert compare.main([str(run), "--update-baseline", str(baseline_dir / "cpu-2core.json")]) == compare.OK
    saved = json.loads((baseline_dir / "cpu-2core.json").read_text(encoding="utf-8"))
    assert "node" not in saved["machine_info"]  # no host name in the repository
    assert all("data" not in benchmark["stats"] for benchmark in saved["benchmarks"])
    assert [b["stats"]["median"] for b in saved["benchmarks"]] == [2.0, 1e-3]

    # Without --baseline, the run's device kind picks bench/baselines/<kind>.json.
    monkeypatch.setattr(compare, "BASELINE_DIR", baseline_dir)
    capsys.readouterr()
    assert compare.main([str(run)]) == compare.OK
    assert "2 ok" in capsys.readouterr().out
    other = _write(tmp_path / "gpu.json", _results({STEP: 2.0}, env={**CPU_ENV, "device_kind": "nvidia-h100"}))
    assert compare.cli([str(other)]) == compare.UNUSABLE
    error = capsys.readouterr().err
    assert "nvidia-h100" in error and "cpu-2core.json" in error  # says what exists


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
