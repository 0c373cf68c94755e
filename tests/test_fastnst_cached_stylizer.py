"""CachedStylizer: the Stylizer's choices, stored variants instead of networks, per-source frequencies, replay."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from fastnst import StyleBank, Stylizer
from fastnst.cached_stylizer import CachedStylizer
from fastnst.networks import Decoder, VGGEncoder
from fastnst.cache_format import StylizedDataset

pytestmark = pytest.mark.filterwarnings("ignore::fastnst.RandomWeightsWarning")

NUM_REAL, NUM_SYNTHETIC, SIZE = 30, 40, 8


def fake_cache(source: str, count: int, variants: int, seed: int) -> StylizedDataset:
    """An in-memory cache: random pixels, styles and alphas, as open_stylized_dataset returns them."""
    rng = np.random.default_rng(seed)
    return StylizedDataset(
        path=f"<{source}>", images=rng.integers(0, 256, (count, variants, SIZE, SIZE, 3), dtype=np.uint8),
        style_index=rng.integers(0, 9, (count, variants)).astype(np.int32),
        alpha=rng.random((count, variants)).astype(np.float32), labels=np.arange(count) % 10,
        meta={"settings": {"source": source, "num_styles": 9, "variants": variants}})


@pytest.fixture(scope="module")
def caches():
    return {"synthetic": fake_cache("synthetic", NUM_SYNTHETIC, 4, 1), "real": fake_cache("real", NUM_REAL, 3, 2)}


def batch(count=24, seed=0):
    generator = torch.Generator().manual_seed(seed)
    is_synthetic = torch.rand(count, generator=generator) < 0.5
    source_index = torch.where(is_synthetic, torch.randint(NUM_SYNTHETIC, (count,), generator=generator),
                               torch.randint(NUM_REAL, (count,), generator=generator))
    images = torch.randint(0, 256, (count, SIZE, SIZE, 3), dtype=torch.uint8, generator=generator)
    return images.permute(0, 3, 1, 2), is_synthetic, source_index  # NHWC memory as the loader hands it


def test_same_choices_as_the_stylizer(caches):
    """Same seed and probabilities: the same chosen and stylized samples, batch after batch, epoch after epoch."""
    options = dict(prob_synthetic=0.5, prob_real=0.1, nst_probability=0.95, seed=7)
    bank = StyleBank(torch.rand(5, 512), torch.rand(5, 512) + 0.1, [f"s{i}" for i in range(5)])
    stylizer = Stylizer(bank, VGGEncoder(), Decoder(), resolution=None, **options)
    cached = CachedStylizer(caches, **options)
    for epoch in (0, 3):
        stylizer.set_epoch(epoch)
        cached.set_epoch(epoch)
        for seed in range(3):
            _, is_synthetic, source_index = batch(200, seed)
            expected = stylizer.draw(is_synthetic)
            plan, _ = cached.draw(is_synthetic, source_index)
            assert torch.equal(plan.chosen, expected.chosen) and torch.equal(plan.rows, expected.rows)
            assert plan.num_synthetic == expected.num_synthetic


def test_variant_frequencies_per_source(caches):
    """Statistical: 40000 samples per source; tolerance 5 standard errors (false alarm < 1e-6)."""
    cached = CachedStylizer(caches, prob_synthetic=0.5, prob_real=0.1, nst_probability=0.95, seed=0)
    count = 40000
    is_synthetic = torch.arange(2 * count) < count
    source_index = torch.where(is_synthetic, torch.arange(2 * count) % NUM_SYNTHETIC, torch.arange(2 * count) % NUM_REAL)
    plan, variant = cached.draw(is_synthetic, source_index)
    stylized_synthetic = is_synthetic[plan.rows]
    for synthetic, probability, variants in ((True, 0.5 * 0.95, 4), (False, 0.1 * 0.95, 3)):
        among = stylized_synthetic == synthetic
        share = int(among.sum()) / count
        assert abs(share - probability) < 5 * math.sqrt(probability * (1 - probability) / count)
        chosen_share = int((plan.chosen & (is_synthetic == synthetic)).sum()) / count
        expected_chosen = 0.5 if synthetic else 0.1
        assert abs(chosen_share - expected_chosen) < 5 * math.sqrt(expected_chosen * (1 - expected_chosen) / count)
        frequencies = np.bincount(variant[among].numpy(), minlength=variants) / int(among.sum())
        standard_error = math.sqrt((1 / variants) * (1 - 1 / variants) / int(among.sum()))
        assert len(frequencies) == variants and np.abs(frequencies - 1 / variants).max() < 5 * standard_error


def test_stylized_rows_are_the_stored_variants_and_others_untouched(caches):
    cached = CachedStylizer(caches, prob_synthetic=0.6, prob_real=0.4, seed=3)
    images, is_synthetic, source_index = batch()
    original = images.clone()
    output, plan = cached(images, is_synthetic, source_index)
    assert torch.equal(images, original)  # the input is never modified
    cached.set_epoch(0)
    _, variant = cached.draw(is_synthetic, source_index)
    stylized = plan.stylized
    assert 0 < stylized.sum() < len(stylized)
    assert torch.equal(output[~stylized], images[~stylized])
    for position, row in enumerate(plan.rows.tolist()):
        cache = caches["synthetic" if is_synthetic[row] else "real"]
        index, k = int(source_index[row]), int(variant[position])
        assert torch.equal(output[row].permute(1, 2, 0), torch.from_numpy(cache.images[index, k]))
        assert plan.style_index[position] == cache.style_index[index, k]
        assert plan.alpha[position] == cache.alpha[index, k]


def test_replayed_epoch_is_bit_identical(caches):
    images, is_synthetic, source_index = batch(64)
    runs = []
    for _ in range(2):
        cached = CachedStylizer(caches, prob_synthetic=0.5, prob_real=0.2, nst_probability=0.95, seed=11)
        cached.set_epoch(5)
        runs.append([cached(images, is_synthetic, source_index)[0] for _ in range(3)])
    cached.set_epoch(5)
    replay = [cached(images, is_synthetic, source_index)[0] for _ in range(3)]
    for first, second, third in zip(*runs, replay):
        assert torch.equal(first, second) and torch.equal(first, third)
    cached.set_epoch(6)
    assert not torch.equal(cached(images, is_synthetic, source_index)[0], runs[0][0])


def test_memmapped_cache_gathers_unsorted_and_repeated_rows(caches, tmp_path):
    """The host path (a cache on disk, not resident): reads in sorted order, results in batch order."""
    synthetic = caches["synthetic"]
    np.save(tmp_path / "images.npy", synthetic.images)
    on_disk = StylizedDataset(tmp_path, np.load(tmp_path / "images.npy", mmap_mode="r"), synthetic.style_index,
                              synthetic.alpha, synthetic.labels, synthetic.meta)
    cached = CachedStylizer({"synthetic": on_disk}, prob_synthetic=1.0, prob_real=0.0)
    source_index = torch.tensor([7, 3, 7, 0, 39, 3])
    images = torch.zeros(6, 3, SIZE, SIZE, dtype=torch.uint8)
    output, plan = cached(images, torch.ones(6, dtype=torch.bool), source_index)
    cached.set_epoch(0)
    _, variant = cached.draw(torch.ones(6, dtype=torch.bool), source_index)
    expected = synthetic.images[source_index.numpy(), variant.numpy()]
    assert torch.equal(output.permute(0, 2, 3, 1), torch.from_numpy(expected))


def test_errors_name_the_problem(caches):
    with pytest.raises(ValueError, match="no cache of the real images"):
        CachedStylizer({"synthetic": caches["synthetic"]}, prob_synthetic=0.5, prob_real=0.1)
    CachedStylizer({"synthetic": caches["synthetic"]}, prob_synthetic=0.5, prob_real=0.0)  # no real draws: fine
    cached = CachedStylizer(caches, prob_synthetic=0.5, prob_real=0.1)
    images, is_synthetic, _ = batch()
    with pytest.raises(ValueError, match="needs source_index"):
        cached(images, is_synthetic)
    with pytest.raises(ValueError, match="prob_real must be in"):
        CachedStylizer(caches, prob_synthetic=0.5, prob_real=1.5)
