"""What every stylization mode costs: arithmetic from the networks, floors, measured ratios, one table.

    python -m bench.cost_model            # print the table
    python -m bench.cost_model --write    # also rewrite it in bench/README.md and docs/stylizer.md, and the plot

Arithmetic is counted by ``torch.utils.flop_counter`` on fastnst's own networks, run on the meta
device (no memory, no time): the encoder and decoder at each stylization side, and one training
step (forward + backward) of the preset's classifier. The resizes and AdaIN are not counted (a few
operations per pixel against thousands for the convolutions).

The floor on ``stylized_over_plain`` that the arithmetic implies, for a stylized share s of each
batch (the preset's: ``(r * λs + (1 - r) * λo) * nst_probability``, r the synthetic ratio), a
stylization cost S per stylized image and a training step cost T per image:

    floor = 1 + s * S / T

i.e. the step can be no faster than its extra arithmetic allows, if the networks ran at the
classifier's efficiency. The cache mode stylizes nothing while training: its floor is 1 (a gather of
stored images). Its one-off cost is building the cache: with K variants per image, the encoder
runs once per image and the decoder K times, (E + K * D) / K per stored variant.

Measured figures are read from the saved bench baselines (``bench/baselines/*.json``): the
``stylized_over_plain`` of ``test_train_step_bench.py``'s variants and the img/s of
``test_stylize_dataset_bench.py``. A cell without a measurement says so.

Building a cache on N GPUs (``torchrun --nproc_per_node=N -m train.stylize_cache``): the ranks share
the chunks, so the arithmetic per GPU is W / N for a source's W = images x K x the per-variant cost;
``cache_scaling_table`` turns it into hours at an ASSUMED sustained rate (``ASSUMED_TFLOPS``), a model
of the time, not a measurement.
"""
from __future__ import annotations

import argparse
import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

ROOT = Path(__file__).resolve().parent.parent
BASELINES = ROOT / "bench" / "baselines"
CPU_BASELINE = BASELINES / "cpu-2core.json"
DOCS = (ROOT / "bench" / "README.md", ROOT / "docs" / "stylizer.md")
README = ROOT / "README.md"  # holds only the cache-scaling table
PLOT = ROOT / "docs" / "img" / "stylization_cost.png"
BEGIN, END = "<!-- cost-table:begin (python -m bench.cost_model --write) -->", "<!-- cost-table:end -->"
PRESETS = ("cifar10", "cifar100", "tinyimagenet")
RESOLUTIONS = (None, 64, 112, 224)  # None: native
CACHE_VARIANTS = 4                  # K of the cache whose building cost the table gives
NO_GPU = "not measured (no GPU lent)"
# mode -> the train-step bench variant that measures it (bench/train_step.py)
BENCH_VARIANT = {None: "native", 64: "res64", 112: "res112", 224: "paper224", "cache": "cache"}


# ----------------------------------------------------------------------------------------- arithmetic


def _gflop(run) -> float:
    with torch.device("meta"), FlopCounterMode(display=False) as counter:
        run()
    return counter.get_total_flops() / 1e9


@cache
def network_gflop(side: int) -> tuple[float, float]:
    """(encoder, decoder) GFLOP for one image stylized at ``side`` x ``side`` px."""
    from fastnst.networks import Decoder, VGGEncoder

    with torch.device("meta"):
        encoder, decoder = VGGEncoder(), Decoder()
    features = torch.empty(1, 512, side // 8, side // 8, device="meta")
    return (_gflop(lambda: encoder(torch.empty(1, 3, side, side))), _gflop(lambda: decoder(features)))


def stylize_gflop(image_size: int, resolution: int | None) -> float:
    """Encoder + decoder GFLOP per stylized image of side ``image_size`` at ``resolution`` (None: native)."""
    return sum(network_gflop(resolution or image_size))


def cache_build_gflop(resolution: int | None, image_size: int, variants: int = CACHE_VARIANTS) -> float:
    """GFLOP per stored variant when each image is encoded once and decoded ``variants`` times."""
    encoder, decoder = network_gflop(resolution or image_size)
    return (encoder + variants * decoder) / variants


@cache
def train_step_gflop(model_name: str, image_size: int, num_classes: int) -> float:
    """Forward + backward GFLOP per image of one training step of the classifier."""
    from fastnst.train.models import create_model

    batch = 8
    with torch.device("meta"):
        model = create_model(model_name, num_classes)

    def step():
        model(torch.empty(batch, 3, image_size, image_size)).sum().backward()

    return _gflop(step) / batch


# ----------------------------------------------------------------------------------------- presets


@dataclass(frozen=True)
class Workload:
    """A classifier, its images and the share of each batch that the recipe stylizes."""

    name: str
    model: str
    image_size: int
    num_classes: int
    stylized_share: float

    @property
    def step_gflop(self) -> float:
        return train_step_gflop(self.model, self.image_size, self.num_classes)

    def floor(self, resolution: int | None) -> float:
        return 1.0 + self.stylized_share * stylize_gflop(self.image_size, resolution) / self.step_gflop


def stylized_share(config: dict) -> float:
    """Expected share of a batch that is stylized: per source probability x its share x nst_probability."""
    ratio = float(config.get("synthetic_ratio", 0.0))
    chosen = ratio * float(config["prob_synthetic"]) + (1.0 - ratio) * float(config["prob_real"])
    return chosen * float(config.get("nst_probability", 1.0))


def preset_workload(name: str) -> Workload:
    from fastnst.train.config import DEFAULTS, load_preset
    from fastnst.train.data.stats import dataset_info

    config = {**DEFAULTS, **load_preset(name)}
    info = dataset_info(name)
    return Workload(name, config["model"], info.image_size, info.num_classes, stylized_share(config))


def cpu_bench_workload() -> Workload:
    """The cpu-mode train-step bench's workload (bench/train_step.py), to set its measurements against."""
    from bench.train_step import RECIPE, SIZES

    share = stylized_share(RECIPE)
    return Workload("cpu bench", SIZES["cpu"][0], 32, 10, share)


# ----------------------------------------------------------------------------------------- measurements


def _benchmarks(path: Path) -> list[dict]:
    try:
        return json.loads(path.read_text()).get("benchmarks", [])
    except (OSError, ValueError):
        return []


def measured(path: Path) -> dict:
    """{"ratio": {bench variant: stylized_over_plain}, "build": {resolution: img/s}, "device": str} of a baseline."""
    figures = {"ratio": {}, "build": {}, "device": None}
    for benchmark in _benchmarks(path):
        info = benchmark.get("extra_info", {})
        figures["device"] = figures["device"] or info.get("device")
        match = re.search(r"test_train_step\[(\w+)\]", benchmark.get("fullname", ""))
        if match and "stylized_over_plain" in info:
            figures["ratio"][match.group(1)] = info["stylized_over_plain"]
        match = re.search(r"test_stylize_dataset_throughput\[(\w+)\]", benchmark.get("fullname", ""))
        if match and "images_per_second" in info:
            figures["build"][match.group(1)] = info["images_per_second"]
    return figures


def gpu_baselines() -> list[Path]:
    return sorted(path for path in BASELINES.glob("*.json") if not path.name.startswith("cpu-"))


# ----------------------------------------------------------------------------------------- the table


def _shown(path: Path) -> str:
    path = Path(path).resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def _mode_label(resolution) -> str:
    if resolution == "cache":
        return f"cache (K = {CACHE_VARIANTS} stored variants, made at 224 px)"
    if resolution is None:
        return "on the fly, native (32 / 64 px)"
    return f"on the fly, {resolution} px" + (" (the authors')" if resolution == 224 else "")


def _ratio_cell(figures: dict, resolution) -> str:
    value = figures["ratio"].get(BENCH_VARIANT[resolution])
    return f"{value:.2f}" if value is not None else "not measured"


def table(cpu_baseline: Path = CPU_BASELINE) -> str:
    presets = [preset_workload(name) for name in PRESETS]
    bench = cpu_bench_workload()
    cpu = measured(cpu_baseline)
    gpus = [(path, measured(path)) for path in gpu_baselines()]
    cifar10 = presets[0]
    header = ["mode", "GFLOP per stylized image (32 / 64 px input)",
              f"added GFLOP per training image ({cifar10.name})",
              "floor on stylized_over_plain: " + " / ".join(f"{w.name}" for w in presets),
              f"floor, cpu bench ({bench.model})", "measured, cpu mode", "measured, GPU",
              "one-off cost: building the cache"]
    rows = []
    for resolution in (*RESOLUTIONS, "cache"):
        gpu_cell = "; ".join(f"{_ratio_cell(f, resolution)} ({f['device'] or path.stem})" for path, f in gpus) or NO_GPU
        if resolution == "cache":
            build_32 = cache_build_gflop(224, 32)
            cpu_build = cpu["build"].get("224px")
            gpu_build = "; ".join(f"{f['build']['224px']:.0f} img/s ({f['device'] or path.stem})"
                                  for path, f in gpus if "224px" in f["build"]) or f"GPU {NO_GPU}"
            build = (f"{build_32:.1f} GFLOP per stored variant at 224 px (encoder once per image); "
                     f"`stylize_dataset` at 224 px: "
                     + (f"{cpu_build:.2f} img/s on the CPU" if cpu_build else "not measured on the CPU")
                     + f"; {gpu_build}")
            rows.append([_mode_label(resolution), "0 (a gather of stored images)", "0",
                         " / ".join("1.00" for _ in presets), "1.00", _ratio_cell(cpu, resolution), gpu_cell, build])
            continue
        per_image = f"{stylize_gflop(32, resolution):.2f} / {stylize_gflop(64, resolution):.2f}"
        added = cifar10.stylized_share * stylize_gflop(cifar10.image_size, resolution)
        floors = " / ".join(f"{w.floor(resolution):.2f}" for w in presets)
        rows.append([_mode_label(resolution), per_image, f"{added:.2f}", floors, f"{bench.floor(resolution):.1f}",
                     _ratio_cell(cpu, resolution), gpu_cell, "-"])
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(["---"] * len(header)) + " |"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    steps = "; ".join(f"{w.name}: {w.model}, {w.step_gflop:.2f} GFLOP per {w.image_size} px image, stylized share "
                      f"{w.stylized_share:.3f}" for w in presets)
    lines += ["", f"Train step (forward + backward) and stylized share of a batch: {steps}; cpu bench: {bench.model}, "
              f"{bench.step_gflop:.3f} GFLOP, share {bench.stylized_share:.2f}. A share is the preset's "
              "(synthetic ratio × λs + real share × λo) × nst_probability. Measured: `stylized_over_plain` of "
              f"`pytest bench` (cpu mode: {cpu['device'] or 'cpu'}). Written by `python -m bench.cost_model --write` "
              f"from the networks, the presets and `{_shown(cpu_baseline)}`."]
    return "\n".join(lines)


# Training-set sizes and the EDM synthetic pool (1M images: the authors' np.random.choice(1_000_000, ...),
# experiments/data.py:484), for how often the recipe stylizes one image over a run.
TRAIN_SIZES = {"cifar10": 50_000, "cifar100": 50_000, "tinyimagenet": 100_000}
SYNTHETIC_POOL = 1_000_000
USES_BEGIN, USES_END = "<!-- cache-uses:begin (python -m bench.cost_model --write) -->", "<!-- cache-uses:end -->"


def expected_uses(config: dict, num_real: int, pool: int) -> dict:
    """Expected draws and stylizations of one real / one synthetic image over ``config``'s run, with
    ``num_real`` real images and a synthetic pool of ``pool`` (the authors' epoch: num_real samples,
    int(num_real * r) of them synthetic, drawn without replacement; the rest a subset of the real set)."""
    ratio, epochs = float(config["synthetic_ratio"]), int(config["epochs"])
    nst = float(config.get("nst_probability", 1.0))
    synthetic_per_epoch = int(num_real * ratio)
    real_draws = epochs * (num_real - synthetic_per_epoch) / num_real
    synthetic_draws = epochs * synthetic_per_epoch / pool
    return {"epochs": epochs, "real_draws": real_draws, "synthetic_draws": synthetic_draws,
            "real": real_draws * float(config["prob_real"]) * nst,
            "synthetic": synthetic_draws * float(config["prob_synthetic"]) * nst}


def stylizations_per_image(name: str) -> dict:
    """``expected_uses`` of a preset, with the data set's size and the EDM pool."""
    from fastnst.train.config import DEFAULTS, load_preset

    return expected_uses({**DEFAULTS, **load_preset(name)}, TRAIN_SIZES[name], SYNTHETIC_POOL)


def uses_table(variants: int = CACHE_VARIANTS) -> str:
    header = ["preset", "epochs", "real image: in the epoch / stylized", "synthetic image: in the epoch / stylized",
              f"with a K = {variants} cache: uses per stored variant, real / synthetic"]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(["---"] * len(header)) + " |"]
    for name in PRESETS:
        uses = stylizations_per_image(name)
        lines.append(f"| {name} | {uses['epochs']} | {uses['real_draws']:.0f} / {uses['real']:.1f} | "
                     f"{uses['synthetic_draws']:.1f} / {uses['synthetic']:.2f} | "
                     f"{uses['real'] / variants:.1f} / {uses['synthetic'] / variants:.2f} |")
    lines += ["", f"Expected counts per image over the preset's run ({', '.join(f'{n} {c:,}' for n, c in TRAIN_SIZES.items())} "
              f"real images, a pool of {SYNTHETIC_POOL:,} synthetic ones): in the epoch = epochs × the share of its "
              "source drawn per epoch; stylized = that × λ of its source × nst_probability. Written by "
              "`python -m bench.cost_model --write` from the presets."]
    return "\n".join(lines)


SCALING_BEGIN = "<!-- cache-scaling:begin (python -m bench.cost_model --write) -->"
SCALING_END = "<!-- cache-scaling:end -->"
# An ASSUMPTION, not a measurement (no GPU has been lent): the encoder's and decoder's convolutions in bf16,
# channels_last, compiled, at about 40 % of an H100 SXM's 989 TFLOP/s dense bf16 peak.
ASSUMED_TFLOPS = 400.0
GPU_COUNTS = (1, 2, 4, 8)


# The sets a cache is made of, by the image count that decides its cost (cifar100's real set is cifar10's size).
CACHE_SETS = (("CIFAR-10/100 training set (real)", TRAIN_SIZES["cifar10"]),
              ("TinyImageNet training set (real)", TRAIN_SIZES["tinyimagenet"]),
              ("EDM synthetic pool of any preset", SYNTHETIC_POOL))


def cache_build_pflop(images: int, variants: int = CACHE_VARIANTS, resolution: int = 224) -> float:
    """Arithmetic of a cache of ``images`` images x ``variants``, stylized at ``resolution`` (any input size)."""
    return images * variants * cache_build_gflop(resolution, 32, variants) / 1e6


def cache_scaling_table(variants: int = CACHE_VARIANTS, tflops: float = ASSUMED_TFLOPS) -> str:
    header = ["cache of", "images x K", "PFLOP"] + [f"{n} GPU{'s' if n > 1 else ''}" for n in GPU_COUNTS]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(["---"] * len(header)) + " |"]
    for label, images in CACHE_SETS:
        pflop = cache_build_pflop(images, variants)
        seconds = [pflop * 1e3 / (n * tflops) for n in GPU_COUNTS]
        lines.append(f"| {label} | {images:,} x {variants} | {pflop:.1f} | " + " | ".join(f"{s:.0f} s" for s in seconds)
                     + " |")
    lines += ["", f"A MODEL, not a measurement: seconds of arithmetic per GPU = W / (N x {tflops:.0f} TFLOP/s), W from "
              f"the networks' FLOPs at 224 px ({cache_build_gflop(224, 32, variants):.1f} GFLOP per stored variant, the "
              f"encoder once per image), {tflops:.0f} TFLOP/s an assumed sustained rate per GPU (`ASSUMED_TFLOPS`). "
              "It leaves out what N does not divide: each rank's start (loading the input, building and compiling the "
              "networks), writing the images, and the wait for the slowest rank (at most one chunk). Written by "
              "`python -m bench.cost_model --write`."]
    return "\n".join(lines)


def plot(path: Path = PLOT, cpu_baseline: Path = CPU_BASELINE) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sides = [32, 64, 112, 224]
    figure, axis = plt.subplots(figsize=(7, 4.5))
    for workload, style in zip([preset_workload(name) for name in PRESETS], ("-", ":", "-")):
        points = [(side, workload.floor(side)) for side in sides if side >= workload.image_size]
        axis.plot(*zip(*points), marker="o", ls=style, label=f"floor, {workload.name} preset ({workload.model})")
    bench = cpu_bench_workload()
    axis.plot(sides, [bench.floor(side) for side in sides], ls="--", color="grey",
              label=f"floor, cpu bench workload ({bench.model})")
    cpu = measured(cpu_baseline)
    points = [(side, cpu["ratio"][BENCH_VARIANT[None if side == 32 else side]]) for side in sides
              if BENCH_VARIANT[None if side == 32 else side] in cpu["ratio"]]
    if points:
        axis.plot(*zip(*points), ls="none", marker="x", ms=9, color="black", label="measured, cpu bench")
    axis.axhline(1.0, color="tab:green", lw=1)
    if "cache" in cpu["ratio"]:
        axis.plot([32], [cpu["ratio"]["cache"]], ls="none", marker="*", ms=12, color="tab:green",
                  label=f"cache mode, measured cpu ({cpu['ratio']['cache']:.2f})")
    axis.set_xscale("log", base=2)
    axis.set_yscale("log")
    axis.set_xticks(sides, [f"{side}" for side in sides])
    axis.set_xlabel("stylization side (px); 32 = native for CIFAR")
    axis.set_ylabel("stylized_over_plain (log)")
    axis.set_title("Step time with stylization over plain: arithmetic floors, measured (cpu)", fontsize=10)
    axis.grid(True, which="both", alpha=0.3)
    axis.legend(fontsize=7)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def replace_between_markers(text: str, content: str, where: Path, begin: str = BEGIN, end: str = END) -> str:
    if begin not in text or end not in text:
        raise ValueError(f"{where}: no markers {begin} ... {end}")
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    return f"{head}{begin}\n{content}\n{end}{tail}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cost_model", description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true", help="rewrite the table in the docs and the plot")
    parser.add_argument("--baseline", type=Path, default=CPU_BASELINE, help="cpu-mode bench results to read")
    args = parser.parse_args(argv)
    markdown, uses, scaling = table(args.baseline), uses_table(), cache_scaling_table()
    print(markdown, uses, scaling, sep="\n\n")
    if args.write:
        for doc in DOCS:
            text = replace_between_markers(doc.read_text(), markdown, doc)
            if USES_BEGIN in text:
                text = replace_between_markers(text, uses, doc, USES_BEGIN, USES_END)
            doc.write_text(text)
        README.write_text(replace_between_markers(README.read_text(), scaling, README, SCALING_BEGIN, SCALING_END))
        print(f"wrote {', '.join(_shown(doc) for doc in (*DOCS, README))} and {_shown(plot(cpu_baseline=args.baseline))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
