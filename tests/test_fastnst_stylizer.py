"""The Stylizer: per-source probabilities and alphas, untouched rows bit-identical, alpha = 0, determinism."""
import math
from contextlib import contextmanager

import pytest
import torch

from fastnst import StyleBank, Stylizer, build_stylizer
from fastnst.stylizer_meter import StylizerMeter
from lively_networks import lively_networks

# Random networks are these tests' point; the warning itself is tested in test_fastnst_weights.py.
pytestmark = pytest.mark.filterwarnings("ignore::fastnst.RandomWeightsWarning")


def random_bank(styles=7, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return StyleBank(torch.rand(styles, 512, generator=generator), torch.rand(styles, 512, generator=generator) + 0.2,
                     [f"style{i}.jpg" for i in range(styles)])


@pytest.fixture(scope="module")
def networks():
    return lively_networks()


def make_stylizer(networks, **options):
    encoder, decoder = networks
    options.setdefault("resolution", None)  # native size: the logic under test, at a CPU-friendly cost
    return Stylizer(random_bank(), encoder, decoder, **options)


def random_batch(count=24, size=32, seed=0):
    generator = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (count, 3, size, size), dtype=torch.uint8, generator=generator)
    is_synthetic = torch.rand(count, generator=generator) < 0.5
    return images, is_synthetic


@contextmanager
def encoder_rows(stylizer):
    """The rows of each encoder call inside the block: the stylized subset, padded to the bucket."""
    rows = []
    handle = stylizer.encoder.register_forward_hook(lambda module, inputs, output: rows.append(inputs[0].shape[0]))
    try:
        yield rows
    finally:
        handle.remove()  # the networks are shared by the module's tests


def test_fraction_alpha_and_style_per_source(networks):
    """Statistical: 20000 draws per source; tolerance 5 standard errors (false alarm < 1e-6)."""
    stylizer = make_stylizer(networks, prob_synthetic=0.4, prob_real=0.1, alpha_synthetic=(0.1, 1.0),
                             alpha_real=(1.0, 1.0))
    count = 20000
    is_synthetic = torch.arange(2 * count) < count
    plan = stylizer.draw(is_synthetic)
    chosen = torch.zeros(2 * count, dtype=torch.bool)
    chosen[plan.rows] = True
    for source, probability in ((is_synthetic, 0.4), (~is_synthetic, 0.1)):
        fraction = chosen[source].float().mean().item()
        assert abs(fraction - probability) < 5 * math.sqrt(probability * (1 - probability) / count)
    assert plan.num_synthetic == int(chosen[is_synthetic].sum())
    synthetic_alpha = plan.alpha[is_synthetic[plan.rows]]
    real_alpha = plan.alpha[~is_synthetic[plan.rows]]
    assert synthetic_alpha.min() >= 0.1 and synthetic_alpha.max() <= 1.0
    assert abs(synthetic_alpha.mean().item() - 0.55) < 5 * 0.9 / math.sqrt(12 * synthetic_alpha.numel())
    assert torch.all(real_alpha == 1.0)
    # Styles uniform over the bank (7 styles): each count within 5 standard errors of K / 7.
    counts = torch.bincount(plan.style_index, minlength=7).float()
    expected = plan.rows.numel() / 7
    assert torch.all((counts - expected).abs() < 5 * math.sqrt(expected * 6 / 7))


def test_unselected_rows_bit_identical_and_selected_rows_stylized(networks):
    stylizer = make_stylizer(networks, prob_synthetic=0.5, prob_real=0.3, seed=3)
    images, is_synthetic = random_batch()
    original = images.clone()
    stylizer.set_epoch(5)
    output, applied = stylizer(images, is_synthetic)
    assert torch.equal(images, original), "the input must not be modified"
    assert output.dtype == torch.uint8 and output.shape == images.shape

    stylizer.set_epoch(5)  # replay the plan of that call
    plan = stylizer.draw(is_synthetic)
    assert torch.equal(applied.rows, plan.rows) and torch.equal(applied.chosen, plan.chosen)
    selected = torch.zeros(len(images), dtype=torch.bool)
    selected[plan.rows] = True
    assert 0 < plan.rows.numel() < len(images)
    assert torch.equal(output[~selected], images[~selected])
    changed = (output != images).flatten(1).any(1)
    assert torch.equal(changed, selected)
    # Scatter puts each stylized image in its own row, with its own style and alpha.
    expected = stylizer.stylize(images[plan.rows], plan.style_index, plan.alpha)
    assert torch.equal(output[plan.rows], expected)
    meter = StylizerMeter(stylizer)  # the trainer's count and time of the calls
    meter.set_epoch(5)
    assert torch.equal(meter(images, is_synthetic)[0], output)
    seconds, num_stylized = meter.totals()
    assert num_stylized == plan.rows.numel() and seconds > 0


def test_chosen_samples_are_stylized_with_the_nst_probability(networks):
    """The authors' NSTTransform stylizes a chosen image with probability 0.95: every stylized sample is
    chosen, about 5 % of the chosen are not stylized, and forward reports both per sample."""
    stylizer = make_stylizer(networks, prob_synthetic=0.5, prob_real=0.2, nst_probability=0.95, seed=4)
    count = 20000
    is_synthetic = torch.arange(2 * count) < count
    plan = stylizer.draw(is_synthetic)
    assert plan.chosen.shape == (2 * count,) and plan.chosen.dtype == torch.bool
    assert torch.all(plan.chosen[plan.rows]) and torch.equal(plan.stylized & ~plan.chosen, torch.zeros_like(plan.chosen))
    for source, probability in ((is_synthetic, 0.5), (~is_synthetic, 0.2)):
        chosen = plan.chosen[source].float().mean().item()
        assert abs(chosen - probability) < 5 * math.sqrt(probability * (1 - probability) / count)
    kept = plan.stylized.sum().item() / plan.chosen.sum().item()
    assert abs(kept - 0.95) < 5 * math.sqrt(0.95 * 0.05 / plan.chosen.sum().item())
    # A chosen but unstylized sample comes back unchanged, and forward reports it as chosen.
    images, flags = random_batch(count=64, seed=5)
    stylizer.set_epoch(2)
    output, applied = stylizer(images, flags)
    spared = applied.chosen & ~applied.stylized
    stylizer.set_epoch(2)
    assert torch.equal(applied.chosen, stylizer.draw(flags).chosen)
    assert torch.equal(output[~applied.stylized], images[~applied.stylized])
    assert (output[applied.stylized] != images[applied.stylized]).flatten(1).any(1).all()
    if spared.any():
        assert torch.equal(output[spared], images[spared])
    with pytest.raises(ValueError, match="nst_probability"):
        make_stylizer(networks, nst_probability=1.5)


def test_alpha_zero_is_the_decoders_reconstruction(networks):
    encoder, decoder = networks
    stylizer = make_stylizer(networks)
    images = torch.rand(5, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    output = stylizer.stylize(images, torch.tensor([0, 1, 2, 3, 4]), torch.zeros(5))
    with torch.no_grad():
        reconstruction = decoder(encoder(images)).clamp(0, 1)
    torch.testing.assert_close(output, reconstruction, rtol=1e-5, atol=1e-5)
    full = stylizer.stylize(images, torch.tensor([0, 1, 2, 3, 4]), torch.ones(5))
    assert (full - reconstruction).abs().mean() > 1e-2, "alpha = 1 must change the image"


def test_same_seed_same_output_other_seed_other_output(networks):
    images, is_synthetic = random_batch(count=16, seed=2)
    first = make_stylizer(networks, prob_synthetic=0.5, prob_real=0.5, seed=11)
    second = make_stylizer(networks, prob_synthetic=0.5, prob_real=0.5, seed=11)
    other = make_stylizer(networks, prob_synthetic=0.5, prob_real=0.5, seed=12)
    for stylizer in (first, second, other):
        stylizer.set_epoch(1)
    assert torch.equal(first(images, is_synthetic)[0], second(images, is_synthetic)[0])
    assert not torch.equal(first.draw(is_synthetic).rows, other.draw(is_synthetic).rows)
    # Epochs differ too, and set_epoch restarts an epoch's stream.
    first.set_epoch(2)
    epoch_two = first.draw(is_synthetic)
    first.set_epoch(2)
    assert torch.equal(first.draw(is_synthetic).rows, epoch_two.rows)
    first.set_epoch(1)
    assert not torch.equal(first.draw(is_synthetic).rows, epoch_two.rows)


def test_float_input_keeps_dtype_and_range(networks):
    stylizer = make_stylizer(networks, prob_synthetic=1.0, prob_real=1.0)
    images = torch.rand(3, 3, 32, 32, dtype=torch.float64)
    output, _ = stylizer(images, torch.tensor([True, False, True]))
    assert output.dtype == torch.float64 and output.min() >= 0 and output.max() <= 1


@pytest.mark.parametrize("size, resolution, downsample", [
    (32, 64, "bilinear"),   # upsampled then resized back, as the authors' code (at 224)
    (32, 48, "area"),       # antialiased way back
    (36, None, "bilinear"), # side not divisible by 8: decoder output is resized to the input
])
def test_output_keeps_input_size(networks, size, resolution, downsample):
    stylizer = make_stylizer(networks, prob_synthetic=1.0, prob_real=1.0, resolution=resolution,
                             downsample=downsample)
    images, is_synthetic = random_batch(count=2, size=size)
    output, _ = stylizer(images, is_synthetic)
    assert output.shape == images.shape and not torch.equal(output, images)


def test_bucket_padding_does_not_change_results(networks):
    images = torch.rand(5, 3, 32, 32, generator=torch.Generator().manual_seed(4))
    style_index, alpha = torch.tensor([6, 0, 3, 3, 1]), torch.tensor([1.0, 0.5, 0.1, 0.9, 0.3])
    exact = make_stylizer(networks, bucket_size=1).stylize(images, style_index, alpha)
    stylizer = make_stylizer(networks, prob_synthetic=1.0, prob_real=1.0, bucket_size=8)
    padded = stylizer.stylize(images, style_index, alpha)
    torch.testing.assert_close(padded, exact, rtol=1e-5, atol=1e-5)
    with encoder_rows(stylizer) as rows:
        stylizer(images, torch.ones(5, dtype=torch.bool))
    assert rows == [8]


def test_nothing_selected_returns_input(networks):
    stylizer = make_stylizer(networks, prob_synthetic=0.0, prob_real=0.0)
    images, is_synthetic = random_batch(count=4)
    output, plan = stylizer(images, is_synthetic)
    assert output is images and not plan.chosen.any()


def test_bad_arguments_are_named(networks):
    images, is_synthetic = random_batch(count=4)
    stylizer = make_stylizer(networks)
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        stylizer(images[:, :1], is_synthetic)
    with pytest.raises(ValueError, match="is_synthetic must be a \\(4,\\)"):
        stylizer(images, is_synthetic[:3])
    with pytest.raises(ValueError, match="bool"):
        stylizer(images, is_synthetic.long())
    with pytest.raises(ValueError, match="uint8 or float"):
        stylizer(images.int(), is_synthetic)
    with pytest.raises(ValueError, match="prob_real"):
        make_stylizer(networks, prob_real=1.5)
    with pytest.raises(ValueError, match="alpha_synthetic"):
        make_stylizer(networks, alpha_synthetic=(0.9, 0.1))


def test_default_resolution_is_the_papers(networks):
    from fastnst.stylizer import PAPER_RESOLUTION

    encoder, decoder = networks
    assert PAPER_RESOLUTION == 224 and Stylizer(random_bank(), encoder, decoder).resolution == PAPER_RESOLUTION


def test_build_stylizer_from_files(tmp_path, networks):
    encoder, decoder = networks
    random_bank().save(tmp_path / "styles.pt")
    torch.save(encoder.state_dict(), tmp_path / "vgg.pth")
    torch.save(decoder.state_dict(), tmp_path / "decoder.pth")
    stylizer = build_stylizer(tmp_path / "styles.pt", tmp_path / "vgg.pth", tmp_path / "decoder.pth",
                              device="cpu", prob_synthetic=1.0, prob_real=0.0, seed=1, resolution=None)
    reference = make_stylizer(networks, prob_synthetic=1.0, prob_real=0.0, seed=1)
    images, is_synthetic = random_batch(count=6)
    assert torch.equal(stylizer(images, is_synthetic)[0], reference(images, is_synthetic)[0])


def test_compile_option_keeps_cpu_results(networks):
    """Compiled graphs serve CUDA only; on the CPU the same eager networks run (here forced to 64-row buckets)."""
    images, is_synthetic = random_batch(count=6)
    compiled = make_stylizer(networks, prob_synthetic=1.0, prob_real=1.0, compile=True, bucket_size=64)
    eager = make_stylizer(networks, prob_synthetic=1.0, prob_real=1.0, compile=False)
    assert not any(key.startswith("_") for key in compiled.state_dict()), "compiled wrappers add no state keys"
    with encoder_rows(compiled) as rows:
        output, _ = compiled(images, is_synthetic)
    assert compiled._compiled == {}, "no compiled wrapper is made for a CPU call"
    assert rows == [64]
    assert (output.int() - eager(images, is_synthetic)[0].int()).abs().max() <= 1  # rounding of float sums only


def test_compiled_on_cuda_and_bucketed_by_default(networks):
    """Defaults: compile=True (used on CUDA only) and CUDA_BUCKET_SIZE-row buckets on CUDA, compiled or eager;
    none on the CPU."""
    from fastnst.stylizer import CUDA_BUCKET_SIZE

    default = make_stylizer(networks)
    assert default.compile_mode is True
    for compile in (True, False):  # eager CUDA buckets too: cuDNN plans are tuned per batch size
        stylizer = make_stylizer(networks, compile=compile)
        assert stylizer.bucket_for(torch.device("cuda")) == CUDA_BUCKET_SIZE
        assert stylizer.bucket_for(torch.device("cpu")) == 1
    forced = make_stylizer(networks, bucket_size=8)  # an explicit size applies on every device
    assert forced.bucket_for(torch.device("cpu")) == forced.bucket_for(torch.device("cuda")) == 8
    images, is_synthetic = random_batch(count=6)
    with encoder_rows(default) as rows:
        _, plan = default(images, is_synthetic)
    assert rows == [plan.rows.numel()]  # CPU: no padding
    with pytest.raises(ValueError, match="bucket_size"):
        make_stylizer(networks, bucket_size=0)


def test_the_cuda_bucket_keeps_shapes_few_and_padding_small_at_the_recipe():
    """At the cifar10 preset's batch and mix, the default bucket gives at most 8 subset shapes for at most
    15 % padded rows (64-row buckets would pad about two thirds more rows)."""
    from fastnst.stylizer import CUDA_BUCKET_SIZE, bucketed_count, draw_samples
    from fastnst.train.config import load_preset

    preset = load_preset("cifar10")
    batch = preset["batch_size"]
    is_synthetic = torch.arange(batch) < int(preset["synthetic_ratio"] * batch)
    generator = torch.Generator().manual_seed(0)
    sizes = [int(draw_samples(generator, is_synthetic, preset["prob_synthetic"], preset["prob_real"],
                              preset["nst_probability"], 64).stylized.sum()) for _ in range(2000)]
    padded = [bucketed_count(size, CUDA_BUCKET_SIZE) for size in sizes]
    assert len(set(padded)) <= 8
    assert sum(padded) / sum(sizes) <= 1.15


@pytest.mark.parametrize("count, bucket, padded", [(0, 64, 0), (1, 64, 64), (64, 64, 64), (65, 64, 128),
                                                   (127, 64, 128), (5, 1, 5), (9, 8, 16)])
def test_bucketed_count(count, bucket, padded):
    from fastnst.stylizer import bucketed_count

    assert bucketed_count(count, bucket) == padded


def test_every_convolution_sees_channels_last_under_cuda_pad_behaviour(networks):
    """The Stylizer's whole path (gather, resize, encoder, AdaIN, decoder) feeds every convolution
    channels_last, with the reflection pads behaving as on CUDA (row-major output)."""
    from tests.test_fastnst_networks import CudaPadLayout

    class ConvInputLayouts(CudaPadLayout):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            if func.overloadpacket is torch.ops.aten.convolution:
                self.conv_inputs.append(args[0].is_contiguous(memory_format=torch.channels_last))
            return super().__torch_dispatch__(func, types, args, kwargs)

    stylizer = make_stylizer(networks, prob_synthetic=1.0, prob_real=1.0, resolution=48)
    images, is_synthetic = random_batch(count=3)
    mode = ConvInputLayouts()
    mode.conv_inputs = []
    with mode:
        output, _ = stylizer(images.contiguous(memory_format=torch.channels_last), is_synthetic)
    assert len(mode.conv_inputs) == 19 and all(mode.conv_inputs)  # 10 encoder + 9 decoder convolutions
    assert torch.ops.aten.reflection_pad2d not in mode.called
    assert output.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_bf16_compiled_matches_cpu(networks):
    images, is_synthetic = random_batch(count=64)
    cpu = make_stylizer(networks, prob_synthetic=0.5, prob_real=0.5)
    gpu = make_stylizer(networks, prob_synthetic=0.5, prob_real=0.5, compile=True).cuda()
    expected, _ = cpu(images, is_synthetic)
    output = gpu(images.cuda(), is_synthetic)[0].cpu()
    assert torch.equal(output == images, expected == images)  # same rows untouched
    assert (output.float() - expected.float()).abs().mean() < 8  # bf16 vs fp32, in uint8 levels
    for count in (40, 64, 100):  # other subset sizes reuse the dynamic-batch graph
        batch, flags = random_batch(count=count)
        gpu(batch.cuda(), flags)


@pytest.mark.parametrize("precision, expected", [("auto", torch.float32), ("fp32", torch.float32),
                                                 ("bf16", torch.bfloat16)])
def test_the_networks_run_in_the_precision_asked_for_on_the_cpu_too(networks, precision, expected):
    """--stylize-precision: an explicit bf16 autocast applies on the CPU as well (bench.stylize_precision measures
    it there); auto is bf16 on CUDA and float32 on the CPU."""
    from fastnst.stylizer import STYLIZE_PRECISION

    stylizer = make_stylizer(networks, autocast_dtype=STYLIZE_PRECISION[precision])
    dtypes = []
    handle = stylizer.decoder.register_forward_hook(lambda module, inputs, output: dtypes.append(output.dtype))
    try:
        images, _ = random_batch(count=4)
        out = stylizer.stylize(images, torch.arange(4), torch.ones(4))
    finally:
        handle.remove()
    assert dtypes == [expected] and out.dtype == torch.uint8
    assert stylizer.compute_dtype(torch.device("cuda")) == (torch.bfloat16 if precision != "fp32" else torch.float32)
