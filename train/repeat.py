"""``python -m train.repeat``: one ``train.run`` command per seed, and the mean and std over the seeds.

    python -m train.repeat --seeds 0 1 2 -- --dataset cifar10 --data-root data --out runs/cifar10
    python -m train.repeat -- --epochs 2                      # the built-in demo, seeds 0 1 2

The authors train and evaluate each config as runs 0, 1 and 2, the run number being the seed
(``experiments/train.py:291-294``), and report each metric's mean and standard deviation over the runs
(``experiments/utils.py:519, 521``: numpy's ``std``, ddof 0) in ``results/<DS>/<model>/config<N>_result_metrics.csv``.
Everything after ``--`` is a ``python -m train.run`` command line (its ``--out`` is the repeat's folder);
it runs once per seed into ``OUT/seed_<S>``, then ``OUT/repeat_summary.json`` and ``OUT/repeat_summary.md``
hold, per evaluated model, the rows of their file (clean accuracy, RMSCE, every -C and C-bar corruption, the
four Acc_C scores, RMSCE_C, the Lp-noise accuracy Combined_Noise; plus the RMSCE's l2 variant, see
``train.calibration``) with the columns avg, std and one per seed. Their evaluated model is the SWA model when
SWA is on (``experiments/train.py:402-410``): ``swa_model`` here.

A repeat that was stopped continues when the same command is given again: a seed whose run finished (its
``summary.json``) is not run again, the others continue from their checkpoint (``train.run --resume``). A seed
folder whose run had other settings is refused, so one summary never mixes settings. The built-in demo's
seeds share one generated data set (``OUT/demo_data``, unless ``--data-root`` is given); each seed's run encodes
its own style bank, as a single train.run does: without ``--vgg`` its encoder's random weights come from the seed.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

from fastnst.cli import UsageError, add_debug_flag, program_name, run_cli
from fastnst.distributed import resolve_device
from fastnst.train.config import parse_command_line
from fastnst.train.run import fill_default_paths, run

DEFAULT_SEEDS = (0, 1, 2)  # the authors' runs 0, 1, 2 (experiments/train.py:291-294)
SUMMARY_JSON, SUMMARY_MD = "repeat_summary.json", "repeat_summary.md"
# Options that do not change what a seed's run computes: may differ between the runs of one repeat.
NOT_SETTINGS = ("resume", "overwrite", "download", "log_every")
# Options the repeat sets itself, per seed.
SET_BY_REPEAT = ("seed", "resume", "overwrite")


def split_command_line(argv: list[str]) -> tuple[list[str], list[str]]:
    """(the repeat's own arguments, the train.run arguments after ``--``)."""
    if "--" in argv:
        cut = argv.index("--")
        return argv[:cut], argv[cut + 1:]
    return argv, []


def seed_folder(out: Path, seed: int) -> Path:
    return out / f"seed_{seed}"


def shared_demo_inputs(out: Path, config: dict) -> dict[str, Path]:
    """The built-in demo's generated data set, one for every seed (unless given): flag -> path."""
    return {"--data-root": out / "demo_data"} if config["dataset"] == "demo" and config["data_root"] is None else {}


def seed_command_line(run_args: list[str], out: Path, seed: int, shared: dict[str, Path]) -> list[str]:
    """The train.run command line of one seed (argparse keeps the last --out)."""
    extra = ["--seed", str(seed), "--out", str(seed_folder(out, seed)), "--resume"]
    return [*run_args, *extra, *(item for flag, path in shared.items() for item in (flag, str(path)))]


def _settings(config: dict) -> dict:
    plain = json.loads(json.dumps(config, default=str))  # as config.json holds it: lists, no tuples
    return {key: value for key, value in plain.items() if key not in NOT_SETTINGS}


def check_same_settings(folder: Path, config: dict) -> None:
    """Refuse a seed folder whose run had other settings than this command gives it."""
    saved_path = folder / "config.json"
    if not saved_path.is_file():
        return
    saved, wanted = _settings(json.loads(saved_path.read_text())), _settings(config)
    changed = sorted(key for key in saved.keys() | wanted.keys() if saved.get(key) != wanted.get(key))
    if changed:
        details = ", ".join(f"{key} {saved.get(key)!r} there, {wanted.get(key)!r} now" for key in changed[:4])
        raise UsageError(f"{folder} ran with other settings ({details}{', ...' if len(changed) > 4 else ''}); "
                         "give the same train.run arguments to continue this repeat, or another --out")


# ----------------------------------------------------------------------------- the summary

def run_metrics(summary: dict) -> dict[str, dict[str, float | None]]:
    """One run's summary.json -> {model: {row of the authors' results table: value}}."""
    robustness = summary.get("robustness")
    if not robustness:  # --no-evaluate-corruptions: the last epoch's clean accuracy only
        final = summary.get("final", {})
        return {name: {"Standard_Acc": 100.0 * final[key]}
                for name, key in (("swa_model", "swa_test_acc"), ("model", "test_acc")) if final.get(key) is not None}
    metrics = {}
    for name in sorted(robustness, key=lambda name: name != "swa_model"):  # the evaluated model first
        result = robustness[name]
        clean_calibration = result.get("calibration_error") or {}
        mean_calibration = result.get("mean_corruption_calibration_error") or {}
        scores = result.get("scores", {})
        metrics[name] = {
            "Standard_Acc": result["clean_accuracy"],
            "RMSCE": clean_calibration.get("l1"), "RMSCE_l2": clean_calibration.get("l2"),
            **(result.get("corruption_mean") or {}),
            **{score: scores.get(score, {}).get("value") for score in
               ("Acc_C-all-19", "Acc_C-original-15", "Acc_C-bar-10", "Acc_all-ex-pixelwise-noise-24")},
            "RMSCE_C": mean_calibration.get("l1"), "RMSCE_C_l2": mean_calibration.get("l2"),
            "Combined_Noise": result.get("lp_noise_accuracy"),
        }
    return metrics


def aggregate(per_seed: dict[int, dict[str, dict[str, float | None]]]) -> dict:
    """{model: {row: {"mean", "std", "runs": {seed: value}}}}; a row missing in a run has no mean."""
    models = [name for name in next(iter(per_seed.values())) if all(name in runs for runs in per_seed.values())]
    table = {}
    for model in models:
        rows = list(dict.fromkeys(row for runs in per_seed.values() for row in runs[model]))
        table[model] = {}
        for row in rows:
            values = {seed: runs[model].get(row) for seed, runs in per_seed.items()}
            complete = all(value is not None for value in values.values())
            numbers = np.array([values[seed] for seed in values], dtype=np.float64) if complete else None
            table[model][row] = {"mean": float(numbers.mean()) if complete else None,
                                 "std": float(numbers.std()) if complete else None,  # ddof 0: utils.py:521
                                 "runs": values}
    return table


def markdown(table: dict, seeds: list[int], settings: str) -> str:
    def cell(value):
        return "n/a" if value is None else f"{value:.4f}"

    lines = [f"# {len(seeds)} runs: mean and std over seeds {', '.join(map(str, seeds))}", "",
             f"{settings}. Rows and columns as the authors' `results/<DS>/WideResNet_28_4/config549_result_metrics.csv`: "
             "accuracies in percent, calibration errors in [0, 1] (RMSCE: l1, their code at HEAD; _l2: root mean "
             "square); std with ddof 0, as theirs (`experiments/utils.py:521`)."]
    for model, rows in table.items():
        note = " (the evaluated model: the authors evaluate the SWA model)" if model == "swa_model" else ""
        lines += ["", f"## {model}{note}", "",
                  "| | avg | std | " + " | ".join(f"seed_{seed}" for seed in seeds) + " |",
                  "| --- | --- | --- |" + " --- |" * len(seeds)]
        for row, entry in rows.items():
            lines.append(f"| {row} | {cell(entry['mean'])} | {cell(entry['std'])} | "
                         + " | ".join(cell(entry["runs"][seed]) for seed in seeds) + " |")
    return "\n".join(lines) + "\n"


def write_summary(out: Path, seeds: list[int], config: dict) -> dict:
    per_seed = {seed: run_metrics(json.loads((seed_folder(out, seed) / "summary.json").read_text())) for seed in seeds}
    table = aggregate(per_seed)
    settings = (f"{config['dataset']}, {config['model']}, {config['epochs']} epochs"
                f"{'' if config['stylize'] else ', no stylization'}")
    summary = {"seeds": seeds, "runs": {seed: str(seed_folder(out, seed)) for seed in seeds}, "std": "ddof 0",
               "settings": _settings({**config, "seed": None, "out": str(out)}), "models": table}
    (out / SUMMARY_JSON).write_text(json.dumps(summary, indent=2) + "\n")
    text = markdown(table, seeds, settings)
    (out / SUMMARY_MD).write_text(text)
    print(text + f"\nwrote {out / SUMMARY_JSON} and {out / SUMMARY_MD}", flush=True)
    return summary


# ----------------------------------------------------------------------------- the command

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=program_name("train.repeat"), usage="%(prog)s [--seeds S [S ...]] -- [train.run arguments]",
        description="Run a python -m train.run command once per seed (into OUT/seed_<S>) and report each metric's "
        "mean and std over the seeds, as the authors report their runs 0, 1 and 2. Run the same command again to "
        "continue a stopped repeat: finished seeds are kept, the others resume.",
        epilog="Example: python -m train.repeat --seeds 0 1 2 -- --dataset cifar10 --data-root data --out runs/c10")
    parser.add_argument("--seeds", type=int, nargs="+", default=list(DEFAULT_SEEDS), metavar="S",
                        help="one run per seed (default: 0 1 2, the authors' runs)")
    add_debug_flag(parser)
    return parser


def main(argv: list[str] | None = None) -> dict:
    own, run_args = split_command_line(list(sys.argv[1:] if argv is None else argv))
    args = build_parser().parse_args(own)
    seeds = list(dict.fromkeys(args.seeds))
    base, sources, print_config = parse_command_line(run_args)
    if print_config:
        raise UsageError("--print-config: give it to python -m train.run (train.repeat runs the command once per seed)")
    given = [key for key in SET_BY_REPEAT if sources.get(key) == "flag"]
    if given:
        raise UsageError(f"--{given[0].replace('_', '-')} is set by train.repeat for each seed (--seeds, and "
                         "--resume to continue): leave it out of the train.run arguments")
    resolve_device(base["device"])  # --device cuda without a GPU: said before the demo's bank is encoded
    out = Path(base["out"])
    is_main = int(os.environ.get("RANK", "0")) == 0
    shared = shared_demo_inputs(out, base)
    configs = {seed: parse_command_line(seed_command_line(run_args, out, seed, shared))[0] for seed in seeds}
    for seed, config in configs.items():  # every seed before any run: a refusal costs no training
        expected = dict(config)
        fill_default_paths(expected)  # as train.run fills it before writing config.json
        check_same_settings(seed_folder(out, seed), expected)
    for seed, config in configs.items():
        folder = seed_folder(out, seed)
        if (folder / "summary.json").is_file():
            if is_main:
                print(f"seed {seed}: finished in {folder}, not run again", flush=True)
            continue
        if is_main:
            print(f"seed {seed}: {'continuing' if (folder / 'checkpoint.pt').exists() else 'starting'} in {folder}",
                  flush=True)
        run(config)
    return write_summary(out, seeds, base) if is_main else {}


def cli(argv: list[str] | None = None) -> int:
    """``python -m train.repeat`` / ``fastnst-repeat``: expected errors as one line, exit 2 (diverged: 3)."""
    return run_cli(main, argv, prog=program_name("train.repeat"))


if __name__ == "__main__":
    sys.exit(cli())
