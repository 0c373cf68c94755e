"""The DALI training pipeline on CPU: the authors' order (stylize -> flip/crop -> TA -> RE -> normalize),
per-sample TA skipping, the host-drawn randomness, determinism without rebuilds, double buffering, bad data."""
from __future__ import annotations

import logging
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from tests import data_formats
from tests.markers import needs_dali
from fastnst.train.data import BadImageError, create_eval_loader, create_train_loader, normalize
from fastnst.train.data.draws import (
    TA_IDENTITY_OP,
    draw_augmentations,
    draw_erasing,
    step_generator,
)
from fastnst.train.data.prefetch import prefetched
from fastnst.train.data.stats import dataset_info
from fastnst.train.config import Augmentation


# --------------------------------------------------------------------------- references and stand-ins

def crop_flip(image_hwc: np.ndarray, start, flip, padding: int) -> np.ndarray:
    """torchvision RandomCrop(padding, fill 0) at offset ``start`` (top, left), then the mirror."""
    size = image_hwc.shape[0]
    padded = np.pad(image_hwc, ((padding, padding), (padding, padding), (0, 0)))
    top, left = padding + int(start[0]), padding + int(start[1])
    crop = padded[top:top + size, left:left + size]
    return crop[:, ::-1] if flip else crop


def erase(image_hwc: np.ndarray, anchor, shape) -> np.ndarray:
    """RandomErasing(value=0) of the box at ``anchor`` (top, left) of ``shape`` (height, width)."""
    out = image_hwc.copy()
    top, left, height, width = (int(v) for v in (*anchor, *shape))
    out[top:top + height, left:left + width] = 0
    return out


def step_draws(loader, step: int, skip_ta: np.ndarray):
    """The draws the loader makes for ``step`` of its current epoch (the same function, the same generator)."""
    return draw_augmentations(step_generator(loader.seed, loader.epoch, loader.sampler.rank, step), len(skip_ta),
                              loader.info.image_size, padding=loader.crop_padding, skip_trivial_augment=skip_ta,
                              erasing_probability=loader.augmentation.random_erasing_prob,
                              erasing_scale=loader.augmentation.random_erasing_scale)


def as_normalized(images_nhwc: np.ndarray, dataset: str) -> torch.Tensor:
    return normalize(torch.from_numpy(np.ascontiguousarray(images_nhwc)).permute(0, 3, 1, 2), dataset)


class RecordingStylizer:
    """Stands in for fastnst.Stylizer: records its input, optionally replaces pixels, reports ``chosen``."""

    def __init__(self, replace=None, choose=None):
        self.calls, self.outputs, self.replace, self.choose = [], [], replace, choose
        self.source_indices = []

    def __call__(self, images: torch.Tensor, is_synthetic: torch.Tensor, source_index: torch.Tensor):
        self.calls.append((images.clone(), is_synthetic.clone()))
        self.source_indices.append(source_index.clone())
        out = images if self.replace is None else self.replace(images, is_synthetic)
        chosen = torch.zeros_like(is_synthetic) if self.choose is None else self.choose(is_synthetic)
        self.outputs.append((out.clone(), chosen.clone()))
        return out, SimpleNamespace(chosen=chosen)


def paint_synthetic(images, flags):
    """Paint every synthetic image, all of it, one colour: a stand-in for a stylization."""
    colour = torch.tensor([200, 120, 40], dtype=torch.uint8).view(1, 3, 1, 1)
    return torch.where(flags.view(-1, 1, 1, 1), colour.expand_as(images), images)


@pytest.fixture(scope="module")
def cifar_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("cifar")
    train_x, train_y, _, _ = data_formats.write_cifar10(root, per_batch=20, num_test=30)
    synthetic_x, synthetic_y = data_formats.write_synthetic_npz(root / "edm.npz", count=60)
    return root, train_x, train_y, synthetic_x, synthetic_y


def sources_of(plan, train_x, synthetic_x):
    return np.where(plan.is_synthetic[:, None, None, None], synthetic_x[plan.indices % len(synthetic_x)],
                    train_x[plan.indices % len(train_x)])


# --------------------------------------------------------------------------- the order

def test_stylizer_sees_the_raw_uncropped_images_first(cifar_root):
    root, train_x, train_y, synthetic_x, synthetic_y = cifar_root
    stylizer = RecordingStylizer()
    loader = create_train_loader("cifar10", root, 16, synthetic_path=root / "edm.npz", synthetic_ratio=0.5,
                                 stylizer=stylizer, augmentation=Augmentation(random_erasing_prob=1.0), seed=1)
    plans = loader.sampler.epoch(0)
    outputs = list(loader)
    assert len(outputs) == len(loader) == len(plans) == math.ceil(100 / 16)  # the authors' epoch: N samples
    for (received, flags), source_index, plan, (images, labels, is_synthetic) in zip(
            stylizer.calls, stylizer.source_indices, plans, outputs):
        assert is_synthetic.device.type == "cpu" and is_synthetic.tolist() == plan.is_synthetic.tolist()
        assert received.dtype == torch.uint8 and received.shape == (len(plan.indices), 3, 32, 32)
        assert flags.dtype == torch.bool and flags.tolist() == plan.is_synthetic.tolist()
        assert source_index.tolist() == plan.indices.tolist()  # what a CachedStylizer reads its variants by
        # The source pixels themselves: no crop, flip, TrivialAugment or erasing before the Stylizer.
        assert np.array_equal(received.permute(0, 2, 3, 1).numpy(), sources_of(plan, train_x, synthetic_x))
        expected_labels = np.where(plan.is_synthetic, synthetic_y[plan.indices % 60], train_y[plan.indices % 100])
        assert labels.tolist() == expected_labels.tolist()
        assert images.shape == received.shape and images.is_contiguous(memory_format=torch.channels_last)
        # ... and the augmentations after it (erasing with p = 1 changes every sample).
        assert (images - normalize(received, "cifar10")).abs().flatten(1).amax(1).min() > 0.1


@pytest.mark.parametrize("dataset_padding", ["auto", 6])
def test_crop_and_flip_come_after_stylization(cifar_root, dataset_padding):
    """A stylizer that paints whole images: the crop's zero border must not be painted (it was, when
    fastnst cropped before stylizing), and the output is exactly the drawn crop/flip of the painted image."""
    root, train_x, _, synthetic_x, _ = cifar_root
    stylizer = RecordingStylizer(replace=paint_synthetic)
    loader = create_train_loader("cifar10", root, 20, synthetic_path=root / "edm.npz", synthetic_ratio=0.5,
                                 stylizer=stylizer, seed=2, augmentation=Augmentation(
                                     trivial_augment=False, random_erasing_prob=0.0, crop_padding=dataset_padding))
    padding = 4 if dataset_padding == "auto" else dataset_padding  # CIFAR's default, as the authors' RandomCrop
    assert loader.crop_padding == padding
    black_border = 0
    for step, ((images, *_), (stylized, chosen)) in enumerate(zip(loader, stylizer.outputs)):
        draws = step_draws(loader, step, np.zeros(len(images), bool))
        expected = [crop_flip(image, start, flip, padding) for image, start, flip in
                    zip(stylized.permute(0, 2, 3, 1).numpy(), draws.crop_start, draws.flip)]
        torch.testing.assert_close(images, as_normalized(np.stack(expected), "cifar10"), rtol=0, atol=1e-5)
        pixels = images * torch.tensor(dataset_info("cifar10").std).view(1, 3, 1, 1) * 255 + \
            torch.tensor(dataset_info("cifar10").mean).view(1, 3, 1, 1) * 255
        for sample, synthetic, start in zip(pixels.round(), loader.sampler.epoch(0)[step].is_synthetic,
                                            draws.crop_start):
            if synthetic and start[0] > 0:  # shifted down: the bottom rows come from the zero padding
                assert torch.all(sample[:, -start[0]:] == 0) and torch.all(sample[:, 16, 16] == torch.tensor([200., 120, 40]))
                black_border += 1
    assert black_border >= 5


# --------------------------------------------------------------------------- TrivialAugment, per sample

@pytest.mark.parametrize("ta_or_style_real, ta_or_style_synthetic", [(False, True), (True, False)])
def test_trivial_augment_skipped_exactly_for_chosen_samples_of_ta_or_style_sources(
        cifar_root, ta_or_style_real, ta_or_style_synthetic):
    """Chosen samples come back unchanged here (the ~5 % the authors' NSTTransform chose but did not
    stylize): under "TAorStyle" they skip TA all the same; under "TAandStyle" they get it."""
    root, *_ = cifar_root
    choose_every_other = lambda flags: torch.arange(len(flags)) % 2 == 0  # noqa: E731
    stylizer = RecordingStylizer(choose=choose_every_other)
    loader = create_train_loader("cifar10", root, 25, synthetic_path=root / "edm.npz", synthetic_ratio=0.4,
                                 stylizer=stylizer, seed=3, augmentation=Augmentation(
                                     random_erasing_prob=0.0, ta_or_style_real=ta_or_style_real,
                                     ta_or_style_synthetic=ta_or_style_synthetic))
    skipped_same, augmented_changed, augmented = 0, 0, 0
    for step, ((images, *_), (received, _), (_, chosen)) in enumerate(zip(loader, stylizer.calls, stylizer.outputs)):
        flags = loader.sampler.epoch(0)[step].is_synthetic
        skip = chosen.numpy() & np.where(flags, ta_or_style_synthetic, ta_or_style_real)
        draws = step_draws(loader, step, skip)
        plain = as_normalized(np.stack([crop_flip(image, start, flip, 4) for image, start, flip in
                                        zip(received.permute(0, 2, 3, 1).numpy(), draws.crop_start, draws.flip)]),
                              "cifar10")
        same = (images - plain).abs().flatten(1).amax(1) < 1e-5
        skipped_same += int(same[torch.from_numpy(skip)].sum())
        assert torch.all(same[torch.from_numpy(skip)]), "a skipped sample must be the plain crop"
        applied = ~skip & (draws.ta_op != TA_IDENTITY_OP)
        augmented += int(applied.sum())
        augmented_changed += int((~same[torch.from_numpy(applied)]).sum())
    assert skipped_same >= 10  # chosen samples of the TAorStyle source, all with no TA
    assert augmented_changed >= 0.8 * augmented, (augmented_changed, augmented)  # the rest got their TA op


def test_trivial_augment_skip_with_the_real_stylizer(cifar_root):
    """End to end with fastnst.Stylizer: its plan's ``chosen`` (stylized or not, nst_probability 0.5)
    decides which synthetic samples skip TrivialAugment."""
    from bench.stylizers import random_weight_stylizer

    root, *_ = cifar_root
    stylizer = random_weight_stylizer(torch.device("cpu"), num_styles=4, prob_synthetic=0.8, prob_real=0.3,
                                      resolution=None, nst_probability=0.5)
    seen = []

    def recording(images, flags, **options):
        out, plan = stylizer(images, flags, **options)
        seen.append((out.clone(), plan))
        return out, plan

    loader = create_train_loader("cifar10", root, 20, synthetic_path=root / "edm.npz", synthetic_ratio=0.5,
                                 stylizer=recording, seed=4,
                                 augmentation=Augmentation(random_erasing_prob=0.0, ta_or_style_synthetic=True))
    images, *_ = next(iter(loader))
    stylized, plan = seen[0]
    flags = loader.sampler.epoch(0)[0].is_synthetic
    skip = plan.chosen.numpy() & flags
    spared = skip & ~plan.stylized.numpy()
    assert skip.sum() >= 4 and spared.any() and (skip & plan.stylized.numpy()).any()
    draws = step_draws(loader, 0, skip)
    plain = as_normalized(np.stack([crop_flip(image, start, flip, 4) for image, start, flip in
                                    zip(stylized.permute(0, 2, 3, 1).numpy(), draws.crop_start, draws.flip)]),
                          "cifar10")
    torch.testing.assert_close(images[torch.from_numpy(skip)], plain[torch.from_numpy(skip)], rtol=0, atol=1e-5)


def _symmetric_image(seed: int) -> torch.Tensor:
    """A uint8 (3, 32, 32) image equal to its mirror: with crop padding 0, flip/crop change nothing."""
    half = np.random.default_rng(seed).integers(0, 256, (8, 4, 3)).astype(np.uint8).repeat(4, 0).repeat(4, 1)
    return torch.from_numpy(np.concatenate([half, half[:, ::-1]], axis=1)).permute(2, 0, 1).contiguous()


def _constant_stylizer(image: torch.Tensor) -> RecordingStylizer:
    return RecordingStylizer(replace=lambda images, flags: image.expand_as(images).contiguous())


def test_trivial_augment_is_drawn_per_sample(cifar_root):
    root, *_ = cifar_root
    loader = create_train_loader("cifar10", root, 32, stylizer=_constant_stylizer(_symmetric_image(0)),
                                 augmentation=Augmentation(random_erasing_prob=0.0, crop_padding=0))
    images, *_ = next(iter(loader))
    distinct = {tuple(np.round(image.flatten()[::37].numpy(), 3)) for image in images}
    assert len(distinct) >= 12  # 14 ops x 31 magnitudes; identity is one op, so a few may coincide


def test_trivial_augment_change_statistics_match_torchvision(cifar_root):
    """Statistical: how much DALI's TrivialAugmentWide changes an image agrees with torchvision's
    (nearest interpolation, fill 0), over 400 draws on the same image."""
    from torchvision.transforms import InterpolationMode, TrivialAugmentWide

    root, *_ = cifar_root
    image = _symmetric_image(1)
    loader = create_train_loader("cifar10", root, 200, synthetic_path=root / "edm.npz", synthetic_ratio=0.5,
                                 stylizer=_constant_stylizer(image), seed=6,
                                 augmentation=Augmentation(random_erasing_prob=0.0, crop_padding=0))
    info = dataset_info("cifar10")
    mean, std = (torch.tensor(v).view(3, 1, 1) * 255 for v in (info.mean, info.std))
    ours = []
    for epoch in range(4):  # 4 x 100 draws
        loader.set_epoch(epoch)
        for images, *_ in loader:
            ours += [(pixels * std + mean - image).abs().mean().item() for pixels in images]
    torch.manual_seed(0)
    augment = TrivialAugmentWide(interpolation=InterpolationMode.NEAREST)
    theirs = [(augment(image).float() - image).abs().mean().item() for _ in range(400)]
    ours, theirs = np.array(ours), np.array(theirs)
    assert abs(ours.mean() - theirs.mean()) < 10, (ours.mean(), theirs.mean())  # means ~47, SE of difference ~3
    assert abs((ours < 0.5).mean() - (theirs < 0.5).mean()) < 0.07  # unchanged share ~0.1 (identity etc.)


# --------------------------------------------------------------------------- Random Erasing

def test_random_erasing_applies_the_drawn_black_boxes(cifar_root):
    root, *_ = cifar_root
    loader = create_train_loader("cifar10", root, 25, stylizer=RecordingStylizer(), seed=3,
                                 augmentation=Augmentation(trivial_augment=False, random_erasing_prob=0.5))
    erased = total = 0
    for step, ((images, *_), (received, _)) in enumerate(zip(loader, loader.stylizer.calls)):
        draws = step_draws(loader, step, np.zeros(len(images), bool))
        expected = []
        for image, start, flip, do, anchor, shape in zip(received.permute(0, 2, 3, 1).numpy(), draws.crop_start,
                                                         draws.flip, draws.erase, draws.erase_anchor, draws.erase_shape):
            cropped = crop_flip(image, start, flip, 4)
            expected.append(erase(cropped, anchor, shape) if do else cropped)
        # Erased pixels are 0 before normalization (black), as the authors' RandomErasing(value=0) on [0, 1] images.
        torch.testing.assert_close(images, as_normalized(np.stack(expected), "cifar10"), rtol=0, atol=1e-5)
        erased, total = erased + int(draws.erase.sum()), total + len(images)
    assert 0.3 < erased / total < 0.7  # 100 samples at p = 0.5


def test_random_erasing_draws_match_torchvision():
    """Statistical: our per-sample boxes against torchvision's RandomErasing.get_params with the
    authors' scale (0.02, 0.4), 4000 draws each: area, aspect and the share of draws that erase."""
    from torchvision.transforms import RandomErasing

    count, size, scale = 4000, 32, (0.02, 0.4)
    erase_flags, _, shape = draw_erasing(np.random.default_rng(0), count, size, 1.0, scale)
    ours = shape[erase_flags]
    torch.manual_seed(0)
    image = torch.zeros(3, size, size)
    theirs = []
    for _ in range(count):
        _, _, height, width, _ = RandomErasing.get_params(image, scale=scale, ratio=(0.3, 3.3), value=[0.0])
        if (height, width) != (size, size):  # torchvision's "nothing fits" answer
            theirs.append((height, width))
    theirs = np.array(theirs, dtype=np.float64)

    def statistics(boxes):
        area = boxes[:, 0] * boxes[:, 1] / size**2
        return area.mean(), area.std(), np.log(boxes[:, 0] / boxes[:, 1]).mean()

    our_area, our_spread, our_aspect = statistics(ours)
    their_area, their_spread, their_aspect = statistics(theirs)
    assert 0.17 < their_area < 0.22  # scale (0.02, 0.4): ~0.2, not torchvision's default 0.33 bound
    assert abs(our_area - their_area) < 0.01, (our_area, their_area)  # SE of the difference ~0.0025
    assert abs(our_spread - their_spread) < 0.01
    assert abs(our_aspect - their_aspect) < 0.06, (our_aspect, their_aspect)  # ~0.015
    assert abs(erase_flags.mean() - len(theirs) / count) < 0.02
    assert ours.max() < size  # only boxes strictly inside the image, as torchvision


# --------------------------------------------------------------------------- determinism, resume, no rebuild

@needs_dali
def test_epochs_replay_exactly_without_rebuilding_the_pipelines(cifar_root):
    root, *_ = cifar_root
    make = lambda: create_train_loader("cifar10", root, 16, synthetic_path=root / "edm.npz",  # noqa: E731
                                       synthetic_ratio=0.5, augmentation=Augmentation(random_erasing_prob=0.5), seed=11)
    first = make()
    epochs = {}
    for epoch in range(3):
        first.set_epoch(epoch)
        epochs[epoch] = list(first)
        if epoch == 0:
            built = first.build_seconds
    assert first.build_seconds == built > 0  # built for the first epoch, never again
    resumed = make()  # a fresh process resuming at epoch 2
    resumed.set_epoch(2)
    next(iter(resumed))  # an epoch abandoned after one batch leaves nothing behind
    for (images_a, labels_a, _), (images_b, labels_b, _) in zip(epochs[2], resumed):
        assert torch.equal(images_a, images_b) and torch.equal(labels_a, labels_b)
    assert not torch.equal(epochs[1][0][0], epochs[2][0][0])


def test_ranks_get_disjoint_images(cifar_root):
    root, *_ = cifar_root
    shards = [create_train_loader("cifar10", root, 10, rank=r, world_size=2, seed=2) for r in range(2)]
    assert len(shards[0]) == len(shards[1]) == 100 // 20
    indices = [np.concatenate([p.indices for p in shard.sampler.epoch(0)]) for shard in shards]
    assert not set(indices[0]) & set(indices[1]) and len(set(indices[0]) | set(indices[1])) == 100
    first_batches = [next(iter(shard))[0] for shard in shards]
    assert not torch.equal(*first_batches)


# --------------------------------------------------------------------------- double buffering

class FakeStreams:
    """Stands in for prefetch.StreamHandoff; logs the order of calls."""

    def __init__(self, log):
        self.log, self.stream = log, "side"

    def start(self):
        self.log.append("start")

    def producing(self):
        log = self.log

        class _On:
            def __enter__(self):
                log.append("side{")

            def __exit__(self, *exc):
                log.append("}")

        return _On()

    def ready(self):
        return "event"

    def hand_over(self, tensors, event):
        self.log.append(f"wait {event} for {tensors[0]}")
        return tensors


def test_next_batch_is_enqueued_on_the_side_stream_before_this_one_is_handed_over():
    log = []

    def enqueue(step):
        log.append(f"enqueue {step}")
        return step

    def collect(step):
        log.append(f"collect {step}")
        return (f"batch{step}", "event")

    for batch in prefetched(3, enqueue, collect, FakeStreams(log)):
        log.append(f"train {batch[0]}")
    assert log == ["start", "side{", "enqueue 0", "}",
                   "side{", "collect 0", "enqueue 1", "}", "wait event for batch0", "train batch0",
                   "side{", "collect 1", "enqueue 2", "}", "wait event for batch1", "train batch1",
                   "side{", "collect 2", "}", "wait event for batch2", "train batch2"]


def test_stream_handoff_is_a_no_op_on_the_cpu():
    from fastnst.train.data.prefetch import StreamHandoff

    streams = StreamHandoff(torch.device("cpu"))
    tensor = torch.zeros(2)
    streams.start()
    with streams.producing():
        event = streams.ready()
    assert streams.stream is None and event is None and streams.hand_over((tensor,), event) == (tensor,)


# --------------------------------------------------------------------------- arguments, eval loader

def test_loader_arguments_name_the_flag(cifar_root):
    root, *_ = cifar_root
    with pytest.raises(ValueError, match="--on-bad-image"):
        create_train_loader("cifar10", root, 8, on_bad_image="ignore")
    with pytest.raises(ValueError, match="--synthetic"):
        create_train_loader("cifar10", root, 8, synthetic_ratio=0.5)
    with pytest.raises(ValueError, match="--crop-padding"):
        create_train_loader("cifar10", root, 8, augmentation=Augmentation(crop_padding=32))
    with pytest.raises(ValueError, match="--random-erasing-scale"):
        Augmentation(random_erasing_scale=(0.5, 0.1))  # checked when made


def test_stylizer_returning_the_wrong_type_is_an_error(cifar_root):
    root, *_ = cifar_root
    loader = create_train_loader("cifar10", root, 8, stylizer=lambda images, flags, source_index: (
        images.float() / 255, SimpleNamespace(chosen=torch.zeros_like(flags))))
    with pytest.raises(TypeError, match="stylizer must return uint8"):
        next(iter(loader))


def test_eval_loader_in_order_and_normalized(cifar_root):
    root, *_ = cifar_root
    loader = create_eval_loader("cifar10", root, 16)
    batches = list(loader)
    assert len(loader) == len(batches) == 2
    images = torch.cat([b[0] for b in batches])
    _, _, test_x, test_y = data_formats.write_cifar10(root / "again", per_batch=20, num_test=30)
    expected = normalize(torch.from_numpy(test_x).permute(0, 3, 1, 2), "cifar10")
    torch.testing.assert_close(images, expected)
    assert torch.cat([b[1] for b in batches]).tolist() == test_y.tolist()
    info = dataset_info("cifar10")
    assert abs(images[:, 0].mean().item() - (127.5 / 255 - info.mean[0]) / info.std[0]) < 0.05


@needs_dali
def test_pipeline_device_options_without_a_gpu():
    from fastnst.train.data.pipeline import pipeline_options

    cpu = pipeline_options(8, "cpu", seed=2**31 + 5)
    assert cpu["device_id"] is None and cpu["seed"] == 5 and cpu["batch_size"] == 8
    assert pipeline_options(8, "cuda:1")["device_id"] == 1  # DALI operators on that GPU


@needs_dali
def test_building_stage_two_does_not_print_dali_alias_deprecations():
    """DALI's own TrivialAugment uses deprecated fn.experimental aliases; their warnings are noise."""
    import warnings

    from fastnst.train.data import pipeline as stages

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        augment = stages.augment_pipeline(
            image_size=32, source_device="cpu", mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25),
            trivial_augment_wide=True, random_erasing=True, **stages.pipeline_options(4, "cpu"))
        augment.build()
    assert not [w for w in caught if "is now deprecated" in str(w.message)]


# --------------------------------------------------------------------------- JPEG sets, bad files

@pytest.fixture()
def tinyimagenet_root(tmp_path):
    written = data_formats.write_tinyimagenet(tmp_path, per_class=1, num_val=4)
    synthetic = data_formats.write_synthetic_npz(tmp_path / "edm64.npz", count=150, size=64, num_classes=200)
    return tmp_path, written["train"], synthetic


def test_jpeg_set_decoded_and_mixed_with_synthetic_pixels(tinyimagenet_root):
    root, (train_x, train_y, paths), (synthetic_x, synthetic_y) = tinyimagenet_root
    stylizer = RecordingStylizer()
    loader = create_train_loader("tinyimagenet", root, 32, synthetic_path=root / "edm64.npz", synthetic_ratio=0.6,
                                 stylizer=stylizer, seed=4)
    assert loader.crop_padding == 8  # the authors' RandomCrop(64, padding=8)
    plans = loader.sampler.epoch(0)
    batches = list(loader)
    assert len(batches) == len(plans) == math.ceil(200 / 32)
    for (received, flags), plan, (images, labels, _) in zip(stylizer.calls, plans, batches):
        assert images.shape == (len(plan.indices), 3, 64, 64) and flags.tolist() == plan.is_synthetic.tolist()
        for sample, index, synthetic in zip(received.permute(0, 2, 3, 1).numpy(), plan.indices, plan.is_synthetic):
            if synthetic:
                assert np.array_equal(sample, synthetic_x[index])  # raw pixels, bit-exact
            else:
                assert np.abs(sample.astype(int) - train_x[index]).mean() < 2.0  # decoded JPEG, uncropped
        expected = np.where(plan.is_synthetic, synthetic_y[plan.indices % 150], train_y[plan.indices % 200])
        assert labels.tolist() == expected.tolist()


def _break_files(paths, which=("truncated", "garbled")):
    truncated, garbled = paths[3], paths[7]
    if "truncated" in which:
        truncated.write_bytes(truncated.read_bytes()[:300])
    if "garbled" in which:
        data = bytearray(garbled.read_bytes())  # markers intact, entropy-coded data scrambled: only a decoder notices
        middle = len(data) // 2
        data[middle:middle + 200] = np.random.default_rng(0).integers(0, 256, 200, dtype=np.uint8).tobytes()
        garbled.write_bytes(bytes(data))
    return truncated, garbled


def test_bad_images_skipped_counted_and_logged(tinyimagenet_root, caplog):
    root, (_, _, paths), _ = tinyimagenet_root
    truncated, garbled = _break_files(paths)
    with caplog.at_level(logging.WARNING):
        loader = create_train_loader("tinyimagenet", root, 25, on_bad_image="skip",
                                     augmentation=Augmentation(trivial_augment=False, random_erasing_prob=0.0))
        assert loader.num_skipped == 2 and loader.bad_paths == {truncated, garbled}  # found before training
        batches = list(loader)
    assert len(batches) == 8 and all(len(labels) == 25 for _, labels, _ in batches)
    assert loader.num_skipped == 2
    assert str(truncated) in caplog.text and str(garbled) in caplog.text


@pytest.mark.parametrize("which", ["truncated", "garbled"])
def test_bad_image_stops_with_its_path_before_training(tinyimagenet_root, which):
    root, (_, _, paths), _ = tinyimagenet_root
    bad = dict(zip(["truncated", "garbled"], _break_files(paths, which=(which,))))[which]
    with pytest.raises(BadImageError, match=bad.name):
        create_train_loader("tinyimagenet", root, 25, augmentation=Augmentation(trivial_augment=False),
                            on_bad_image="stop")


@needs_dali
@pytest.mark.parametrize("policy", ["skip", "stop"])
def test_a_file_broken_during_training_is_named_and_its_pipeline_dropped(tinyimagenet_root, policy, caplog):
    """The check passed, then a file went bad: DALI's decoder fails mid-epoch. The failed pipeline is
    dropped at once (not kept alive by a traceback until exit), the file is found and named (skip: the
    epoch goes on without it; stop: BadImageError with no DALI error in its chain)."""
    import gc
    import weakref

    root, (_, _, paths), _ = tinyimagenet_root
    loader = create_train_loader("tinyimagenet", root, 25, on_bad_image=policy,
                                 augmentation=Augmentation(trivial_augment=False, random_erasing_prob=0.0))
    first_decoder = weakref.ref(loader._decoder().pipe)
    victim = loader.real.paths[loader.sampler.epoch(0)[3].indices[5]]  # in the 4th batch
    victim.write_bytes(victim.read_bytes()[:2] + bytes(300) + b"\xff\xd9")  # valid markers, a body of zeros
    if policy == "stop":
        with pytest.raises(BadImageError, match=victim.name) as raised:
            list(loader)
        chain = [raised.value.__context__, raised.value.__cause__]
        assert not any(isinstance(link, RuntimeError) for link in chain)  # DALI's error does not ride along
    else:
        with caplog.at_level(logging.WARNING):
            batches = list(loader)
        assert len(batches) == 8 and loader.bad_paths == {victim} and f"skipping bad image {victim}" in caplog.text
    gc.collect()
    assert first_decoder() is None  # the pipeline that raised is gone


@needs_dali
def test_the_check_rejects_random_data_that_dali_decodes_as_noise(tmp_path):
    """A JPEG with valid headers and random entropy-coded data: DALI decodes it without an error (noise,
    trained on), the pre-training check rejects it."""
    import nvidia.dali.fn as fn
    import nvidia.dali.types as types
    from nvidia.dali import pipeline_def

    from fastnst.train.data.jpeg_check import check_file

    path = tmp_path / "noise.JPEG"
    path.write_bytes(data_formats.noise_body_jpeg(seed=2))

    @pipeline_def(batch_size=1, num_threads=1, device_id=None, prefetch_queue_depth=1)
    def decode():
        return fn.decoders.image(fn.external_source(name="data", dtype=types.UINT8), device="cpu")

    pipe = decode()
    pipe.build()
    pipe.feed_input("data", [np.fromfile(path, dtype=np.uint8)])
    pipe.schedule_run()
    (decoded,) = pipe.outputs()
    assert decoded.shape() == [(64, 64, 3)]  # DALI: no error
    assert check_file(path, 64) is not None and str(path) in check_file(path, 64)
    good = tmp_path / "good.JPEG"
    data_formats._save_jpeg(good, data_formats.random_images(np.random.default_rng(2), 1, 64)[0])
    assert check_file(good, 64) is None


def test_checked_files_are_not_decoded_again(tmp_path, monkeypatch):
    from fastnst.train.data import jpeg_check

    written = data_formats.write_tinyimagenet(tmp_path, per_class=1, num_val=1)
    folder, paths = tmp_path / "tiny-imagenet-200", written["train"][2][:20]
    _, garbled = _break_files(paths, which=("garbled",))
    checked = []
    real_check = jpeg_check.inspect_file
    monkeypatch.setattr(jpeg_check, "inspect_file", lambda path, size: checked.append(path) or real_check(path, size))
    assert set(jpeg_check.find_bad_files(paths, 64, folder)) == {garbled}
    assert len(checked) == 20 and (folder / jpeg_check.CACHE_NAME).is_file()
    checked.clear()
    changed = paths[11]
    changed.write_bytes(changed.read_bytes() + b"\0")  # size and time change: checked again
    assert set(jpeg_check.find_bad_files(paths, 64, folder)) == {garbled}  # the bad verdict is remembered too
    assert checked == [changed]


@pytest.mark.parametrize("rank", [0, 1])
def test_under_ddp_rank_zero_checks_the_jpegs_before_the_others(rank, monkeypatch):
    """Rank 0 decodes and writes the verdicts, then releases the barrier; the other ranks wait, then read them."""
    from fastnst.train.data.train_loader import rank_zero_first

    events = []
    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.distributed, "get_rank", lambda: rank)
    monkeypatch.setattr(torch.distributed, "barrier", lambda: events.append("barrier"))
    with rank_zero_first():
        events.append("check")
    assert events == (["check", "barrier"] if rank == 0 else ["barrier", "check"])


@pytest.mark.parametrize("policy", ["skip", "stop"])
def test_train_run_with_a_corrupt_jpeg_never_crashes(tmp_path, policy):
    """Issue 14: `python -m train.run --dataset tinyimagenet` with a corrupt training JPEG, in a subprocess
    so that a crash (SIGSEGV) fails the test: skip names the file and trains; stop names it in its last line."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    paths = data_formats.write_tinyimagenet(tmp_path / "data", per_class=1, num_val=4)["train"][2]
    bad = paths[7]
    bad.write_bytes(data_formats.noise_body_jpeg(seed=1))  # the file: valid headers, random data
    repo = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": repo, "OMP_NUM_THREADS": "1"}
    out = tmp_path / "run"
    done = subprocess.run(
        [sys.executable, "-m", "train.run", "--dataset", "tinyimagenet", "--data-root", str(tmp_path / "data"),
         "--out", str(out), "--model", "wrn10_1", "--epochs", "1", "--batch-size", "50", "--synthetic-ratio", "0",
         "--no-stylize", "--no-swa", "--no-evaluate-corruptions", "--eval-every", "0", "--device", "cpu",
         "--on-bad-image", policy],
        env=env, cwd=repo, capture_output=True, text=True, timeout=600)
    assert done.returncode >= 0, f"killed by signal {-done.returncode}: {done.stderr[-2000:]}"
    if policy == "skip":
        assert done.returncode == 0, done.stderr[-2000:]
        assert f"skipping bad image {bad}" in done.stderr
        assert (out / "checkpoint.pt").is_file() and (out / "metrics.jsonl").is_file()
    else:
        assert done.returncode == 2 and "Traceback" not in done.stderr  # fastnst.cli: one line, exit 2
        assert str(bad) in done.stderr.strip().splitlines()[-1]  # the line names the file
        assert not (out / "checkpoint.pt").exists()  # stopped before training: nothing half-written


# --------------------------------------------------------------------------- CUDA

@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_gpu_pipeline_keeps_data_on_the_device_same_order_and_determinism(cifar_root):
    root, train_x, _, synthetic_x, _ = cifar_root
    stylizer = RecordingStylizer(replace=paint_synthetic)
    make = lambda: create_train_loader("cifar10", root, 16, synthetic_path=root / "edm.npz",  # noqa: E731
                                       synthetic_ratio=0.5, stylizer=stylizer, device="cuda", seed=5,
                                       augmentation=Augmentation(trivial_augment=False, random_erasing_prob=0.0))
    loader = make()
    assert isinstance(loader._real_pixels, torch.Tensor) and loader._real_pixels.is_cuda  # resident, as airbench
    plan = loader.sampler.epoch(0)[0]
    images, labels, _ = next(iter(loader))
    assert images.is_cuda and labels.is_cuda and images.is_contiguous(memory_format=torch.channels_last)
    received, flags = stylizer.calls[0]
    assert received.is_cuda and received.dtype == torch.uint8 and flags.device.type == "cpu"  # no sync to read
    assert np.array_equal(received.permute(0, 2, 3, 1).cpu().numpy(), sources_of(plan, train_x, synthetic_x))
    draws = step_draws(loader, 0, np.zeros(16, bool))
    stylized = paint_synthetic(received.cpu(), flags).permute(0, 2, 3, 1).numpy()
    expected = [crop_flip(image, start, flip, 4) for image, start, flip in zip(stylized, draws.crop_start, draws.flip)]
    torch.testing.assert_close(images.cpu(), as_normalized(np.stack(expected), "cifar10"), rtol=0, atol=1e-5)
    again, *_ = next(iter(make()))
    assert torch.equal(images, again)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_gpu_jpeg_decoding_mixed_with_synthetic(tinyimagenet_root):
    root, (train_x, _, _), (synthetic_x, _) = tinyimagenet_root
    stylizer = RecordingStylizer()
    loader = create_train_loader("tinyimagenet", root, 8, synthetic_path=root / "edm64.npz", synthetic_ratio=0.5,
                                 stylizer=stylizer, device="cuda")
    plan = loader.sampler.epoch(0)[0]
    images, *_ = next(iter(loader))
    assert images.is_cuda and images.shape == (8, 3, 64, 64)
    received, _ = stylizer.calls[0]
    for sample, index, synthetic in zip(received.permute(0, 2, 3, 1).cpu().numpy(), plan.indices, plan.is_synthetic):
        source, tolerance = (synthetic_x[index], 0.0) if synthetic else (train_x[index], 2.0)
        assert np.abs(sample.astype(int) - source).mean() <= tolerance
