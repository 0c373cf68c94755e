"""Counting and timing a stylizer's calls, without making the host wait for the device on any of them.

    meter = StylizerMeter(stylizer)     # a fastnst.Stylizer or CachedStylizer: same call, same plan
    meter.set_epoch(epoch)              # zeroes the sums, reseeds the stylizer
    images, plan = meter(images, is_synthetic, source_index=indices)
    seconds, num_stylized = meter.totals()   # after the epoch's last step

The training loader calls the stylizer a step ahead of training (on its side stream on a GPU), so
nothing may wait for a call to end: ``DeviceTimer`` times a span by the host clock on the CPU and by
CUDA events on a GPU, read only for the total. A span can as well be the wait for data or a step.
"""
from __future__ import annotations

import time
from contextlib import contextmanager

import torch


class DeviceTimer:
    """Sums the seconds of ``span``s: the host clock on the CPU, an event pair per span on CUDA."""

    def __init__(self):
        self.reset()

    def reset(self) -> None:
        self._seconds, self._events = 0.0, []

    @contextmanager
    def span(self, device: torch.device):
        if device.type == "cuda":  # recorded on the current stream; read in seconds()
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            yield
            end.record()
            self._events.append((start, end))
        else:
            started = time.perf_counter()
            yield
            self._seconds += time.perf_counter() - started

    def seconds(self) -> float:
        """The spans' total since ``reset``; on CUDA it waits for the last span to end."""
        for start, end in self._events:
            end.synchronize()
            self._seconds += start.elapsed_time(end) / 1000.0
        self._events.clear()
        return self._seconds


class StylizerMeter:
    """Wraps a stylizer; sums its calls' time and stylized images (from the plan each call returns)."""

    def __init__(self, stylizer):
        self.stylizer = stylizer
        self.timer = DeviceTimer()
        self._num_stylized = 0

    def __call__(self, images: torch.Tensor, is_synthetic: torch.Tensor, **options):
        with self.timer.span(images.device):
            out, plan = self.stylizer(images, is_synthetic, **options)
        self._num_stylized += int(plan.rows.numel())
        return out, plan

    def totals(self) -> tuple[float, int]:
        """(seconds spent stylizing, images stylized) since the last ``set_epoch``."""
        return self.timer.seconds(), self._num_stylized

    def set_epoch(self, epoch: int) -> None:
        self.timer.reset()
        self._num_stylized = 0
        self.stylizer.set_epoch(epoch)
