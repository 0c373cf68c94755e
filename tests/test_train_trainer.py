"""The training loop on CPU with a stand-in loader of plain tensors (the real pipeline is tested elsewhere).

Also imported by the subprocess scripts of the resume and DDP tests (``run_standin``).
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

import numpy as np
import pytest
import torch

from fastnst.train.checkpoint import load_checkpoint, model_from_checkpoint, save_atomic
from fastnst.train.config import resolve
from fastnst.distributed import DistInfo
from fastnst.train.models import create_model
from fastnst.train.trainer import (
    StylizerMeter,
    TrainingDiverged,
    capture_rng,
    fit,
    restore_rng,
    seed_everything,
    lr_per_epoch,
    swa_start_epoch,
)

TESTS_DIR = Path(__file__).resolve().parent
REPO_ROOT = TESTS_DIR.parent


class TensorLoader:
    """Stand-in for train.data's TrainLoader: tensors in memory, deterministic in (seed, epoch), sharded by rank."""

    def __init__(self, images, labels, batch_size, *, seed=0, rank=0, world_size=1, nan_from_epoch=None, delay=0.0):
        self.images, self.labels = images, labels
        self.batch_size, self.seed, self.rank, self.world_size = batch_size, seed, rank, world_size
        self.nan_from_epoch, self.delay = nan_from_epoch, delay
        self.epoch = 0

    def set_epoch(self, epoch):
        self.epoch = epoch

    def __len__(self):
        return len(self.labels) // self.world_size // self.batch_size

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed * 10_000 + self.epoch)
        order = torch.randperm(len(self.labels), generator=generator)[self.rank :: self.world_size]
        for step in range(len(self)):
            index = order[step * self.batch_size : (step + 1) * self.batch_size]
            images = self.images[index]
            flip = torch.rand(len(index), generator=generator) < 0.5
            images = torch.where(flip.view(-1, 1, 1, 1), images.flip(-1), images)
            if self.nan_from_epoch is not None and self.epoch >= self.nan_from_epoch:
                images = images * float("nan")
            if self.delay:
                time.sleep(self.delay)
            yield images.contiguous(memory_format=torch.channels_last), self.labels[index]


def make_tensors(num_images=96, num_classes=10, size=16, seed=123):
    """Random images whose mean colour depends on the class, so a model can learn them."""
    class_colour = torch.randn(num_classes, 3, 1, 1, generator=torch.Generator().manual_seed(0))
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, num_classes, (num_images,), generator=generator)
    images = torch.randn(num_images, 3, size, size, generator=generator) * 0.5 + class_colour[labels]
    return images, labels


def tiny_config(**overrides) -> dict:
    flags = dict(dataset="demo", model="wrn10_1", epochs=3, batch_size=16, lr=0.05, swa_start=0.5,
                 eval_every=1, log_every=2, amp="none", compile=False)
    flags.update(overrides)
    return resolve(flags)


def run_standin(out_dir, resume=False, delay=0.0, epochs=3, nan_from_epoch=None, dist_info=DistInfo(), **overrides):
    """A whole tiny training run; used in-process and by the subprocess scripts."""
    torch.set_num_threads(1)  # same reduction order in every process: bit-exact comparisons
    config = tiny_config(epochs=epochs, **overrides)
    images, labels = make_tensors()
    loader = TensorLoader(images, labels, config["batch_size"] // dist_info.world_size, seed=config["seed"],
                          rank=dist_info.rank, world_size=dist_info.world_size,
                          nan_from_epoch=nan_from_epoch, delay=delay)
    torch.manual_seed(config["seed"])
    model = create_model(config["model"], config["num_classes"])
    test_images, test_labels = make_tensors(num_images=32, seed=7)

    def evaluate_clean(net):
        was_training = net.training
        net.eval()
        with torch.no_grad():
            accuracy = (net(test_images).argmax(1) == test_labels).float().mean().item()
        net.train(was_training)
        return accuracy

    checkpoint = Path(out_dir) / "checkpoint.pt"
    return fit(config, model, loader, out_dir=out_dir, dist_info=dist_info, evaluate_clean=evaluate_clean,
               resume_from=checkpoint if resume and checkpoint.exists() else None, show_progress=False)


def test_tiny_run_writes_checkpoint_logs_and_swa(tmp_path):
    result = run_standin(tmp_path, epochs=4)
    history = result.history
    assert [row["epoch"] for row in history] == [1, 2, 3, 4]
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert all(row["images_per_second"] > 0 for row in history)

    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [row["epoch"] for row in rows] == [1, 2, 3, 4]
    assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))

    state = load_checkpoint(result.checkpoint)
    assert state["finished"] and state["epoch"] == 4 and state["config"]["model"] == "wrn10_1"
    # The demo preset's schedule: cosine cycles of 2 then 4 epochs, SWA from epoch 2 (2 + 1 > 0.5 * 4), where
    # SWALR ramps linearly from the cosine's 0.05 (a restart) to 0.05 * 0.2 in swa_anneal_epochs = 2 epochs.
    assert swa_start_epoch(state["config"]) == 2
    assert [row["lr"] for row in rows] == pytest.approx([0.05, 0.025, 0.05, 0.03], rel=1e-9)
    assert [row["lr"] for row in rows] == lr_per_epoch(state["config"])
    # The averaged model is not the last weights, and its BN statistics were recomputed.
    model, _ = model_from_checkpoint(result.checkpoint, "model")
    swa_model, _ = model_from_checkpoint(result.checkpoint, "swa_model")
    assert not torch.equal(model.linear.weight, swa_model.linear.weight)
    assert not torch.equal(model.bn1.running_mean, swa_model.bn1.running_mean)
    assert result.final["swa_test_acc"] > 0.3  # 10 classes; chance is 0.1


def test_no_swa_steps_the_warm_restarts_every_epoch(tmp_path):
    result = run_standin(tmp_path, epochs=3, swa=False, lr_cycle_epochs=2, lr_cycle_mult=1)
    state = load_checkpoint(result.checkpoint)
    assert state["swa_model"] is None and result.swa_model is None
    # T_0 = 2, T_mult = 1: 0.05, 0.05 (1 + cos(pi / 2)) / 2, restart.
    assert [row["lr"] for row in result.history] == pytest.approx([0.05, 0.025, 0.05], rel=1e-9)
    assert state["scheduler"]["T_cur"] == 1 and state["scheduler"]["last_epoch"] == 3


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
    with pytest.raises(TrainingDiverged, match=r"NaN/inf at epoch 2.*checkpoint.pt"):
        run_standin(tmp_path, nan_from_epoch=1)
    state = load_checkpoint(tmp_path / "checkpoint.pt")
    assert state["epoch"] == 1 and not state["finished"]
    assert all(torch.isfinite(value).all() for value in state["model"].values() if value.is_floating_point())


def test_resume_refuses_changed_options(tmp_path):
    run_standin(tmp_path, epochs=2)
    with pytest.raises(ValueError, match="lr: 0.05 in the checkpoint, 0.1 now"):
        run_standin(tmp_path, epochs=2, resume=True, lr=0.1)


def test_rng_states_survive_a_weights_only_checkpoint(tmp_path):
    seed_everything(5)
    saved = capture_rng(torch.device("cpu"))
    expected = (np.random.rand(), torch.rand(3), __import__("random").random())
    save_atomic({"config": {}, "model": {}, "rng": [saved]}, tmp_path / "rng.pt")
    seed_everything(99)
    restore_rng(load_checkpoint(tmp_path / "rng.pt")["rng"][0], torch.device("cpu"))
    assert np.random.rand() == expected[0]
    assert torch.equal(torch.rand(3), expected[1])
    assert __import__("random").random() == expected[2]


def test_stylizer_meter_sums_counts_and_time_per_epoch():
    from types import SimpleNamespace

    class FakeStylizer:
        """Stylizes the synthetic rows, in 0.05 s; returns (images, plan) as fastnst.Stylizer."""

        def __init__(self):
            self.epochs = []

        def set_epoch(self, epoch):
            self.epochs.append(epoch)

        def __call__(self, images, is_synthetic):
            time.sleep(0.05)
            return images, SimpleNamespace(rows=is_synthetic.nonzero().squeeze(1))

    meter = StylizerMeter(FakeStylizer())
    images = torch.randint(0, 256, (4, 3, 8, 8), dtype=torch.uint8)
    meter.set_epoch(3)
    out, plan = meter(images, torch.tensor([True, False, True, True]))
    assert torch.equal(out, images) and plan.rows.tolist() == [0, 2, 3]
    meter(images, torch.tensor([True, False, False, False]))
    seconds, count = meter.totals()
    assert count == 4 and 0.1 <= seconds < 1.0
    meter.set_epoch(4)
    assert meter.totals() == (0.0, 0) and meter.stylizer.epochs == [3, 4]


RESUME_SCRIPT = """
from tests.test_train_trainer import run_standin
run_standin({out!r}, resume={resume}, delay={delay}, epochs=4)
"""


def _script(tmp_path, name, out, resume, delay):
    path = tmp_path / name
    path.write_text(textwrap.dedent(RESUME_SCRIPT.format(out=str(out), resume=resume, delay=delay)))
    return path


def _run(script):
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.Popen([sys.executable, str(script)], env=env, cwd=REPO_ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_resume_after_kill_mid_epoch_is_bit_exact(tmp_path):
    """Kill a run (SIGKILL) mid-epoch after its first checkpoint, resume it, compare with an unbroken run."""
    straight, broken = tmp_path / "straight", tmp_path / "broken"
    unbroken = _run(_script(tmp_path, "straight.py", straight, resume=False, delay=0.0))

    victim = _run(_script(tmp_path, "victim.py", broken, resume=False, delay=0.2))
    deadline = time.monotonic() + 120
    while not (broken / "checkpoint.pt").exists():
        assert victim.poll() is None, victim.communicate()[1]
        assert time.monotonic() < deadline, "no checkpoint after 120 s"
        time.sleep(0.02)
    time.sleep(0.5)  # a few steps into epoch 2 (6 steps of 0.2 s each)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert load_checkpoint(broken / "checkpoint.pt")["epoch"] == 1  # killed mid-run, not at the end

    resumed = _run(_script(tmp_path, "resumed.py", broken, resume=True, delay=0.0))
    outputs = {}
    for name, process in (("unbroken", unbroken), ("resumed", resumed)):
        outputs[name], stderr = process.communicate(timeout=300)
        assert process.returncode == 0, stderr
    assert "resumed from" in outputs["resumed"] and "1 of 4 epochs done" in outputs["resumed"]

    a, b = load_checkpoint(straight / "checkpoint.pt"), load_checkpoint(broken / "checkpoint.pt")
    assert a["finished"] and b["finished"]
    for which in ("model", "swa_model"):
        for key in a[which]:
            assert torch.equal(a[which][key], b[which][key]), f"{which}.{key} differs after resume"
    for key, value in a["optimizer"]["state"].items():
        assert torch.equal(value["momentum_buffer"], b["optimizer"]["state"][key]["momentum_buffer"])
