"""Evaluator throughput per memory layout and forward-pass size: a measured note, not a test.

The classifier forward pass of train.evaluate (float32, ``torch.inference_mode``) for WRN-16-2
and WRN-28-4 on 32 px images, NCHW against channels_last, at several pass sizes. Layouts and
sizes are interleaved and the best of ``--repeats`` calls is kept, so a neighbour's burst of work
hurts every case alike. ``--cpu-time`` reports the CPU time of the process instead of the wall
clock (use it with ``--threads 1`` on a shared machine: it is what the kernels cost, and other
jobs on the cores barely change it; the figures are then per core).

    python bench/eval_throughput.py --threads 1 --cpu-time
    python bench/eval_throughput.py --device cuda --batches 64,256,500,1000
"""
from __future__ import annotations

import argparse
import time

import torch

from fastnst.train.models import create_model

LAYOUTS = {"nchw": torch.contiguous_format, "channels_last": torch.channels_last}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="wrn16_2,wrn28_4")
    parser.add_argument("--batches", default="32,64,128,256,500", help="images per forward pass")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--cpu-time", action="store_true", help="process CPU time instead of the wall clock")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    clock = time.process_time if args.cpu_time else time.perf_counter
    batches = [int(b) for b in args.batches.split(",")]

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    print(f"torch {torch.__version__}, device {device}, threads {torch.get_num_threads()}, "
          f"{'CPU time' if args.cpu_time else 'wall clock'}, best of {args.repeats}; images/s")
    print("| model | layout | " + " | ".join(f"pass of {b}" for b in batches) + " |")
    print("| --- | --- |" + " --- |" * len(batches))
    for name in args.models.split(","):
        torch.manual_seed(0)
        cases = {}
        for layout, memory_format in LAYOUTS.items():
            model = create_model(name, 10).to(device, memory_format=memory_format).eval()
            for batch in batches:
                images = torch.randn(batch, 3, 32, 32, device=device).contiguous(memory_format=memory_format)
                cases[(layout, batch)] = (model, images)
        best = dict.fromkeys(cases, float("inf"))
        with torch.inference_mode():
            for repeat in range(args.repeats + 1):  # the first round warms up
                order = list(cases) if repeat % 2 == 0 else list(reversed(cases))
                for key in order:
                    model, images = cases[key]
                    sync()
                    started = clock()
                    model(images)
                    sync()
                    if repeat:
                        best[key] = min(best[key], clock() - started)
        for layout in LAYOUTS:
            print(f"| {name} | {layout} | " + " | ".join(f"{b / best[(layout, b)]:.0f}" for b in batches) + " |",
                  flush=True)


if __name__ == "__main__":
    main()
