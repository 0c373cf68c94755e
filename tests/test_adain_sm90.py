"""Every fused-AdaIN kernel variant compiles for an H100 (sm_90), without spills, on a CPU-only machine.

The rest of the suite runs the kernels through Triton's interpreter, which cannot show a
compile failure, a register spill or an unpipelined loop. ``bench/sm90_report.py`` compiles
each variant through Triton's real NVIDIA backend for ``GPUTarget("cuda", 90, 32)`` and reads
``ptxas -v --gpu-name sm_90a``. ``tests/conftest.py`` has set ``TRITON_INTERPRET=1`` for this
process, and Triton reads it when a kernel is decorated, so the report runs in a subprocess
without it, in a fresh Triton cache (every variant really compiles: ~35 s of CPU for 108
variants on the 2-core AMD EPYC CI machine, longer when other jobs share it).

    pytest tests/test_adain_sm90.py -s     # prints the registers/spills table
    python -m bench.sm90_report            # the same table, without pytest
"""
from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench import sm90_report

REPO_ROOT = Path(__file__).resolve().parents[1]

adain_module = importlib.import_module("fastnst.kernels.adain")


@pytest.fixture(scope="module")
def sm90_report_run(tmp_path_factory):
    scratch = tmp_path_factory.mktemp("sm90")
    env = {key: value for key, value in os.environ.items() if key != "TRITON_INTERPRET"}
    env["TRITON_CACHE_DIR"] = str(scratch / "triton-cache")
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), env.get("PYTHONPATH", "")])
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "bench.sm90_report", "--json", str(scratch / "report.json"),
         "--markdown", str(scratch / "report.md")],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=1800,
    )
    seconds = time.perf_counter() - start
    report_file = scratch / "report.json"
    report = json.loads(report_file.read_text()) if report_file.exists() else None
    print(f"\nsm_90 report: {seconds:.1f} s wall in a subprocess\n{result.stdout}\n{result.stderr[-3000:]}")
    return result, report


def _variants(report) -> list[sm90_report.Variant]:
    return [sm90_report.Variant(**fields) for fields in report["variants"]]


def test_every_variant_compiles_for_sm90_without_spills(sm90_report_run):
    result, report = sm90_report_run
    assert report is not None, f"the report did not finish:\n{result.stderr[-3000:]}"
    variants = _variants(report)
    problems = sm90_report.failures(variants)
    assert not problems, "\n".join(problems)
    assert result.returncode == 0, result.stderr[-3000:]
    assert all(v.registers and v.registers <= 255 for v in variants)


def test_report_covers_every_block_shape_dtype_and_kernel(sm90_report_run):
    """fwd, bwd and stats x fp32/bf16/fp16 x NCHW/channels_last x every shape block_shape can return."""
    _, report = sm90_report_run
    assert report is not None
    compiled = {(v.kernel, v.dtype, v.layout == "channels_last", v.block_c, v.block_hw, v.single_tile)
                for v in _variants(report)}
    expected = {
        (kernel, dtype_name, channels_last, shape.block_c, shape.block_hw, shape.single_tile)
        for dtype_name, dtype in sm90_report.DTYPES.items()
        for channels_last, shape in adain_module.all_block_shapes(dtype.itemsize)
        for kernel in sm90_report.KERNELS
    }
    assert compiled == expected
    paths = {(layout, single) for _, _, layout, _, _, single in compiled}
    assert paths == {(False, True), (False, False), (True, True), (True, False)}  # both layouts, both paths


def test_looped_paths_pipeline_their_loads(sm90_report_run):
    """cp.async in the PTX: the loop path's tl.range(num_stages=...) loads are software-pipelined."""
    _, report = sm90_report_run
    assert report is not None
    looped = [v for v in _variants(report) if not v.single_tile]
    assert looped and all(v.cp_async for v in looped)


def test_relu4_1_at_224px_is_one_read_in_both_layouts(sm90_report_run):
    """28 x 28 = 784 positions: single tile (each element read once), compiled without spills."""
    _, report = sm90_report_run
    assert report is not None
    rows = [v for v in _variants(report) if "relu4_1@224px" in v.maps]
    assert {(v.layout, v.dtype) for v in rows} == {(layout, dtype) for layout in ("nchw", "channels_last")
                                                    for dtype in sm90_report.DTYPES}
    assert all(v.single_tile and v.ok and not v.spill_stores and not v.spill_loads for v in rows)


@pytest.mark.parametrize(
    "variant_fields, problem",
    [
        (dict(ok=False, error="RuntimeError: PassManager::run failed"), "PassManager::run failed"),
        (dict(ok=True, registers=255, spill_stores=8, spill_loads=8), "spills"),
        (dict(ok=True, registers=64, spill_stores=0, spill_loads=0, single_tile=False, cp_async=False), "not pipelined"),
    ],
    ids=["compile-error", "spill", "no-cp-async"],
)
def test_failures_are_reported(variant_fields, problem):
    """The check can fail: each kind of defect is named (the first is what the float32 backward hit)."""
    fields = dict(kernel="backward", dtype="float32", layout="nchw", block_c=1, block_hw=4096,
                  single_tile=True, num_warps=8)
    (reported,) = sm90_report.failures([sm90_report.Variant(**{**fields, **variant_fields})])
    assert problem in reported and "backward float32 nchw 1x4096" in reported


def test_ptxas_reads_registers_and_spills():
    """The bundled ptxas runs here, on a hand-written kernel, and its -v output is parsed."""
    ptx = """
.version 8.0
.target sm_90a
.address_size 64
.visible .entry copy_one(.param .u64 src, .param .u64 dst)
{
    .reg .b64 %rd<3>;
    .reg .f32 %f<2>;
    ld.param.u64 %rd1, [src];
    ld.param.u64 %rd2, [dst];
    ld.global.f32 %f1, [%rd1];
    st.global.f32 [%rd2], %f1;
    ret;
}
"""
    resources = sm90_report.ptxas_resources(ptx)
    assert 0 < resources["registers"] < 32
    assert resources["spill_stores"] == resources["spill_loads"] == 0


def test_the_report_refuses_the_interpreter(monkeypatch, capsys):
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    assert sm90_report.main([]) == 2
    assert "TRITON_INTERPRET" in capsys.readouterr().err

