"""The training loop of the authors' recipe: SGD Nesterov, cosine warm restarts, SWA, gradient clipping,
label smoothing, input / feature noise, Mixup / CutMix, AMP, DDP, resume.

    result = fit(config, model, train_loader, out_dir="runs/x", dist_info=setup(), stylizer=meter)

Reads top to bottom: schedule, noise and mixing, state capture / restore (checkpoints), one epoch, the run.
Sources are github.com/Georgsiedel/model-based-data-augmentation at 07e47c1, ``experiments/train.py``.

Learning-rate schedule, per epoch as the authors step it (``train.py:314-315, 379-387``):
``CosineAnnealingWarmRestarts(T_0=lr_cycle_epochs, T_mult=lr_cycle_mult)`` (eta_min 0) is stepped after
every epoch until SWA starts: with 40 and 2 the cycles are 40, 80, 160, 320 epochs, restarting at epochs 40,
120 and 280. From the first epoch e with ``e + 1 > swa_start * epochs`` (540 of 600) the weights are averaged
(``AveragedModel``) after each epoch and ``SWALR(swa_lr=lr * swa_lr_factor, anneal_epochs=5, "linear")`` is
stepped instead (``train.py:320-323``): it moves the learning rate linearly from wherever the cosine left it
(0.0084 at epoch 540) to the SWA value (0.02) in 5 epochs and holds it there. So the rate *rises* during SWA,
as in the authors' runs. At the end the averaged model's BatchNorm statistics are recomputed with
``update_bn`` over the augmented training loader, in float32 and without noise, as ``train.py:402-408`` does.

Each step (``train.py:177-201``): forward and loss under autocast, ``GradScaler`` (fp16 only), unscale, clip
the gradients' global norm to ``grad_clip_norm`` (1.0), optimizer step. Noise and mixing per batch follow
``ct_model.py:98-166``: with ``manifold_noise`` a site k ~ U{0, 1, 2} is drawn; k = 0 mixes (if on) and adds
the input p-norm noise (``train.noise.PnormNoise``) to the input, k = 1 or 2 mixes and adds the feature noise
(``train.noise.FeatureNoise``) to the output of layer k. Without ``manifold_noise`` k is always 0.

Exact resume: a checkpoint (``TrainState``) is written after every epoch and holds the model, optimizer,
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

from fastnst.cli import UserError
from fastnst import distributed
from fastnst.stylizer_meter import DeviceTimer, StylizerMeter
from fastnst.train.checkpoint import load_checkpoint, save_atomic
from fastnst.train.config import ConfigError
from fastnst.train.data.stats import normalization
from fastnst.distributed import DistInfo
from fastnst.train.metrics_log import MetricsLog
from fastnst.train.mixup import MixupCutmix
from fastnst.train.noise import FeatureNoise, PnormNoise
from fastnst.train.step_settings import StepSettings, autocast_dtype

CHECKPOINT_NAME = "checkpoint.pt"
# Options that must match between a checkpoint and the run resuming it.
RESUME_MUST_MATCH = ("dataset", "model", "epochs", "batch_size", "lr", "swa", "swa_start", "swa_lr_factor", "seed",
                     "lr_cycle_epochs", "lr_cycle_mult", "swa_anneal_epochs", "image_size", "class_names",
                     "amp")  # amp: an fp16 GradScaler cannot continue from a bf16 run's empty scaler state


class TrainingDiverged(UserError, RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is left as it was. Exit status 3."""

    exit_code = 3


@dataclass
class FitResult:
    model: nn.Module                  # the trained classifier (unwrapped)
    swa_model: nn.Module | None       # the averaged classifier, BN statistics recomputed
    checkpoint: Path
    history: list[dict] = field(default_factory=list)  # per-epoch metrics of this process's epochs
    final: dict = field(default_factory=dict)          # last epoch's metrics plus final accuracies


# ----------------------------------------------------------------------------- schedule

def swa_start_epoch(config: dict) -> int:
    """First epoch (0-based) whose end weights are averaged; ``epochs`` when SWA is off.

    The authors' test, literally: ``(epoch + 1) > epochs * start_factor`` (``train.py:322, 379``), so 540 of 600.
    """
    epochs = config["epochs"]
    if not config["swa"]:
        return epochs
    threshold = epochs * config["swa_start"]
    return next((epoch for epoch in range(epochs) if epoch + 1 > threshold), epochs)


def make_optimizer(model: nn.Module, config: dict) -> torch.optim.SGD:
    return torch.optim.SGD(
        model.parameters(),
        lr=config["lr"],
        momentum=config["momentum"],
        nesterov=config["nesterov"],
        weight_decay=config["weight_decay"],
    )


def make_schedulers(optimizer, config: dict):
    """(CosineAnnealingWarmRestarts, SWALR or None), both stepped once per epoch (see ``step_schedulers``).

    Built in the authors' order (``train.py:314-323``): SWALR's constructor leaves the rate at ``lr``.
    """
    cosine = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(
        optimizer, T_0=config["lr_cycle_epochs"], T_mult=config["lr_cycle_mult"])
    swa_scheduler = None
    if config["swa"]:
        swa_scheduler = SWALR(optimizer, swa_lr=config["lr"] * config["swa_lr_factor"],
                              anneal_epochs=config["swa_anneal_epochs"], anneal_strategy="linear")
    return cosine, swa_scheduler


def step_schedulers(epoch: int, first_swa_epoch: int, cosine, swa_scheduler) -> None:
    """After training epoch ``epoch``: SWALR in the SWA phase, else the cosine (``train.py:379-387``)."""
    if swa_scheduler is not None and epoch >= first_swa_epoch:
        swa_scheduler.step()
    else:
        cosine.step()


def lr_per_epoch(config: dict) -> list[float]:
    """The learning rate of every epoch of ``config``, from the very schedulers ``fit`` steps (no training)."""
    optimizer = make_optimizer(nn.Linear(1, 1), config)
    cosine, swa_scheduler = make_schedulers(optimizer, config)
    first_swa_epoch = swa_start_epoch(config)
    rates = []
    for epoch in range(config["epochs"]):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()  # no gradients: a no-op that keeps the schedulers' order check quiet
        step_schedulers(epoch, first_swa_epoch, cosine, swa_scheduler)
    return rates


# ----------------------------------------------------------------------------- noise and mixing

class Perturbation:
    """Per-batch noise and mixing of the authors' ``CtModel.forward_noise_mixup`` (``ct_model.py:98-166``).

    ``perturbation(model, images, labels, is_synthetic) -> (images, targets, forward_kwargs)``: ``targets``
    are the labels, or mixed probabilities when the batch was mixed; ``forward_kwargs`` carry the feature
    hook (``perturb_stage``, ``perturb``) for the model's forward.
    """

    def __init__(self, input_noise: PnormNoise | None, feature_noise: FeatureNoise | None,
                 mixing: MixupCutmix | None):
        self.input_noise, self.feature_noise, self.mixing = input_noise, feature_noise, mixing

    @classmethod
    def from_config(cls, config: dict) -> "Perturbation | None":
        mean, std = normalization(config["dataset"])
        input_noise = None
        if config["input_noise"]:
            input_noise = PnormNoise(config["input_noise"], mean, std, group_size=config["noise_group_size"],
                                     sparsity=config["noise_sparsity"], patch_scale=config["noise_patch_scale"])
        feature_noise = FeatureNoise() if config["manifold_noise"] else None
        mixing = MixupCutmix(config["num_classes"], config["mixup_alpha"], config["mixup_p"], config["cutmix_alpha"],
                             config["cutmix_p"])
        mixing = mixing if mixing.enabled else None
        if input_noise is None and feature_noise is None and mixing is None:
            return None
        return cls(input_noise, feature_noise, mixing)

    def draw_site(self) -> int:
        """k ~ U{0, 1, 2} per batch with feature noise on, else 0 (``ct_model.py:98-103``); a host draw."""
        return int(torch.randint(3, ()).item()) if self.feature_noise is not None else 0

    def __call__(self, model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
                 is_synthetic: torch.Tensor | None):
        site = self.draw_site()
        batch, _, height, width = images.shape
        if site == 0:  # mix, then input noise (ct_model.py:115-122)
            draw = self.mixing.draw(batch, height, width, is_synthetic, images.device) if self.mixing else None
            images = MixupCutmix.apply(images, draw)
            if self.input_noise is not None:
                images = self.input_noise(images)
            return images, self.mixing.targets(labels, draw) if self.mixing else labels, {}
        size = model.stage_output_size(site, height)  # mix and noise the output of layer k (ct_model.py:145-166)
        draw = self.mixing.draw(batch, size, size, is_synthetic, images.device) if self.mixing else None
        feature_noise = self.feature_noise

        def perturb(features: torch.Tensor) -> torch.Tensor:
            return feature_noise(MixupCutmix.apply(features, draw))

        targets = self.mixing.targets(labels, draw) if self.mixing else labels
        return images, targets, {"perturb_stage": site, "perturb": perturb}


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


def check_resume(checkpoint_config: dict, config: dict, path: str | os.PathLike) -> None:
    """A checkpoint continues only a run with its options (``RESUME_MUST_MATCH``); else a ConfigError naming them."""
    changed = [key for key in RESUME_MUST_MATCH if checkpoint_config.get(key) != config.get(key)]
    if changed:
        details = ", ".join(f"{key}: {checkpoint_config.get(key)!r} in the checkpoint, {config.get(key)!r} now"
                            for key in changed)
        raise ConfigError(f"cannot --resume from {path}: the run's options differ ({details})")


class TrainState:
    """What a checkpoint holds and an exact resume restores (the module's "Exact resume")."""

    def __init__(self, config: dict, model: nn.Module, dist_info: DistInfo):
        self.config, self.model, self.dist_info = config, model, dist_info
        self.optimizer = make_optimizer(model, config)
        self.cosine, self.swa_scheduler = make_schedulers(self.optimizer, config)
        self.swa_model = AveragedModel(model) if config["swa"] else None
        fp16 = autocast_dtype(config["amp"], dist_info.device) == torch.float16
        self.scaler = torch.amp.GradScaler(dist_info.device.type, enabled=fp16)
        self.epoch = 0          # epochs done
        self.finished = False   # the SWA model's BatchNorm statistics recomputed: nothing left to do

    def state_dict(self) -> dict:
        """The checkpoint; a collective under DDP (every rank's RNG states are gathered)."""
        swa_model = self.swa_model
        return {
            "config": self.config,
            "model": self.model.state_dict(),
            # The evaluator's "swa_model": only meaningful once BN statistics are recomputed.
            "swa_model": swa_model.module.state_dict() if (swa_model is not None and self.finished) else None,
            "swa_averaged": swa_model.state_dict() if swa_model is not None else None,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.cosine.state_dict(),
            "swa_scheduler": self.swa_scheduler.state_dict() if self.swa_scheduler is not None else None,
            "scaler": self.scaler.state_dict(),
            "epoch": self.epoch,
            "finished": self.finished,
            "world_size": self.dist_info.world_size,
            "rng": distributed.all_gather_objects(capture_rng(self.dist_info.device), self.dist_info),
        }

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.cosine.load_state_dict(state["scheduler"])
        if self.swa_model is not None:
            self.swa_model.load_state_dict(state["swa_averaged"])
            self.swa_scheduler.load_state_dict(state["swa_scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.epoch, self.finished = state["epoch"], state.get("finished", False)
        if state["world_size"] == self.dist_info.world_size:
            restore_rng(state["rng"][self.dist_info.rank], self.dist_info.device)
        else:  # a different number of ranks cannot replay the same streams: continue reproducibly instead
            seed_everything(self.config["seed"] + 1000 * self.epoch + self.dist_info.rank)

    def resume(self, path: str | os.PathLike) -> None:
        """Continue from the checkpoint ``path``, whose options must match this run's (``RESUME_MUST_MATCH``)."""
        # CPU first: RNG states must stay CPU byte tensors; load_state_dict moves the rest to its device.
        state = load_checkpoint(path, map_location="cpu")
        check_resume(state["config"], self.config, path)
        self.load_state_dict(state)

    def save(self, path: Path) -> None:
        """Write the checkpoint atomically on rank 0; every rank calls it."""
        state = self.state_dict()
        if self.dist_info.is_main:
            save_atomic(state, path)
        distributed.barrier(self.dist_info)


# ----------------------------------------------------------------------------- one epoch

def _timed(batches, timer: DeviceTimer):
    """``batches``, with the host time spent inside each ``next()`` summed in ``timer``."""
    iterator = iter(batches)
    while True:
        with timer.span(torch.device("cpu")):
            batch = next(iterator, None)
        if batch is None:
            return
        yield batch


def _train_one_epoch(
    model, forward_model, optimizer, scaler, criterion, loader, *, epoch, perturbation, grad_clip_norm, amp_dtype,
    dist_info, log_every, show_progress, checkpoint_path,
):
    """Train for one epoch; returns on-device sums (loss, correct, samples) and the timers of the wait for data
    (host time inside the loader's ``next()``) and of the steps (CUDA events: no host wait). Raises TrainingDiverged.

    ``loader`` yields ``(images, labels)`` or ``(images, labels, is_synthetic)``; the flags (host bool)
    keep Mixup / CutMix partners within one source.
    """
    device = dist_info.device
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    samples = 0
    nonfinite = torch.zeros((), dtype=torch.bool, device=device)
    bar = tqdm(loader, desc=f"epoch {epoch + 1}", leave=False, disable=not show_progress, dynamic_ncols=True)
    data_wait, step_time = DeviceTimer(), DeviceTimer()
    for step, batch in enumerate(_timed(bar, data_wait)):
        with step_time.span(device):
            images, labels = batch[0], batch[1]
            targets, forward_kwargs = labels, {}
            if perturbation is not None:
                images, targets, forward_kwargs = perturbation(model, images, labels,
                                                               batch[2] if len(batch) > 2 else None)
            with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                logits = forward_model(images, **forward_kwargs)
                loss = criterion(logits, targets)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if grad_clip_norm is not None:
                scaler.unscale_(optimizer)  # clip the true gradients, not the loss-scaled ones (train.py:196-198)
                torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=grad_clip_norm)
            scaler.step(optimizer)
            scaler.update()
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
    return loss_sum, correct, samples, data_wait, step_time


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
    projection=None,
) -> FitResult:
    """Train ``model`` (unwrapped, freshly built) on ``train_loader`` as ``config`` says.

    ``train_loader``: ``len()`` steps per epoch, ``set_epoch(epoch)``, yields ``(images, labels)``
    already normalized, on the device, or ``(images, labels, is_synthetic)`` with host flags (needed for
    Mixup / CutMix on mixed real + synthetic batches). ``stylizer``: the StylizerMeter given to the loader, for
    its per-epoch seconds (None: no stylization). ``evaluate_clean(model) -> accuracy`` is called
    on rank 0 every ``eval_every`` epochs and at the end. ``resume_from``: a checkpoint path.
    ``projection``: a ``train.projection.ProjectedTime`` that reports the run's projected time.
    """
    device = dist_info.device
    out_dir = Path(out_dir)
    checkpoint_path = out_dir / CHECKPOINT_NAME
    epochs, steps_per_epoch = config["epochs"], len(train_loader)
    if steps_per_epoch == 0:
        raise ConfigError("the training loader yields no batch: is the data set smaller than --batch-size?")
    log = log or MetricsLog(out_dir, enabled=dist_info.is_main)
    show_progress = show_progress and dist_info.is_main

    # cuDNN's autotuner on CUDA: the shapes repeat every step (fixed batch size; the Stylizer pads its
    # subsets to 16-row buckets), so the tuning is paid a few times per run; compile, amp, memory format.
    settings = StepSettings.resolve(config, device)
    model = settings.prepare(model, device)
    state = TrainState(config, model, dist_info)
    optimizer, swa_model = state.optimizer, state.swa_model
    perturbation = Perturbation.from_config(config)
    amp_dtype = settings.amp_dtype
    criterion = nn.CrossEntropyLoss(label_smoothing=config["label_smoothing"])
    first_swa_epoch = swa_start_epoch(config)

    if resume_from is not None:
        state.resume(resume_from)
        if dist_info.is_main:
            print(f"resumed from {resume_from}: {state.epoch} of {epochs} epochs done")
    else:
        seed_everything(config["seed"] + dist_info.rank)
    start_epoch = state.epoch

    forward_model = model
    if dist_info.enabled:
        forward_model = DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)
    forward_model = settings.forward(forward_model)

    epoch_loader = train_loader
    if projection is not None:  # times the first steps, then says how long the rest will take
        epoch_loader = projection.watch(train_loader, steps_left=(epochs - start_epoch) * steps_per_epoch)

    history: list[dict] = []
    try:
        for epoch in range(start_epoch, epochs):
            train_loader.set_epoch(epoch)
            if stylizer is not None:
                stylizer.set_epoch(epoch)
            model.train()
            started = time.perf_counter()
            epoch_lr = optimizer.param_groups[0]["lr"]
            sums = _train_one_epoch(
                model, forward_model, optimizer, state.scaler, criterion, epoch_loader,
                epoch=epoch, perturbation=perturbation, grad_clip_norm=config["grad_clip_norm"], amp_dtype=amp_dtype,
                dist_info=dist_info, log_every=config["log_every"], show_progress=show_progress,
                checkpoint_path=checkpoint_path,
            )
            if swa_model is not None and epoch >= first_swa_epoch:
                swa_model.update_parameters(model)
            step_schedulers(epoch, first_swa_epoch, state.cosine, state.swa_scheduler)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            metrics = _epoch_metrics(epoch, epoch_lr, sums, stylizer, time.perf_counter() - started, dist_info)
            if evaluate_clean is not None and dist_info.is_main and (
                epoch + 1 == epochs or (config["eval_every"] > 0 and (epoch + 1) % config["eval_every"] == 0)
            ):
                metrics["test_acc"] = float(evaluate_clean(model))
            state.epoch = epoch + 1
            state.save(checkpoint_path)
            log.log_epoch(metrics)
            history.append(metrics)

        if not state.finished:
            if swa_model is not None:
                _recompute_swa_batchnorm(swa_model, train_loader, stylizer, epochs, dist_info, show_progress)
            state.finished = True
            state.save(checkpoint_path)
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


def _epoch_metrics(epoch, lr, sums, stylizer, epoch_seconds, dist_info) -> dict:
    """The epoch's row of the table: sums over ranks, throughput over the epoch's wall time; the seconds spent
    waiting for data, stylizing (on the loader's stream: it overlaps the steps on a GPU) and in the steps."""
    loss_sum, correct, samples, data_wait, step_time = sums
    stylize_seconds, num_stylized = stylizer.totals() if stylizer is not None else (0.0, 0)
    totals = torch.tensor([loss_sum.item(), float(correct.item()), float(samples), stylize_seconds, float(num_stylized),
                           data_wait.seconds(), step_time.seconds()], dtype=torch.float64, device=dist_info.device)
    loss_total, correct_total, samples_total, stylize_seconds, num_stylized, data_wait_seconds, step_seconds = \
        distributed.all_reduce_sum(totals, dist_info).tolist()
    return {
        "epoch": epoch + 1,
        "lr": lr,  # the rate this epoch trained with
        "train_loss": loss_total / samples_total,
        "train_acc": correct_total / samples_total,
        "test_acc": None,
        "images_per_second": samples_total / epoch_seconds,
        "stylize_seconds": stylize_seconds / dist_info.world_size,  # ranks stylize in parallel
        "num_stylized": int(num_stylized),
        "data_wait_seconds": data_wait_seconds / dist_info.world_size,
        "step_seconds": step_seconds / dist_info.world_size,
        "epoch_seconds": epoch_seconds,
    }


def _recompute_swa_batchnorm(swa_model, train_loader, stylizer, epochs, dist_info, show_progress) -> None:
    """Averaged weights need their own BatchNorm statistics: one pass over the (augmented) training data.

    As the authors' ``update_bn`` call (``train.py:407``): train mode (dropout on), float32, no noise, no mixing.
    """
    train_loader.set_epoch(epochs)  # an epoch index of its own: reproducible, distinct from training
    if stylizer is not None:
        stylizer.set_epoch(epochs)
    bar = tqdm(train_loader, desc="SWA BatchNorm statistics", leave=False, disable=not show_progress)
    update_bn(bar, swa_model)
    distributed.average_buffers(swa_model, dist_info)  # each rank saw its own shard
