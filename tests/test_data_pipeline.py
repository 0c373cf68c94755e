"""The DALI training pipeline on CPU: the order of the stages, per-sample randomness, determinism, bad data."""
from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from tests import data_formats
from fastnst.train.data import BadImageError, create_eval_loader, create_train_loader, normalize
from fastnst.train.data.stats import dataset_info


def shifted(image_hwc: np.ndarray, dy: int, dx: int, flip: bool) -> np.ndarray:
    """The 4-px padded crop at offset (dy, dx), then mirrored: what stage 1 should produce."""
    size = image_hwc.shape[0]
    padded = np.pad(image_hwc, ((4, 4), (4, 4), (0, 0)))
    crop = padded[4 + dy:4 + dy + size, 4 + dx:4 + dx + size]
    return crop[:, ::-1] if flip else crop


def find_crop(received_hwc: np.ndarray, source_hwc: np.ndarray, tolerance: float = 0.0):
    """The (dy, dx, flip) that turns ``source`` into ``received`` (mean abs error <= tolerance), or None."""
    for dy in range(-4, 5):
        for dx in range(-4, 5):
            for flip in (False, True):
                error = np.abs(shifted(source_hwc, dy, dx, flip).astype(int) - received_hwc).mean()
                if error <= tolerance:
                    return dy, dx, flip
    return None


class RecordingStylizer:
    """Stands in for fastnst.Stylizer: records what it got, optionally replaces the pixels."""

    def __init__(self, replace=None):
        self.calls, self.replace = [], replace

    def __call__(self, images: torch.Tensor, is_synthetic: torch.Tensor) -> torch.Tensor:
        self.calls.append((images.clone(), is_synthetic.clone()))
        return images if self.replace is None else self.replace(images, is_synthetic)


@pytest.fixture(scope="module")
def cifar_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("cifar")
    train_x, train_y, _, _ = data_formats.write_cifar10(root, per_batch=20, num_test=30)
    synthetic_x, synthetic_y = data_formats.write_synthetic_npz(root / "edm.npz", count=60)
    return root, train_x, train_y, synthetic_x, synthetic_y


def test_stylizer_sees_uint8_cropped_flipped_images_before_trivial_augment_and_erasing(cifar_root):
    root, train_x, train_y, synthetic_x, synthetic_y = cifar_root
    stylizer = RecordingStylizer()
    loader = create_train_loader("cifar10", root, 16, synthetic_path=root / "edm.npz", synthetic_ratio=0.5,
                                 stylizer=stylizer, random_erasing_prob=1.0, seed=1)
    loader.set_epoch(0)
    plans = loader.sampler.epoch(0)
    outputs = [(images, labels) for images, labels in loader]
    assert len(outputs) == len(loader) == len(plans) == 100 // 8
    offsets = []
    for (received, flags), plan, (images, labels) in zip(stylizer.calls, plans, outputs):
        assert received.dtype == torch.uint8 and received.shape == (16, 3, 32, 32)
        assert flags.dtype == torch.bool and flags.tolist() == plan.is_synthetic.tolist()
        sources = np.where(plan.is_synthetic[:, None, None, None], synthetic_x[plan.indices % 60],
                           train_x[plan.indices % 100])
        expected_labels = np.where(plan.is_synthetic, synthetic_y[plan.indices % 60], train_y[plan.indices % 100])
        assert labels.tolist() == expected_labels.tolist()
        for sample, source in zip(received.permute(0, 2, 3, 1).numpy(), sources):
            # An exact crop/flip of the source: no TrivialAugment, no erased box has touched it yet.
            match = find_crop(sample, source)
            assert match is not None
            offsets.append(match)
        # ... and both have been applied after it (erasing with p = 1 changes every sample).
        untouched = normalize(received, "cifar10")
        assert (images - untouched).abs().flatten(1).amax(1).min() > 0.1
    assert len(set(offsets)) > 20  # crop offset and flip drawn per sample, not per batch


def test_output_is_the_normalized_stylizer_result(cifar_root):
    root, *_ = cifar_root
    zero_synthetic = lambda images, flags: torch.where(flags.view(-1, 1, 1, 1), torch.zeros_like(images), images)
    stylizer = RecordingStylizer(replace=zero_synthetic)
    loader = create_train_loader("cifar10", root, 16, synthetic_path=root / "edm.npz", synthetic_ratio=0.25,
                                 stylizer=stylizer, trivial_augment=False, random_erasing_prob=0.0)
    images, labels = next(iter(loader))
    received, flags = stylizer.calls[0]
    assert images.dtype == torch.float32 and labels.dtype == torch.int64
    assert images.shape == (16, 3, 32, 32) and images.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(images, normalize(zero_synthetic(received, flags), "cifar10"))
    assert flags.sum() == 4


def _constant_batch_stylizer(seed: int):
    """Replaces every sample by the same random image, so that differences come from stage 2 only."""
    image = torch.from_numpy(np.random.default_rng(seed).integers(0, 256, (3, 32, 32), dtype=np.uint8))
    return RecordingStylizer(replace=lambda images, flags: image.expand_as(images).contiguous())


def test_trivial_augment_is_drawn_per_sample(cifar_root):
    root, *_ = cifar_root
    loader = create_train_loader("cifar10", root, 32, stylizer=_constant_batch_stylizer(0), random_erasing_prob=0.0)
    images, _ = next(iter(loader))
    distinct = {tuple(np.round(image.flatten()[::37].numpy(), 3)) for image in images}
    assert len(distinct) >= 12  # 14 ops x 31 magnitudes; identity is one op, so a few may coincide


def test_random_erasing_per_sample_box_and_probability(cifar_root):
    root, *_ = cifar_root
    loader = create_train_loader("cifar10", root, 32, stylizer=_constant_batch_stylizer(1), trivial_augment=False,
                                 random_erasing_prob=0.5, seed=3)
    erased_masks = []
    for images, _ in loader:
        # Erased pixels hold the uint8-rounded mean: within 0.5 / 255 / std of 0 once normalized.
        erased_masks += [(image.abs() < 0.02).all(0) for image in images]
    erased = torch.stack(erased_masks)
    was_erased = erased.flatten(1).any(1)
    share = was_erased.float().mean().item()
    assert 0.3 < share < 0.7, share  # 96 samples at p = 0.5
    boxes = {tuple(mask.nonzero().min(0).values.tolist() + mask.nonzero().max(0).values.tolist())
             for mask in erased[was_erased]}
    assert len(boxes) > 0.8 * was_erased.sum().item()  # a box of its own for (nearly) every erased sample
    areas = erased[was_erased].flatten(1).float().mean(1)
    assert areas.min() >= 0.015 and areas.max() <= 0.34
    sides = [(box[2] - box[0] + 1, box[3] - box[1] + 1) for box in boxes]
    assert max(max(side) for side in sides) < 32  # as torchvision: only boxes strictly inside the image


def test_same_seed_and_epoch_same_batches(cifar_root):
    root, *_ = cifar_root
    make = lambda: create_train_loader("cifar10", root, 16, synthetic_path=root / "edm.npz", synthetic_ratio=0.5,
                                       random_erasing_prob=0.5, seed=11)
    first, second = make(), make()
    first.set_epoch(3)
    second.set_epoch(3)
    for (images_a, labels_a), (images_b, labels_b) in zip(first, second):
        assert torch.equal(images_a, images_b) and torch.equal(labels_a, labels_b)
    second.set_epoch(4)
    assert not torch.equal(next(iter(first))[0], next(iter(second))[0])


def test_ranks_get_disjoint_real_images(cifar_root):
    root, *_ = cifar_root
    shards = [create_train_loader("cifar10", root, 10, rank=r, world_size=2, seed=2) for r in range(2)]
    assert len(shards[0]) == len(shards[1]) == 100 // 20
    indices = [np.concatenate([p.indices for p in shard.sampler.epoch(0)]) for shard in shards]
    assert not set(indices[0]) & set(indices[1]) and len(set(indices[0]) | set(indices[1])) == 100
    first_batches = [next(iter(shard))[0] for shard in shards]
    assert not torch.equal(*first_batches)


def test_loader_arguments_name_the_flag(cifar_root):
    root, *_ = cifar_root
    with pytest.raises(ValueError, match="--on-bad-image"):
        create_train_loader("cifar10", root, 8, on_bad_image="ignore")
    with pytest.raises(ValueError, match="--synthetic"):
        create_train_loader("cifar10", root, 8, synthetic_ratio=0.5)


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


@pytest.fixture()
def tinyimagenet_root(tmp_path):
    written = data_formats.write_tinyimagenet(tmp_path, per_class=1, num_val=4)
    synthetic = data_formats.write_synthetic_npz(tmp_path / "edm64.npz", count=20, size=64, num_classes=200)
    return tmp_path, written["train"], synthetic


def test_jpeg_set_decoded_and_mixed_with_synthetic_pixels(tinyimagenet_root):
    root, (train_x, train_y, paths), (synthetic_x, synthetic_y) = tinyimagenet_root
    stylizer = RecordingStylizer()
    loader = create_train_loader("tinyimagenet", root, 8, synthetic_path=root / "edm64.npz", synthetic_ratio=0.5,
                                 stylizer=stylizer, seed=4)
    plan = loader.sampler.epoch(0)[0]
    images, labels = next(iter(loader))
    assert images.shape == (8, 3, 64, 64)
    received, flags = stylizer.calls[0]
    assert flags.tolist() == plan.is_synthetic.tolist() and flags.sum() == 4
    for sample, index, synthetic in zip(received.permute(0, 2, 3, 1).numpy(), plan.indices, plan.is_synthetic):
        if synthetic:
            assert find_crop(sample, synthetic_x[index]) is not None  # raw pixels, bit-exact
        else:
            assert find_crop(sample, train_x[index], tolerance=2.0) is not None  # decoded JPEG
    expected = np.where(plan.is_synthetic, synthetic_y[plan.indices % 20], train_y[plan.indices])
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
    loader = create_train_loader("tinyimagenet", root, 25, trivial_augment=False, random_erasing_prob=0.0,
                                 on_bad_image="skip")
    with caplog.at_level(logging.WARNING):
        batches = list(loader)
    assert len(batches) == 8 and all(len(labels) == 25 for _, labels in batches)
    assert loader.num_skipped == 2 and loader.bad_paths == {truncated, garbled}
    assert str(truncated) in caplog.text and str(garbled) in caplog.text


@pytest.mark.parametrize("which", ["truncated", "garbled"])
def test_bad_image_stops_with_its_path(tinyimagenet_root, which):
    root, (_, _, paths), _ = tinyimagenet_root
    bad = dict(zip(["truncated", "garbled"], _break_files(paths, which=(which,))))[which]
    loader = create_train_loader("tinyimagenet", root, 25, trivial_augment=False, on_bad_image="stop")
    with pytest.raises(BadImageError, match=bad.name):
        for _ in loader:
            pass


def test_pipeline_device_options_without_a_gpu():
    from fastnst.train.data.pipeline import pipeline_options

    cpu = pipeline_options(8, "cpu", seed=2**31 + 5)
    assert cpu["device_id"] is None and cpu["seed"] == 5 and cpu["batch_size"] == 8
    assert pipeline_options(8, "cuda:1", seed=0)["device_id"] == 1  # DALI operators on that GPU


def test_stylizer_returning_the_wrong_type_is_an_error(cifar_root):
    root, *_ = cifar_root
    loader = create_train_loader("cifar10", root, 8, stylizer=lambda images, flags: images.float() / 255)
    with pytest.raises(TypeError, match="stylizer must return uint8"):
        next(iter(loader))


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_gpu_pipeline_keeps_data_on_the_device_same_order_and_determinism(cifar_root):
    root, train_x, _, synthetic_x, _ = cifar_root
    stylizer = RecordingStylizer()
    make = lambda: create_train_loader("cifar10", root, 16, synthetic_path=root / "edm.npz", synthetic_ratio=0.5,
                                       stylizer=stylizer, device="cuda", seed=5)
    loader = make()
    assert isinstance(loader._real_pixels, torch.Tensor) and loader._real_pixels.is_cuda  # resident, as airbench
    plan = loader.sampler.epoch(0)[0]
    images, labels = next(iter(loader))
    assert images.is_cuda and labels.is_cuda and images.is_contiguous(memory_format=torch.channels_last)
    received, flags = stylizer.calls[0]
    assert received.is_cuda and received.dtype == torch.uint8 and flags.device.type == "cpu"  # no sync to read
    sources = np.where(plan.is_synthetic[:, None, None, None], synthetic_x[plan.indices % 60], train_x[plan.indices % 100])
    for sample, source in zip(received.permute(0, 2, 3, 1).cpu().numpy(), sources):
        assert find_crop(sample, source) is not None
    again, _ = next(iter(make()))
    assert torch.equal(images, again)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_gpu_jpeg_decoding_mixed_with_synthetic(tinyimagenet_root):
    root, (train_x, _, _), (synthetic_x, _) = tinyimagenet_root
    stylizer = RecordingStylizer()
    loader = create_train_loader("tinyimagenet", root, 8, synthetic_path=root / "edm64.npz", synthetic_ratio=0.5,
                                 stylizer=stylizer, device="cuda")
    plan = loader.sampler.epoch(0)[0]
    images, _ = next(iter(loader))
    assert images.is_cuda and images.shape == (8, 3, 64, 64)
    received, _ = stylizer.calls[0]
    for sample, index, synthetic in zip(received.permute(0, 2, 3, 1).cpu().numpy(), plan.indices, plan.is_synthetic):
        source, tolerance = (synthetic_x[index], 0.0) if synthetic else (train_x[index], 2.0)
        assert find_crop(sample, source, tolerance) is not None


def test_random_erasing_box_distribution_matches_torchvision(cifar_root):
    """Statistical: area and aspect of the erased boxes agree with torchvision.transforms.RandomErasing."""
    from torchvision.transforms import RandomErasing

    root, *_ = cifar_root
    loader = create_train_loader("cifar10", root, 100, stylizer=_constant_batch_stylizer(2), trivial_augment=False,
                                 random_erasing_prob=1.0, seed=9)
    ours = []
    for epoch in range(4):  # 400 boxes
        loader.set_epoch(epoch)
        for images, _ in loader:
            ours += [(image.abs() < 0.02).all(0) for image in images]
    torch.manual_seed(0)
    erase = RandomErasing(p=1.0, value=-1000.0)  # a value no image pixel has
    theirs = [(erase(torch.rand(1, 32, 32)) == -1000.0)[0] for _ in range(400)]

    def box_statistics(masks):
        areas, aspects = [], []
        for mask in masks:
            if mask.any():
                rows, cols = mask.any(1).nonzero(), mask.any(0).nonzero()
                height, width = rows.max() - rows.min() + 1, cols.max() - cols.min() + 1
                areas.append(float(height * width) / 1024)
                aspects.append(float(torch.log(height / width)))
        return np.mean(areas), np.mean(aspects), len(areas) / len(masks)

    our_area, our_aspect, our_share = box_statistics(ours)
    their_area, their_aspect, their_share = box_statistics(theirs)
    assert their_share > 0.9 and 0.1 < their_area < 0.25
    assert abs(our_area - their_area) < 0.03, (our_area, their_area)  # standard error of the difference ~0.007
    assert abs(our_aspect - their_aspect) < 0.15, (our_aspect, their_aspect)  # ~0.04
    assert abs(our_share - their_share) < 0.03  # nearly every draw erases when p = 1


def test_trivial_augment_change_statistics_match_torchvision(cifar_root):
    """Statistical: how much DALI's TrivialAugmentWide changes an image agrees with torchvision's
    (nearest interpolation, fill 0), over 400 draws on the same image."""
    from torchvision.transforms import InterpolationMode, TrivialAugmentWide

    root, *_ = cifar_root
    base = np.random.default_rng(0).integers(0, 256, (8, 8, 3)).astype(np.uint8).repeat(4, 0).repeat(4, 1)
    image = torch.from_numpy(base).permute(2, 0, 1).contiguous()
    loader = create_train_loader("cifar10", root, 200, synthetic_path=root / "edm.npz", synthetic_ratio=0.5,
                                 stylizer=lambda x, flags: image.expand_as(x).contiguous(), random_erasing_prob=0.0,
                                 seed=6)
    info = dataset_info("cifar10")
    mean, std = (torch.tensor(v).view(3, 1, 1) * 255 for v in (info.mean, info.std))
    ours = []
    for epoch in range(2):  # 2 x 200 draws
        loader.set_epoch(epoch)
        for images, _ in loader:
            ours += [(pixels * std + mean - image).abs().mean().item() for pixels in images]
    torch.manual_seed(0)
    augment = TrivialAugmentWide(interpolation=InterpolationMode.NEAREST)
    theirs = [(augment(image).float() - image).abs().mean().item() for _ in range(400)]
    ours, theirs = np.array(ours), np.array(theirs)
    assert abs(ours.mean() - theirs.mean()) < 10, (ours.mean(), theirs.mean())  # means ~47, SE of difference ~3
    assert abs((ours < 0.5).mean() - (theirs < 0.5).mean()) < 0.07  # unchanged share ~0.1 (identity etc.)


def test_building_stage_two_does_not_print_dali_alias_deprecations():
    """DALI's own TrivialAugment uses deprecated fn.experimental aliases; one warning per epoch was noise."""
    import warnings

    from fastnst.train.data import pipeline as stages

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        augment = stages.augment_normalize_pipeline(
            image_size=32, source_device="cpu", mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25),
            trivial_augment_wide=True, random_erasing_prob=0.5, **stages.pipeline_options(4, "cpu", seed=1))
        augment.build()
    assert not [w for w in caught if "is now deprecated" in str(w.message)]
