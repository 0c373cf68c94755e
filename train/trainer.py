"""The training loop: SGD Nesterov, per-step cosine annealing, SWA, label smoothing, AMP, DDP, resume.

    result = fit(config, model, train_loader, out_dir="runs/x", dist_info=setup(), stylizer=meter)

Reads top to bottom: schedule, state capture / restore (checkpoints), one epoch, the whole run.

Learning-rate schedule, per step: cosine from ``lr`` down to the SWA learning rate
(``lr * swa_lr_factor``) over the epochs before SWA starts, then held there by
``torch.optim.swa_utils.SWALR`` while ``AveragedModel`` averages the weights once per epoch
(Izmailov et al. 2018's schedule with cosine in place of the linear decay). Without SWA: cosine
from ``lr`` to 0 over the whole run. At the end the averaged model's BatchNorm statistics are
recomputed with ``update_bn`` over the (augmented) training loader, as SWA requires.

Exact resume: a checkpoint is written after every epoch and holds the model, optimizer,
schedulers, SWA state, GradScaler, the number of finished epochs and every rank's python /
numpy / torch / CUDA RNG states. The data pipeline and the Stylizer are deterministic functions
of (seed, epoch) through ``set_epoch``, so a run killed mid-epoch and resumed redoes that epoch
from the same state and ends with the same weights (bit-exact on CPU with the same thread count;
on GPU up to cuDNN's non-deterministic kernels).
"""
from __future__ import annotations

import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.optim.swa_utils import SWALR, AveragedModel, update_bn
from tqdm import tqdm

from fastnst.train import distributed
from fastnst.train.checkpoint import load_checkpoint, save_atomic
from fastnst.train.config import ConfigError
from fastnst.train.distributed import DistInfo
from fastnst.train.metrics_log import MetricsLog

CHECKPOINT_NAME = "checkpoint.pt"
# Options that must match between a checkpoint and the run resuming it.
RESUME_MUST_MATCH = ("dataset", "model", "epochs", "batch_size", "lr", "swa", "swa_start", "swa_lr_factor", "seed",
                     "amp")  # amp: an fp16 GradScaler cannot continue from a bf16 run's empty scaler state


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is left as it was."""


class StylizerMeter:
    """Wraps a Stylizer handed to the data loader; sums its ``last_stats`` per epoch.

    The loader calls the stylizer inside its pipeline, so the trainer never sees the calls; this
    wrapper counts them so that every epoch reports the time spent in style transfer. A call's
    stats are read when the next call starts: on CUDA, reading them waits for that call's end
    event, which by then has long passed, so the GPU stream never drains for the bookkeeping.
    """

    def __init__(self, stylizer):
        self.stylizer = stylizer
        self._seconds = 0.0
        self._num_stylized = 0
        self._pending = False

    def __call__(self, images: torch.Tensor, is_synthetic: torch.Tensor) -> torch.Tensor:
        self._collect()
        out = self.stylizer(images, is_synthetic)
        self._pending = True
        return out

    def _collect(self) -> None:
        if self._pending:
            stats = self.stylizer.last_stats or {}
            self._seconds += float(stats.get("seconds") or 0.0)
            self._num_stylized += int(stats.get("num_stylized", 0))
            self._pending = False

    def totals(self) -> tuple[float, int]:
        """(seconds spent stylizing, images stylized) since the last ``set_epoch``."""
        self._collect()
        return self._seconds, self._num_stylized

    def set_epoch(self, epoch: int) -> None:
        self._collect()
        self._seconds, self._num_stylized = 0.0, 0
        self.stylizer.set_epoch(epoch)


@dataclass
class FitResult:
    model: nn.Module                  # the trained classifier (unwrapped)
    swa_model: nn.Module | None       # the averaged classifier, BN statistics recomputed
    checkpoint: Path
    history: list[dict] = field(default_factory=list)  # per-epoch metrics of this process's epochs
    final: dict = field(default_factory=dict)          # last epoch's metrics plus final accuracies


# ----------------------------------------------------------------------------- schedule

def swa_start_epoch(config: dict) -> int:
    """First epoch (0-based) whose end weights are averaged; ``epochs`` when SWA is off."""
    epochs = config["epochs"]
    if not config["swa"]:
        return epochs
    return min(epochs - 1, max(1, round(config["swa_start"] * epochs))) if epochs > 1 else 0


def make_optimizer(model: nn.Module, config: dict) -> torch.optim.SGD:
    return torch.optim.SGD(
        model.parameters(),
        lr=config["lr"],
        momentum=config["momentum"],
        nesterov=config["nesterov"],
        weight_decay=config["weight_decay"],
    )


def make_schedulers(optimizer, config: dict, steps_per_epoch: int):
    """(per-step cosine scheduler, per-epoch SWALR or None)."""
    swa_lr = config["lr"] * config["swa_lr_factor"] if config["swa"] else 0.0
    cosine_steps = max(1, swa_start_epoch(config) * steps_per_epoch)
    cosine = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=cosine_steps, eta_min=swa_lr)
    swa_scheduler = SWALR(optimizer, swa_lr=swa_lr, anneal_epochs=1, anneal_strategy="cos") if config["swa"] else None
    return cosine, swa_scheduler


def autocast_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    if amp == "auto":
        return torch.bfloat16 if device.type == "cuda" else None
    return {"bf16": torch.bfloat16, "fp16": torch.float16, "none": None}[amp]


@torch.no_grad()
def clean_accuracy(model: nn.Module, eval_loader, amp_dtype: torch.dtype | None = None) -> float:
    """Top-1 accuracy of ``model`` over ``eval_loader``'s (images, labels); restores train/eval mode."""
    was_training = model.training
    model.eval()
    correct = total = 0
    for images, labels in eval_loader:
        device_type = images.device.type
        with torch.autocast(device_type, dtype=amp_dtype, enabled=amp_dtype is not None):
            logits = model(images)
        correct += (logits.argmax(dim=1) == labels).sum()
        total += labels.shape[0]
    model.train(was_training)
    return float(correct) / max(1, total)


# ----------------------------------------------------------------------------- RNG and checkpoints

def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def capture_rng(device: torch.device) -> dict:
    """This process's RNG states, as types ``torch.load(weights_only=True)`` accepts."""
    numpy_state = np.random.get_state(legacy=False)
    return {
        "python": random.getstate(),
        "numpy": {
            "key": torch.from_numpy(numpy_state["state"]["key"].astype(np.int64)),
            "pos": int(numpy_state["state"]["pos"]),
            "has_gauss": int(numpy_state["has_gauss"]),
            "gauss": float(numpy_state["gauss"]),
        },
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
    }


def restore_rng(state: dict, device: torch.device) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    numpy_state = state["numpy"]
    np.random.set_state({
        "bit_generator": "MT19937",
        "state": {"key": numpy_state["key"].numpy().astype(np.uint32), "pos": numpy_state["pos"]},
        "has_gauss": numpy_state["has_gauss"],
        "gauss": numpy_state["gauss"],
    })
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and state["cuda"] is not None:
        torch.cuda.set_rng_state(state["cuda"], device)


def _check_resumable(saved: dict, config: dict, path: Path) -> None:
    changed = [key for key in RESUME_MUST_MATCH if saved.get(key) != config.get(key)]
    if changed:
        details = ", ".join(f"{key}: {saved.get(key)!r} in the checkpoint, {config.get(key)!r} now" for key in changed)
        raise ConfigError(f"cannot --resume from {path}: the run's options differ ({details})")


# ----------------------------------------------------------------------------- one epoch

def _train_one_epoch(
    forward_model, optimizer, scaler, cosine, criterion, loader, *, epoch, use_cosine, amp_dtype,
    dist_info, log_every, show_progress, checkpoint_path,
):
    """Train for one epoch; returns on-device sums (loss, correct, samples). Raises TrainingDiverged."""
    device = dist_info.device
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    samples = 0
    nonfinite = torch.zeros((), dtype=torch.bool, device=device)
    bar = tqdm(loader, desc=f"epoch {epoch + 1}", leave=False, disable=not show_progress, dynamic_ncols=True)
    for step, (images, labels) in enumerate(bar):
        with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            logits = forward_model(images)
            loss = criterion(logits, labels)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        if use_cosine:
            cosine.step()
        detached = loss.detach().float()
        nonfinite |= ~torch.isfinite(detached)
        loss_sum += detached.double() * labels.shape[0]
        correct += (logits.detach().argmax(dim=1) == labels).sum()
        samples += labels.shape[0]
        # One host sync every log_every steps: the NaN check and the bar's numbers share it.
        if (step + 1) % log_every == 0 or step + 1 == len(loader):
            # Every rank stops at the same step, or the others would hang in the next all-reduce.
            if distributed.all_reduce_sum(nonfinite.to(torch.int32), dist_info).item() > 0:
                raise TrainingDiverged(
                    f"loss became NaN/inf at epoch {epoch + 1}, step {step + 1} (checked every {log_every} steps); "
                    f"stopping. The last good checkpoint is {checkpoint_path} "
                    f"({'not written yet' if not checkpoint_path.exists() else 'kept as it was'}). "
                    "Lower --lr, or try --amp none, then --resume."
                )
            bar.set_postfix(loss=f"{loss_sum.item() / samples:.4f}", lr=f"{optimizer.param_groups[0]['lr']:.4f}")
    return loss_sum, correct, samples


# ----------------------------------------------------------------------------- the run

def fit(
    config: dict,
    model: nn.Module,
    train_loader,
    *,
    out_dir: str | os.PathLike,
    dist_info: DistInfo = DistInfo(),
    stylizer: StylizerMeter | None = None,
    evaluate_clean=None,
    resume_from: str | os.PathLike | None = None,
    show_progress: bool = True,
    log: MetricsLog | None = None,
) -> FitResult:
    """Train ``model`` (unwrapped, freshly built) on ``train_loader`` as ``config`` says.

    ``train_loader``: ``len()`` steps per epoch, ``set_epoch(epoch)``, yields ``(images, labels)``
    already normalized, on the device. ``stylizer``: the StylizerMeter given to the loader, for
    its per-epoch seconds (None: no stylization). ``evaluate_clean(model) -> accuracy`` is called
    on rank 0 every ``eval_every`` epochs and at the end. ``resume_from``: a checkpoint path.
    """
    device = dist_info.device
    out_dir = Path(out_dir)
    checkpoint_path = out_dir / CHECKPOINT_NAME
    epochs, steps_per_epoch = config["epochs"], len(train_loader)
    if steps_per_epoch == 0:
        raise ValueError("the training loader yields no batch: data set smaller than --batch-size?")
    log = log or MetricsLog(out_dir, enabled=dist_info.is_main)
    show_progress = show_progress and dist_info.is_main

    if device.type == "cuda":
        # Time cuDNN's convolution algorithms once per input shape and keep the fastest: the shapes repeat
        # every step (fixed batch size; the Stylizer pads its subsets to 64-row buckets), so the tuning
        # is paid a few times per run and every later step gets the fastest plan.
        torch.backends.cudnn.benchmark = True
    model = model.to(device, memory_format=torch.channels_last)
    optimizer = make_optimizer(model, config)
    cosine, swa_scheduler = make_schedulers(optimizer, config, steps_per_epoch)
    swa_model = AveragedModel(model) if config["swa"] else None
    amp_dtype = autocast_dtype(config["amp"], device)
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    criterion = nn.CrossEntropyLoss(label_smoothing=config["label_smoothing"])
    first_swa_epoch = swa_start_epoch(config)

    start_epoch, finished = 0, False
    if resume_from is not None:
        # CPU first: RNG states must stay CPU byte tensors; load_state_dict moves the rest to its device.
        state = load_checkpoint(resume_from, map_location="cpu")
        _check_resumable(state["config"], config, Path(resume_from))
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        cosine.load_state_dict(state["scheduler"])
        if swa_model is not None:
            swa_model.load_state_dict(state["swa_averaged"])
            swa_scheduler.load_state_dict(state["swa_scheduler"])
        scaler.load_state_dict(state["scaler"])
        start_epoch, finished = state["epoch"], state.get("finished", False)
        if state["world_size"] == dist_info.world_size:
            restore_rng(state["rng"][dist_info.rank], device)
        else:  # a different number of ranks cannot replay the same streams: continue reproducibly instead
            seed_everything(config["seed"] + 1000 * start_epoch + dist_info.rank)
        if dist_info.is_main:
            print(f"resumed from {resume_from}: {start_epoch} of {epochs} epochs done")
    else:
        seed_everything(config["seed"] + dist_info.rank)

    forward_model = model
    if dist_info.enabled:
        forward_model = DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)
    if config["compile"]:
        forward_model = torch.compile(forward_model)

    history: list[dict] = []
    try:
        for epoch in range(start_epoch, epochs):
            train_loader.set_epoch(epoch)
            if stylizer is not None:
                stylizer.set_epoch(epoch)
            model.train()
            started = time.perf_counter()
            sums = _train_one_epoch(
                forward_model, optimizer, scaler, cosine, criterion, train_loader,
                epoch=epoch, use_cosine=epoch < first_swa_epoch, amp_dtype=amp_dtype, dist_info=dist_info,
                log_every=config["log_every"], show_progress=show_progress, checkpoint_path=checkpoint_path,
            )
            if swa_model is not None and epoch >= first_swa_epoch:
                swa_model.update_parameters(model)
                swa_scheduler.step()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            metrics = _epoch_metrics(epoch, optimizer, sums, stylizer, time.perf_counter() - started, dist_info)
            if evaluate_clean is not None and dist_info.is_main and (
                epoch + 1 == epochs or (config["eval_every"] > 0 and (epoch + 1) % config["eval_every"] == 0)
            ):
                metrics["test_acc"] = float(evaluate_clean(model))
            _save(checkpoint_path, config, model, optimizer, cosine, swa_model, swa_scheduler, scaler,
                  epoch + 1, dist_info, finished=False)
            log.log_epoch(metrics)
            history.append(metrics)

        if swa_model is not None and not finished:
            _recompute_swa_batchnorm(swa_model, train_loader, stylizer, epochs, amp_dtype, dist_info, show_progress)
        if not finished:
            _save(checkpoint_path, config, model, optimizer, cosine, swa_model, swa_scheduler, scaler,
                  epochs, dist_info, finished=True)
    finally:
        log.close()

    final = dict(history[-1]) if history else {}
    if evaluate_clean is not None and dist_info.is_main:
        if final.get("test_acc") is None:
            final["test_acc"] = float(evaluate_clean(model))
        if swa_model is not None:
            final["swa_test_acc"] = float(evaluate_clean(swa_model.module))
    distributed.barrier(dist_info)
    return FitResult(model, swa_model.module if swa_model is not None else None, checkpoint_path, history, final)


def _epoch_metrics(epoch, optimizer, sums, stylizer, epoch_seconds, dist_info) -> dict:
    """The epoch's row of the table: sums over ranks, throughput over the epoch's wall time."""
    loss_sum, correct, samples = sums
    stylize_seconds, num_stylized = stylizer.totals() if stylizer is not None else (0.0, 0)
    totals = torch.tensor([loss_sum.item(), float(correct.item()), float(samples), stylize_seconds, float(num_stylized)],
                          dtype=torch.float64, device=dist_info.device)
    loss_total, correct_total, samples_total, stylize_seconds, num_stylized = \
        distributed.all_reduce_sum(totals, dist_info).tolist()
    return {
        "epoch": epoch + 1,
        "lr": optimizer.param_groups[0]["lr"],
        "train_loss": loss_total / samples_total,
        "train_acc": correct_total / samples_total,
        "test_acc": None,
        "images_per_second": samples_total / epoch_seconds,
        "stylize_seconds": stylize_seconds / dist_info.world_size,  # ranks stylize in parallel
        "num_stylized": int(num_stylized),
        "epoch_seconds": epoch_seconds,
    }


def _recompute_swa_batchnorm(swa_model, train_loader, stylizer, epochs, amp_dtype, dist_info, show_progress) -> None:
    """Averaged weights need their own BatchNorm statistics: one pass over the (augmented) training data."""
    train_loader.set_epoch(epochs)  # an epoch index of its own: reproducible, distinct from training
    if stylizer is not None:
        stylizer.set_epoch(epochs)
    bar = tqdm(train_loader, desc="SWA BatchNorm statistics", leave=False, disable=not show_progress)
    device_type = dist_info.device.type
    with torch.autocast(device_type, dtype=amp_dtype, enabled=amp_dtype is not None):
        update_bn(bar, swa_model)
    distributed.average_buffers(swa_model, dist_info)  # each rank saw its own shard


def _save(path, config, model, optimizer, cosine, swa_model, swa_scheduler, scaler, epochs_done, dist_info, *, finished):
    rng = distributed.all_gather_objects(capture_rng(dist_info.device), dist_info)  # collective: every rank
    if dist_info.is_main:
        save_atomic(
            {
                "config": config,
                "model": model.state_dict(),
                # The evaluator's "swa_model": only meaningful once BN statistics are recomputed.
                "swa_model": swa_model.module.state_dict() if (swa_model is not None and finished) else None,
                "swa_averaged": swa_model.state_dict() if swa_model is not None else None,
                "optimizer": optimizer.state_dict(),
                "scheduler": cosine.state_dict(),
                "swa_scheduler": swa_scheduler.state_dict() if swa_scheduler is not None else None,
                "scaler": scaler.state_dict(),
                "epoch": epochs_done,
                "finished": finished,
                "world_size": dist_info.world_size,
                "rng": rng,
            },
            path,
        )
    distributed.barrier(dist_info)
