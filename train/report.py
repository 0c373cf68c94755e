"""Write an evaluation (train.evaluate) to disk: results.json, report.md, and two figures.

- ``results.json``: everything train.evaluate returns, including the authors' scores
  (``scores``) and the source of every set (``meta.sources``);
- ``report.md``: the scores per model with their source (a score over official and generated
  sets is marked MIXED, with its mean over the official sets beside it), the accuracy under the authors'
  Lp-noise test set and the calibration errors (RMSCE, RMSCE_C), then the accuracy per corruption and
  severity with each set's source and calibration error;
- ``corruption_accuracy.png``: mean accuracy per corruption (over severities 1..5), one bar
  per evaluated model, baseline bars beside them when there is a baseline;
- ``examples.png``: one test image clean and at severities 1..5 of each -C corruption;
- in report.md, with ``stylization``: train.run's figure of its Stylizer on training samples.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch

from fastnst.train.corruptions import ALL_CORRUPTIONS, SEVERITIES


def _as_report(results: dict) -> dict:
    """Accept evaluate_checkpoint()'s report or evaluate()'s single-model result."""
    if "results" in results:
        return results
    return {"meta": results.get("meta", {}), "results": {"model": {k: v for k, v in results.items() if k != "meta"}}}


def _source_lines(meta: dict) -> list[str]:
    from fastnst.train.evaluate import source_lines

    if "sources" not in meta:  # a result written before sets had their own source
        meta = {**meta, "sources": {}}
    lines = ["Corruptions:"] + [f"- {line}" for line in source_lines(meta)]
    if meta.get("source") == "generated" and len(lines) == 1:
        lines.append("- GENERATED from the clean test set by train.corruptions (not the official files)")
    if "procedural" in str(meta.get("frost", "")):
        lines.append("- frost uses a procedural stand-in texture (procedural stand-in), so Frost and every score that "
                     "includes it are not comparable to published numbers")
    if meta.get("source") == "mixed":
        lines.append("- **Official and generated sets are mixed**: each score says which it averages; a MIXED "
                     "score also gives its mean over the official sets alone.")
    return lines


def _value(value) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def _score_cell(score: dict | None) -> str:
    if score is None or score["corruptions"] == 0:
        return "n/a"
    if score["value"] is None:
        return f"not computed ({len(score['missing'])} sets missing)"
    if score["source"] == "mixed":
        return f"{score['value']:.2f} MIXED (official only: {_value(score['official_only'])})"
    return f"{score['value']:.2f} ({score['source']})"


def markdown(report: dict, baseline: dict | None) -> str:
    from fastnst.train.evaluate import calibration_text, subset_note

    meta = report["meta"]
    first = next(iter(report["results"].values()))
    score_names = list(first.get("scores", {}))
    lines = [f"# Corruption robustness: {meta.get('dataset', '?')}", ""] + _source_lines(meta) + [
        "", f"{meta.get('num_images', '?')} test images per set; accuracies in percent. Scores as the paper's authors "
        "report them (experiments/eval_corruptions.py:78-86): the mean over their corruptions of the accuracy over "
        "severities 1-5; mean corruption accuracy = the mean over the evaluated sets of the 15 benchmark corruptions. "
        "Lp noise: their 50 test conditions (Combined_Noise); RMSCE: their calibration error, l1 (their code at "
        "HEAD), l2 in brackets; RMSCE_C: its mean over the evaluated corruptions.", ""]
    header = (f"| model | clean{subset_note(meta)} | mean corruption accuracy |"
              + "".join(f" {name} |" for name in score_names) + " Lp noise | RMSCE | RMSCE_C |")
    rule = "| --- | --- | --- |" + " --- |" * (len(score_names) + 3)
    if "relative" in report:
        header += " clean vs baseline (pp) | corruption vs baseline (pp) | relative mCE |"
        rule += " --- | --- | --- |"
    lines += [header, rule]
    num_sets = first.get("num_sets", 75)
    if num_sets != 75:
        lines[-2:-2] = [f"**Only {num_sets} of the 75 benchmark corruption sets were evaluated: the mean is not the benchmark's.**", ""]
    for name, result in report["results"].items():
        row = (f"| {name} | {result['clean_accuracy']:.2f} | {_value(result['mean_corruption_accuracy'])} |"
               + "".join(f" {_score_cell(result['scores'][n])} |" for n in score_names)
               + f" {_value(result.get('lp_noise_accuracy'))} | {calibration_text(result.get('calibration_error'))} |"
               f" {calibration_text(result.get('mean_corruption_calibration_error'))} |")
        if "relative" in report:
            relative = report["relative"][name]
            row += (f" {relative['clean_accuracy_delta']:+.2f} | {_value(relative['mean_corruption_accuracy_delta'])} |"
                    f" {_value(relative['mean_corruption_error'])} |")
        lines.append(row)
    for name, result in (baseline or {}).items():
        lines.append(f"| baseline {name} | {result['clean_accuracy']:.2f} | {_value(result['mean_corruption_accuracy'])} |"
                     + "".join(f" {_score_cell(result.get('scores', {}).get(n))} |" for n in score_names)
                     + f" {_value(result.get('lp_noise_accuracy'))} | {calibration_text(result.get('calibration_error'))} |"
                     f" {calibration_text(result.get('mean_corruption_calibration_error'))} |"
                     + (" | | |" if "relative" in report else ""))
    sources = meta.get("sources", {})
    for name, result in report["results"].items():
        lines += ["", f"## {name}: accuracy per corruption and severity", "",
                  "| corruption | source | " + " | ".join(f"s{s}" for s in SEVERITIES) + " | mean | RMSCE |",
                  "| --- | --- |" + " --- |" * (len(SEVERITIES) + 2)]
        calibration = result.get("corruption_calibration_error", {})
        for corruption, values in result["accuracy"].items():
            lines.append(f"| {corruption} | {sources.get(corruption, meta.get('source', '?'))} | "
                         + " | ".join(f"{v:.2f}" for v in values) + f" | {result['corruption_mean'][corruption]:.2f} |"
                         f" {calibration_text(calibration.get(corruption))} |")
        lines.append("| **mean of the 15** | | " + " | ".join(_value(v) for v in result["severity_mean"])
                     + f" | **{_value(result['mean_corruption_accuracy'])}** | |")
    return "\n".join(lines) + "\n"


def plot_corruption_bars(report: dict, baseline: dict | None, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = {name: r for name, r in report["results"].items()}
    series.update({f"baseline {name}": r for name, r in (baseline or {}).items()})
    names = list(next(iter(series.values()))["corruption_mean"])
    positions = np.arange(len(names) + 1)
    width = 0.8 / len(series)
    figure, axes = plt.subplots(figsize=(max(12, 0.5 * len(positions)), 4.5))
    for index, (label, result) in enumerate(series.items()):
        values = [result["corruption_mean"].get(c, np.nan) for c in names] + [result["mean_corruption_accuracy"] or np.nan]
        hatch = "//" if label.startswith("baseline") else None
        axes.bar(positions + (index - (len(series) - 1) / 2) * width, values, width, label=label, hatch=hatch)
    sources = report["meta"].get("sources", {})
    labels = [c.replace("_", " ") + (" (gen.)" if sources.get(c) == "generated" and report["meta"].get("source") == "mixed" else "")
              for c in names]
    axes.set_xticks(positions, labels + ["MEAN of 15"], rotation=40, ha="right")
    axes.set_ylabel("accuracy (%), mean over severities")
    axes.set_ylim(0, 100)
    axes.grid(axis="y", alpha=0.3)
    axes.legend()
    meta = report["meta"]
    from fastnst.train.evaluate import subset_note

    axes.set_title(f"{meta.get('dataset', '')}-C ({meta.get('source', '')}), clean accuracy{subset_note(meta)} "
                   + ", ".join(f"{n} {r['clean_accuracy']:.1f}%" for n, r in series.items()))
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def plot_examples(examples: torch.Tensor, path: Path, names=None) -> None:
    """examples: uint8 (corruptions, 1 + severities, 3, H, W); names default to the -C corruptions in order."""
    names = ALL_CORRUPTIONS[: examples.shape[0]] if names is None else names
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows, columns = examples.shape[:2]
    figure, axes = plt.subplots(rows, columns, figsize=(1.3 * columns + 1.2, 1.3 * rows))
    axes = np.atleast_2d(axes)
    for row in range(rows):
        for column in range(columns):
            axis = axes[row, column]
            axis.imshow(examples[row, column].permute(1, 2, 0).cpu().numpy(), interpolation="nearest")
            axis.set_xticks([])
            axis.set_yticks([])
            if row == 0:
                axis.set_title("clean" if column == 0 else f"severity {column}", fontsize=8)
            if column == 0:
                axis.set_ylabel(names[row].replace("_", "\n"), fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def write_report(results: dict, out_dir: str | os.PathLike, baseline: dict | None = None, *,
                 examples: torch.Tensor | None = None, stylization: Path | None = None) -> dict[str, Path]:
    """results: train.evaluate's report (or a single evaluate() result); baseline: a baseline's
    per-model results (default: the one inside ``results``); stylization: the run's figure of its
    Stylizer (train.stylization_figure), shown in report.md. Returns the written paths by kind."""
    report = _as_report(results)
    if baseline is not None:
        baseline = _as_report(baseline)["results"]
    else:
        baseline = report.get("baseline")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = {"json": out_dir / "results.json", "markdown": out_dir / "report.md", "bars": out_dir / "corruption_accuracy.png"}
    written["json"].write_text(json.dumps({**report, **({"baseline": baseline} if baseline else {})}, indent=1, default=str))
    text = markdown(report, baseline)
    if stylization is not None:
        written["stylization"] = Path(stylization)
        text += ("\n## The stylization\n\nA few training samples before and after this run's Stylizer, with each "
                 f"one's alpha and style:\n\n![the Stylizer on training samples]({os.path.relpath(stylization, out_dir)})\n")
    written["markdown"].write_text(text)
    plot_corruption_bars(report, baseline, written["bars"])
    if examples is not None:
        written["examples"] = out_dir / "examples.png"
        plot_examples(examples, written["examples"])
    return written
