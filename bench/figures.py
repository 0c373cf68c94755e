"""The one line a measuring process prints per figure, which ``bench/gpu_run.py`` collects as it comes.

    @figure {"name": "train_step[native] stylized_over_plain", "value": 1.07, "unit": "x", ...}

One JSON object a line, printed and flushed the moment the figure is measured: a part stopped
half-way still leaves what it had measured in the report and on the console.
"""
from __future__ import annotations

import json

PREFIX = "@figure "


def line(name: str, value, unit: str = "", **info) -> str:
    return PREFIX + json.dumps({"name": name, "value": value, "unit": unit, **info}, default=str)


def emit(name: str, value, unit: str = "", **info) -> None:
    print(line(name, value, unit, **info), flush=True)


def parse(text: str) -> dict | None:
    """The figure of an output line, or None (the prefix may follow other output on the same line)."""
    start = text.find(PREFIX)
    if start < 0:
        return None
    try:
        figure = json.loads(text[start + len(PREFIX):])
    except json.JSONDecodeError:
        return None
    return figure if isinstance(figure, dict) and "name" in figure else None
