"""How the classifier's training step runs on a device, resolved in one place: ``train.run`` (``trainer.fit``)
and the bench's train-step workload (``bench/train_step.py``) both take it from here, so that the bench
times what a user runs (``tests/test_train_step_settings.py`` compares them).

- ``compile``: ``auto`` (the default and the presets') compiles the classifier with ``torch.compile``
  on CUDA and runs it eagerly on the CPU, where Inductor's compile time is not won back. Its batch
  dimension is dynamic: the authors' epoch ends with a smaller batch (``data/sampler.py``: 50,000 =
  195 x 256 + 80 on CIFAR), which would otherwise compile every graph a second time. With manifold
  noise there is one graph per noise site (the site is a Python int of the forward; three sites).
- ``amp``: bf16 autocast on CUDA under ``auto``, none on the CPU.
- channels_last weights and inputs, and cuDNN's autotuner on CUDA (the shapes repeat every step).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn


def autocast_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    if amp == "auto":
        return torch.bfloat16 if device.type == "cuda" else None
    return {"bf16": torch.bfloat16, "fp16": torch.float16, "none": None}[amp]


@dataclass(frozen=True)
class StepSettings:
    compiled: bool                  # torch.compile the classifier (and the Stylizer's networks on CUDA)
    amp_dtype: torch.dtype | None   # autocast dtype of the forward and loss
    channels_last: bool             # weights and inputs in NHWC memory
    cudnn_benchmark: bool           # cuDNN times its algorithms once per shape

    @classmethod
    def resolve(cls, config: dict, device: torch.device) -> "StepSettings":
        """From a run configuration's ``compile`` (auto, true, false) and ``amp``."""
        device = torch.device(device)
        on_cuda = device.type == "cuda"
        compiled = on_cuda if config["compile"] == "auto" else bool(config["compile"])
        return cls(compiled=compiled, amp_dtype=autocast_dtype(config["amp"], device), channels_last=True,
                   cudnn_benchmark=on_cuda)

    def prepare(self, model: nn.Module, device: torch.device) -> nn.Module:
        """``model`` on ``device`` in the step's memory format; cuDNN's autotuner set for the process."""
        if self.cudnn_benchmark:
            torch.backends.cudnn.benchmark = True
        return model.to(device, memory_format=torch.channels_last if self.channels_last else torch.contiguous_format)

    def forward(self, model: nn.Module) -> Callable[..., torch.Tensor]:
        """``model`` itself, or compiled with its batch dimension dynamic (marked on each call's images, so
        the epoch's smaller last batch runs the same graphs)."""
        if not self.compiled:
            return model
        compiled = torch.compile(model)

        def forward(images: torch.Tensor, **options) -> torch.Tensor:
            torch._dynamo.maybe_mark_dynamic(images, 0)
            return compiled(images, **options)

        return forward
