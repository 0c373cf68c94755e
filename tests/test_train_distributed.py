"""DistributedDataParallel with 2 CPU processes (gloo), launched by torchrun as a user would."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from fastnst.train.checkpoint import load_checkpoint
from fastnst.distributed import DistInfo, all_gather_objects, average_buffers, resolve_device

TESTS_DIR = Path(__file__).resolve().parent
REPO_ROOT = TESTS_DIR.parent

WORKER = """
import torch
from tests.test_train_trainer import run_standin
from fastnst import distributed

info = distributed.setup("cpu")
result = run_standin({out!r}, epochs=3, nan_from_epoch={nan_from_epoch}, dist_info=info)
torch.save({{"model": result.model.state_dict(), "swa_model": result.swa_model.state_dict()}},
           {out!r} + f"/rank{{info.rank}}.pt")
distributed.cleanup()
"""


def _torchrun(tmp_path, out, nan_from_epoch=None):
    script = tmp_path / "worker.py"
    script.write_text(textwrap.dedent(WORKER.format(out=str(out), nan_from_epoch=nan_from_epoch)))
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           str(script)], env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)


def test_two_cpu_processes_train_in_lockstep(tmp_path):
    out = tmp_path / "run"
    done = _torchrun(tmp_path, out)
    assert done.returncode == 0, done.stderr[-3000:]

    state = load_checkpoint(out / "checkpoint.pt")
    assert state["finished"] and state["world_size"] == 2 and len(state["rng"]) == 2
    # Each rank drew its own augmentation stream (seed + rank), so their RNG states differ.
    assert not torch.equal(state["rng"][0]["torch"], state["rng"][1]["torch"])
    rank0, rank1 = (torch.load(out / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    for which in ("model", "swa_model"):
        for key, value in rank0[which].items():
            # Weights are identical by DDP; BN statistics of the SWA model by the explicit averaging.
            # The raw model's BN running statistics stay per rank (DDP broadcasts rank 0's at each forward).
            if which == "model" and "running" in key:
                continue
            assert torch.allclose(value.float(), rank1[which][key].float(), atol=1e-6), f"{which}.{key}"
        assert all(torch.equal(value, state[which][key]) for key, value in rank0[which].items())


def test_nan_on_every_rank_stops_both_cleanly(tmp_path):
    out = tmp_path / "run"
    done = _torchrun(tmp_path, out, nan_from_epoch=1)
    assert done.returncode != 0
    assert "NaN/inf at epoch 2" in done.stderr
    assert load_checkpoint(out / "checkpoint.pt")["epoch"] == 1


def test_single_process_helpers_are_no_ops():
    info = DistInfo()
    assert all_gather_objects({"a": 1}, info) == [{"a": 1}]
    module = torch.nn.BatchNorm1d(3)
    module.running_mean.copy_(torch.tensor([1.0, 2.0, 3.0]))
    average_buffers(module, info)
    assert torch.equal(module.running_mean, torch.tensor([1.0, 2.0, 3.0]))
    assert resolve_device("cpu") == torch.device("cpu")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="--device cuda"):
            resolve_device("cuda")


def test_torchrun_train_run_with_the_real_pipeline(tmp_path):
    """`torchrun --nproc_per_node=2 -m train.run`: DALI loader shards, a Stylizer per rank, rank 0 writes."""
    from fastnst.train.data import make_demo_dataset

    make_demo_dataset(tmp_path / "data", num_train=50, num_test=20, num_synthetic=30, seed=2)
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "train.run",
         "--out", str(tmp_path / "run"), "--data-root", str(tmp_path / "data"), "--epochs", "2",
         "--batch-size", "16", "--no-evaluate-corruptions"],
        env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    state = load_checkpoint(tmp_path / "run" / "checkpoint.pt")
    assert state["finished"] and state["world_size"] == 2
    rows = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert len(rows) == 2  # rank 0 alone logs
    assert done.stdout.count("fastnst demo") == 1  # and alone prints the banner
