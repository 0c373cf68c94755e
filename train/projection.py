"""How long a run will take, said before it is too late: a projection after the first steps, and a
warning before a multi-day run or a GPU recipe started on a CPU.

    projection = ProjectedTime(device, warned=...)             # in train.run, on rank 0
    loader = projection.watch(train_loader, steps_left=...)    # in trainer.fit: the epoch loop iterates it

After ``warmup_steps`` steps (torch.compile, cuDNN autotuning and the data pipeline's prefetch
make the first ones slow), the next ``measured_steps`` are timed and one line gives the projected
time of the rest of the run: steps left x measured seconds per step (no evaluation, no SWA pass:
nothing fancy). Past a day it adds one warning naming the flags of a small trial. The device is
synchronised at both ends of the measured window, so queued CUDA work is counted.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import torch
from tqdm import tqdm

from fastnst.train.config import flag_name, format_value, load_preset

ONE_DAY = 24 * 3600.0
# Presets sized for GPUs (WRN-28-4, 300 epochs, batch 512, stylization at 224 px).
GPU_PRESETS = ("cifar10", "cifar100", "tinyimagenet", "imagefolder")
TRIAL_FLAGS = "--model wrn16_2 --epochs 5 --batch-size 128 --style-resolution native"
TRIAL_ADVICE = f"For a small trial pass e.g. {TRIAL_FLAGS} (--help lists every preset's values)."


def format_duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * ONE_DAY:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / ONE_DAY:.1f} days"


def gpu_recipe_warning(config: dict, device: torch.device) -> str | None:
    """A warning when a GPU preset's heavy values (model, epochs, batch size, 224 px stylization) run on a CPU."""
    if device.type != "cpu" or config["dataset"] not in GPU_PRESETS:
        return None
    preset = load_preset(config["dataset"])
    # --stylize-cache runs no networks: its style resolution was the cache's, paid for offline
    stylizes_here = config["stylize"] and not config.get("stylize_cache")
    keys = ["model", "epochs", "batch_size"] + (["style_resolution"] if stylizes_here else [])
    from_preset = [f"{flag_name(key)} {format_value(config[key])}" for key in keys if config[key] == preset.get(key)]
    if not from_preset:
        return None
    return (f"WARNING: the {config['dataset']} preset is a GPU recipe and this run is on the CPU "
            f"({', '.join(from_preset)} {'comes' if len(from_preset) == 1 else 'come'} from it): it can take days. "
            f"{TRIAL_ADVICE}")


class ProjectedTime:
    """Times a few training steps and reports the projected time of the run (see the module doc)."""

    def __init__(self, device: torch.device | str = "cpu", *, warmup_steps: int = 5, measured_steps: int = 10,
                 warned: bool = False, clock: Callable[[], float] = time.perf_counter,
                 sync: Callable[[], None] | None = None, report: Callable[[str], None] | None = None):
        device = torch.device(device)
        self.device = device
        self.warmup_steps, self.measured_steps = warmup_steps, measured_steps
        self.warned = warned  # a warning was given already (train.run's CPU check): no second one
        self.clock = clock
        self.sync = sync or ((lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None))
        self.report = report or (lambda line: tqdm.write(line))
        self.steps_left = 0
        self.seconds_per_step: float | None = None
        self.projected_seconds: float | None = None
        self._steps = 0        # finished steps seen so far
        self._measured = 0     # of which timed
        self._seconds = 0.0    # their time

    def watch(self, loader, *, steps_left: int) -> "_TimedLoader":
        """``loader`` as the epoch loop sees it, timing the gaps between its batches; ``steps_left``:
        the steps this process will still train (epochs left x steps per epoch)."""
        self.steps_left = steps_left
        return _TimedLoader(loader, self)

    def summary(self) -> dict:
        return {"seconds_per_step": self.seconds_per_step, "projected_seconds": self.projected_seconds}

    def _batches(self, loader) -> Iterator:
        previous = None  # a new epoch starts a new gap: the time between epochs is not a step's
        for batch in loader:
            if self.projected_seconds is None and previous is not None:
                next_step = self._steps + 1
                if next_step in (self.warmup_steps, self.warmup_steps + self.measured_steps):
                    self.sync()  # the window starts and ends with an idle device
                now = self.clock()
                self._step_finished(now - previous)
                previous = self.clock() if next_step == self.warmup_steps else now
            elif self.projected_seconds is None:
                previous = self.clock()
            yield batch

    def _step_finished(self, seconds: float) -> None:
        self._steps += 1
        if self._steps <= self.warmup_steps:
            return
        self._measured += 1
        self._seconds += seconds
        if self._measured == self.measured_steps:
            self._project()

    def _project(self) -> None:
        self.seconds_per_step = self._seconds / self._measured
        self.projected_seconds = self.seconds_per_step * self.steps_left
        first = self.warmup_steps + 1
        self.report(f"projected time: {self.steps_left} steps x {self.seconds_per_step:.3g} s/step = "
                    f"{format_duration(self.projected_seconds)} of training on {self.device.type} "
                    f"(measured over steps {first}-{first + self.measured_steps - 1}; evaluation not included)")
        if self.projected_seconds > ONE_DAY and not self.warned:
            self.warned = True
            self.report(f"WARNING: this run is projected to take {format_duration(self.projected_seconds)}. "
                        f"{TRIAL_ADVICE}")


class _TimedLoader:
    """The training loader, unchanged, except that iterating it feeds a ProjectedTime."""

    def __init__(self, loader, projection: ProjectedTime):
        self.loader, self.projection = loader, projection

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator:
        return self.projection._batches(self.loader)

    def __getattr__(self, name):
        return getattr(self.loader, name)
