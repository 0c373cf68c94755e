"""Where a run's numbers go: a fixed-width table on stdout, ``metrics.jsonl`` and TensorBoard events (and
figures, as TensorBoard images).

Only rank 0 writes; other ranks get a logger that does nothing, so call sites stay unconditional.
``metrics.jsonl`` is appended to, so a resumed run keeps one file. A row is written right after
its epoch's checkpoint: an epoch is never logged twice, though a kill between the two writes
loses that one row.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
from PIL import Image
from torch.utils.tensorboard import SummaryWriter

# (key, header, width, format) of the per-epoch table, airbench style.
TABLE_COLUMNS = (
    ("epoch", "epoch", 6, "{:d}"),
    ("lr", "lr", 9, "{:.5f}"),
    ("train_loss", "train_loss", 10, "{:.4f}"),
    ("train_acc", "train_acc", 9, "{:.4f}"),
    ("test_acc", "test_acc", 8, "{:.4f}"),
    ("images_per_second", "img/s", 9, "{:.1f}"),
    ("stylize_seconds", "style_s", 8, "{:.2f}"),
    ("num_stylized", "n_styled", 8, "{:d}"),
    ("data_wait_seconds", "data_s", 7, "{:.2f}"),
    ("step_seconds", "step_s", 7, "{:.1f}"),
    ("epoch_seconds", "epoch_s", 8, "{:.1f}"),
)


def _cell(value, width: int, fmt: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        text = "-"
    else:
        text = fmt.format(value)
    return text.rjust(width)


def format_header() -> str:
    header = " | ".join(title.rjust(width) for _, title, width, _ in TABLE_COLUMNS)
    return f"{header}\n{'-' * len(header)}"


def format_row(metrics: dict) -> str:
    return " | ".join(_cell(metrics.get(key), width, fmt) for key, _, width, fmt in TABLE_COLUMNS)


class MetricsLog:
    """Per-epoch metrics to stdout (table), ``<out>/metrics.jsonl`` and ``<out>/tensorboard``."""

    def __init__(self, out_dir: str | os.PathLike, enabled: bool = True, print_fn=print):
        self.enabled = enabled
        self.print_fn = print_fn
        self._header_printed = False
        self._writer = None
        if enabled:
            out_dir = Path(out_dir)
            out_dir.mkdir(parents=True, exist_ok=True)
            self.jsonl_path = out_dir / "metrics.jsonl"
            self._writer = SummaryWriter(log_dir=str(out_dir / "tensorboard"))

    def log_epoch(self, metrics: dict) -> None:
        if not self.enabled:
            return
        if not self._header_printed:
            self.print_fn(format_header())
            self._header_printed = True
        self.print_fn(format_row(metrics))
        with open(self.jsonl_path, "a") as f:
            f.write(json.dumps(metrics) + "\n")
        epoch = metrics["epoch"]
        for key, value in metrics.items():
            if key != "epoch" and isinstance(value, (int, float)) and not isinstance(value, bool):
                self._writer.add_scalar(f"epoch/{key}", value, epoch)
        self._writer.flush()

    def log_scalars(self, values: dict, step: int, prefix: str) -> None:
        if self.enabled:
            for key, value in values.items():
                self._writer.add_scalar(f"{prefix}/{key}", value, step)

    def log_image(self, tag: str, path: str | os.PathLike, step: int = 0) -> None:
        """A PNG figure (the run's stylization) into TensorBoard's images."""
        if self.enabled:
            with Image.open(path) as image:
                self._writer.add_image(tag, np.asarray(image.convert("RGB")), step, dataformats="HWC")
            self._writer.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
