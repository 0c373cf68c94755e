"""Tables of a ``torch.profiler`` run: where device time goes, and how much of it converts layouts.

A *work record* is one device kernel (on CUDA) with its duration and the chain of PyTorch ops (and
``record_function`` ranges) that launched it, innermost first. On the CPU, where there are no
kernels, each op stands in for a kernel with its self CPU time (its own work, its children's
excluded), so the same tables come out of a CPU run (bench/gpu_run.sh --dry-run's profile part).

The rule for a layout conversion (``is_layout_conversion``), chosen so that it counts what the
channels_last work removes and nothing else:

1. any kernel launched inside ``aten::contiguous``. ``contiguous`` launches work only when the
   tensor is not already dense in the asked memory format, so each such kernel is a layout change:
   the NCHW copies CUDA's ``reflection_pad2d`` makes of its input, the copies cuDNN's convolution
   makes of an input or weight in the other layout, a ``.contiguous()`` in our code;
2. any kernel whose name says it transposes layouts: cuDNN's and CUTLASS's ``nchwToNhwc`` /
   ``nhwcToNchw`` kernels, names with ``transpose`` or ``permute``, and Inductor kernels whose name
   lists ``clone`` among their fused ops (Inductor emits a clone for a memory-format change).

Plain copies are not counted: ``aten::copy_`` under ``aten::to`` / ``aten::_to_copy`` changes the
dtype or device (e.g. autocast's bf16 weights), ``aten::clone`` outside ``contiguous`` duplicates
a tensor. They appear as "other copies" (kernel name with ``copy``) next to the layout count.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

LAYOUT_KERNEL_NAME = re.compile(r"nchwtonhwc|nhwctonchw|nchw2nhwc|nhwc2nchw|transpose|permute|triton_\w*_clone",
                                re.IGNORECASE)
LAYOUT_OPS = ("aten::contiguous",)
COPY_KERNEL_NAME = re.compile(r"copy", re.IGNORECASE)
REGIONS = ("stylize", "classifier_forward", "classifier_backward", "optimizer_step")


@dataclass(frozen=True)
class WorkRecord:
    name: str                 # kernel name (CUDA) or op name (CPU)
    microseconds: float
    chain: tuple[str, ...]    # launching op first, then its parents, outermost last


def is_layout_conversion(record: WorkRecord) -> bool:
    if any(op in LAYOUT_OPS for op in record.chain):
        return True
    # The name rule reads kernel names; an op record of a CPU run (aten::transpose is a view) is judged by rule 1.
    return not record.name.startswith("aten::") and LAYOUT_KERNEL_NAME.search(record.name) is not None


def is_other_copy(record: WorkRecord) -> bool:
    return not is_layout_conversion(record) and COPY_KERNEL_NAME.search(record.name) is not None


def region_of(record: WorkRecord) -> str:
    """The labelled step region (bench/train_step.py) the record ran in; backward kernels run on
    autograd's own thread, outside any range: they count as ``classifier_backward`` when no range holds them."""
    for op in record.chain:
        if op in REGIONS:
            return op
    if any("backward" in op.lower() for op in record.chain):
        return "classifier_backward"
    return "other"


def _chain(event) -> tuple[str, ...]:
    names = []
    while event is not None:
        names.append(event.name)
        event = event.cpu_parent
    return tuple(names)


def work_records(events, on_device: bool) -> list[WorkRecord]:
    """Records of a profile's ``prof.events()``: device kernels with their launching chain when
    ``on_device``, else every CPU op with its self time."""
    records = []
    for event in events:
        if getattr(event, "is_async", False) or str(getattr(event, "device_type", "")).endswith("CUDA"):
            continue  # device-side events are reached through the op that launched them
        if on_device:
            for kernel in getattr(event, "kernels", []):
                records.append(WorkRecord(kernel.name, float(kernel.duration), _chain(event)))
        elif event.name not in REGIONS:
            records.append(WorkRecord(event.name, float(event.self_cpu_time_total), _chain(event)))
    return records


def short_name(name: str, width: int = 96) -> str:
    """A kernel name cut to ``width``: template arguments of ``void at::native::...<...>`` dropped first."""
    name = re.sub(r"^void ", "", name)
    if len(name) > width:
        name = re.sub(r"<.*>", "<...>", name) if "<" in name else name
    return name if len(name) <= width else name[: width - 3] + "..."


def summarize(records: list[WorkRecord], top: int = 15) -> dict:
    """Totals, per-region time, the ``top`` kernels by time, and the layout conversions."""
    total = sum(record.microseconds for record in records)
    by_name: dict[str, list[float]] = {}
    for record in records:
        by_name.setdefault(record.name, []).append(record.microseconds)
    ranked = sorted(by_name.items(), key=lambda item: -sum(item[1]))
    layout = [record for record in records if is_layout_conversion(record)]
    layout_by_source: dict[tuple[str, str], list[float]] = {}
    for record in layout:
        launcher = " < ".join(record.chain[:3]) or "(no op)"
        layout_by_source.setdefault((short_name(record.name, 60), launcher), []).append(record.microseconds)
    other_copies = [record for record in records if is_other_copy(record)]
    regions: dict[str, float] = {}
    for record in records:
        regions[region_of(record)] = regions.get(region_of(record), 0.0) + record.microseconds
    return {
        "total_ms": total / 1e3,
        "num_kernels": len(records),
        "regions_ms": {name: value / 1e3 for name, value in sorted(regions.items())},
        "top": [{"name": short_name(name), "count": len(times), "total_ms": sum(times) / 1e3,
                 "share": sum(times) / total if total else 0.0} for name, times in ranked[:top]],
        "layout_conversions": {
            "count": len(layout), "total_ms": sum(r.microseconds for r in layout) / 1e3,
            "share": sum(r.microseconds for r in layout) / total if total else 0.0,
            "by_source": [{"kernel": kernel, "launched_from": launcher, "count": len(times),
                           "total_ms": sum(times) / 1e3}
                          for (kernel, launcher), times in sorted(layout_by_source.items(), key=lambda i: -sum(i[1]))],
        },
        "other_copies": {"count": len(other_copies), "total_ms": sum(r.microseconds for r in other_copies) / 1e3},
    }


def markdown(summary: dict, unit_name: str = "kernel") -> str:
    """The summary as Markdown: top table, then the layout conversions by source."""
    lines = [f"| {unit_name} | calls | total ms | share |", "| --- | ---: | ---: | ---: |"]
    for row in summary["top"]:
        lines.append(f"| `{row['name']}` | {row['count']} | {row['total_ms']:.3f} | {row['share']:.1%} |")
    layout = summary["layout_conversions"]
    lines += ["", f"Layout conversions: **{layout['count']}** {unit_name}s, **{layout['total_ms']:.3f} ms** "
                  f"({layout['share']:.1%} of {summary['total_ms']:.3f} ms); other copies (dtype/device, plain clones): "
                  f"{summary['other_copies']['count']}, {summary['other_copies']['total_ms']:.3f} ms."]
    if layout["by_source"]:
        lines += ["", f"| layout {unit_name} | launched from (innermost first) | calls | total ms |",
                  "| --- | --- | ---: | ---: |"]
        lines += [f"| `{row['kernel']}` | {row['launched_from']} | {row['count']} | {row['total_ms']:.3f} |"
                  for row in layout["by_source"]]
    return "\n".join(lines)
