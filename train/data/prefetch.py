"""Double buffering: batch i + 1 is stylized and augmented on a side stream while batch i trains.

The loader's work for a step is split in two calls: ``enqueue(step)`` queues it (stage 1,
Stylizer, stage 2 submitted to DALI) and ``collect(token)`` turns the result into tensors.
``prefetched`` calls ``enqueue(step + 1)`` before it hands batch ``step`` over, so on a GPU the
side stream holds the next batch's style transfer while the training stream runs the current
step; on the CPU, DALI's threads augment the next batch while torch trains.

``StreamHandoff`` is where the CUDA ordering lives. The loader's kernels run on a side stream
(``producing()``); when a batch is ready an event is recorded there, and the consumer's stream
waits for that event (``hand_over``) instead of the host waiting for the device. The handed-over
tensors are marked with ``record_stream`` for the consumer's stream, so the caching allocator
does not give their memory back to the side stream while the training step still reads it. On
the CPU every call is a no-op and work simply runs in call order.
"""
from __future__ import annotations

from contextlib import nullcontext
from typing import Any, Callable, Iterator

import torch


class StreamHandoff:
    """The side stream the loader enqueues on, and the event hand-over to the consumer's stream."""

    def __init__(self, device: torch.device):
        self.device = torch.device(device)
        self.side = torch.cuda.Stream(self.device) if self.device.type == "cuda" else None

    @property
    def stream(self):
        """What DALI's ``cuda_stream`` arguments take: the side stream, or None on the CPU."""
        return self.side

    def start(self) -> None:
        """Order the side stream after everything already queued on the consumer's stream (weights
        uploaded, resident data copied): called once per epoch, not per batch."""
        if self.side is not None:
            self.side.wait_stream(torch.cuda.current_stream(self.device))

    def producing(self):
        """Context in which the loader's kernels are queued (on the side stream)."""
        return torch.cuda.stream(self.side) if self.side is not None else nullcontext()

    def ready(self):
        """Mark the end of a batch's work on the side stream (None on the CPU)."""
        if self.side is None:
            return None
        event = torch.cuda.Event()
        event.record(self.side)
        return event

    def hand_over(self, tensors: tuple[torch.Tensor, ...], event) -> tuple[torch.Tensor, ...]:
        """Make the consumer's current stream wait for ``event``; keep the memory alive for it."""
        if self.side is not None:
            consumer = torch.cuda.current_stream(self.device)
            consumer.wait_event(event)
            for tensor in tensors:
                if tensor.is_cuda:  # host tensors (the is_synthetic flags) need no stream bookkeeping
                    tensor.record_stream(consumer)
        return tensors


def prefetched(steps: int, enqueue: Callable[[int], Any], collect: Callable[[Any], tuple],
               streams: StreamHandoff) -> Iterator[tuple]:
    """Yield ``collect(enqueue(step))`` for each step, with step + 1 enqueued before step is handed over.

    ``collect`` returns ``(tensors..., event)``: the tensors are handed over on ``event``.
    """
    if steps == 0:
        return
    streams.start()
    with streams.producing():
        pending = enqueue(0)
    for step in range(steps):
        with streams.producing():  # re-entered each time: the consumer's code between yields runs on its own stream
            *tensors, event = collect(pending)
            if step + 1 < steps:
                pending = enqueue(step + 1)
        yield streams.hand_over(tuple(tensors), event)

