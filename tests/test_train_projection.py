"""The projected time of a run, measured on a fake clock, and the warnings before a multi-day run."""
from __future__ import annotations

import pytest
import torch

from fastnst.train.config import load_preset, parse_config
from fastnst.train.projection import ONE_DAY, TRIAL_FLAGS, ProjectedTime, format_duration, gpu_recipe_warning


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeLoader:
    """``steps`` batches per epoch; remembers set_epoch like the real loader."""

    def __init__(self, steps: int):
        self.steps, self.epoch = steps, None

    def __len__(self):
        return self.steps

    def __iter__(self):
        return iter(range(self.steps))

    def set_epoch(self, epoch: int):
        self.epoch = epoch


def train(projection: ProjectedTime, loader, clock: FakeClock, *, epochs: int, seconds_per_step, between_epochs=0.0):
    """What fit does with the watched loader: iterate it once per epoch, each step taking some fake time."""
    watched = projection.watch(loader, steps_left=epochs * len(loader))
    seen = []
    for epoch in range(epochs):
        watched.set_epoch(epoch)
        for step in watched:
            seen.append(step)
            clock.now += seconds_per_step(len(seen))
        clock.now += between_epochs  # evaluation and checkpoint: not a training step
    return watched, seen


def test_projects_from_the_steps_after_warmup_and_ignores_time_between_epochs():
    clock, lines, syncs = FakeClock(), [], []
    projection = ProjectedTime("cpu", warmup_steps=3, measured_steps=4, clock=clock, sync=lambda: syncs.append(1),
                               report=lines.append)
    # Warmup steps are slow (compilation), then 2 s per step; epochs of 5 steps with 500 s between them.
    loader = FakeLoader(5)
    watched, seen = train(projection, loader, clock, epochs=4, seconds_per_step=lambda n: 60.0 if n <= 3 else 2.0,
                          between_epochs=500.0)
    assert seen == list(range(5)) * 4 and loader.epoch == 3 and len(watched) == 5  # the loader is unchanged
    assert projection.seconds_per_step == pytest.approx(2.0)
    assert projection.projected_seconds == pytest.approx(2.0 * 20)
    assert len(syncs) == 2  # the device is drained where the measured window starts and ends
    assert len(lines) == 1 and "20 steps x 2 s/step = 40 s" in lines[0] and "steps 4-7" in lines[0]


def test_a_run_over_a_day_warns_once_with_the_flags_of_a_small_trial():
    """The issue's case: 300 epochs at a measured 192 s per step."""
    clock, lines = FakeClock(), []
    projection = ProjectedTime("cpu", warmup_steps=2, measured_steps=3, clock=clock, report=lines.append)
    steps_per_epoch, epochs = 50, 300
    watched = projection.watch(FakeLoader(steps_per_epoch), steps_left=epochs * steps_per_epoch)
    for _ in range(2):
        for _ in watched:
            clock.now += 192.0
    assert projection.projected_seconds == pytest.approx(192.0 * epochs * steps_per_epoch)
    assert projection.projected_seconds > ONE_DAY
    assert len(lines) == 2 and lines[1].startswith("WARNING:") and TRIAL_FLAGS in lines[1]
    for flag in ("--model", "--epochs", "--batch-size", "--style-resolution native"):
        assert flag in lines[1]
    assert format_duration(projection.projected_seconds) == "33.3 days"
    assert "33.3 days" in lines[0] and "33.3 days" in lines[1]


def test_no_second_warning_after_the_cpu_one_and_none_for_short_runs():
    for warned, steps_left, expected_lines in ((True, 10**6, 1), (False, 100, 1)):
        clock, lines = FakeClock(), []
        projection = ProjectedTime("cpu", warmup_steps=1, measured_steps=2, clock=clock, report=lines.append,
                                   warned=warned)
        watched = projection.watch(FakeLoader(10), steps_left=steps_left)
        for _ in watched:
            clock.now += 1.0
        assert len(lines) == expected_lines and not lines[0].startswith("WARNING")


def test_gpu_recipe_on_a_cpu_is_warned_before_training():
    config = parse_config(["--dataset", "tinyimagenet", "--synthetic-ratio", "0", "--no-stylize"])
    warning = gpu_recipe_warning(config, torch.device("cpu"))
    assert warning.startswith("WARNING:") and "tinyimagenet" in warning
    preset = load_preset("tinyimagenet")
    for flag, key in (("--model", "model"), ("--epochs", "epochs"), ("--batch-size", "batch_size")):
        assert f"{flag} {preset[key]}" in warning
    assert "--style-resolution 224" not in warning  # no stylization in this run: not a reason
    assert TRIAL_FLAGS in warning
    assert gpu_recipe_warning(config, torch.device("cuda", 0)) is None
    assert gpu_recipe_warning(parse_config([]), torch.device("cpu")) is None  # the demo is made for a CPU
    trial = parse_config(["--dataset", "cifar10", "--synthetic-ratio", "0", "--no-stylize", *TRIAL_FLAGS.split()])
    assert gpu_recipe_warning(trial, torch.device("cpu")) is None  # already a small trial
    # A small trial on a stylized cache: the preset's 224 px is the cache's, not this run's cost.
    cached = parse_config(["--dataset", "cifar10", "--synthetic", "edm.npz", *TRIAL_FLAGS.split()[:6],
                           "--stylize-cache", "cache/real", "cache/syn"])
    assert cached["style_resolution"] == 224 and gpu_recipe_warning(cached, torch.device("cpu")) is None
