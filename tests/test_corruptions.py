"""The batched corruptions: contract (shape, dtype, range, device, determinism), severity
ordering, and exact agreement with the library calls the official scripts make where those
libraries are installed here (PIL; the sequential glass-blur loop; colorsys HSV), and with
straight numpy transcriptions of the official extra corruptions (tests/official_corruptions.py),
at the three official resolutions (32, 64 and ImageNet-C's 224 px) and the rule for the others."""
from __future__ import annotations

import colorsys
import io

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from fastnst.train.corruptions import ALL_CORRUPTIONS, SEVERITIES, corrupt
from fastnst.train.corruptions import _ops, blur, frost as frost_module, spatter as spatter_module
from fastnst.train.corruptions.frost import FROST_FILES
from fastnst.train.corruptions.params import PARAMS, frost_texture_scale, severity_params, table_size
from tests import official_corruptions as official

OFFICIAL_SIZES = [32, 64, 224]

RANDOM_CORRUPTIONS = {"gaussian_noise", "shot_noise", "impulse_noise", "glass_blur", "motion_blur", "snow", "frost", "fog",
                      "elastic_transform", "speckle_noise", "spatter"}
# Official tables where every parameter gets strictly harsher with severity.
MONOTONE_CORRUPTIONS = ["gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "motion_blur", "zoom_blur",
                        "snow", "fog", "brightness", "contrast", "pixelate", "jpeg_compression", "speckle_noise", "gaussian_blur"]
# Not ordered by distance in the official tables: elastic (affine jitter shrinks with severity),
# saturate (x0.3, x0.1, then x1.5 and up) and spatter (water at 1-3, mud at 4-5).
UNORDERED_CORRUPTIONS = {"elastic_transform", "saturate", "spatter"}


def smooth_images(n: int, size: int, seed: int) -> torch.Tensor:
    """Natural-ish uint8 images: a low-frequency colour field, one disc, a little noise."""
    generator = torch.Generator().manual_seed(seed)
    low = torch.rand(n, 3, 4, 4, generator=generator)
    base = F.interpolate(low, size=(size, size), mode="bicubic", align_corners=False)
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    centre = torch.rand(n, 2, 1, 1, generator=generator) * size
    radius = (0.15 + 0.2 * torch.rand(n, 1, 1, generator=generator)) * size
    disc = (((yy - centre[:, 0]) ** 2 + (xx - centre[:, 1]) ** 2) < radius**2).unsqueeze(1)
    colour = torch.rand(n, 3, 1, 1, generator=generator)
    images = torch.where(disc, colour, base) + 0.02 * torch.randn(n, 3, size, size, generator=generator)
    return (images.clamp(0, 1) * 255).round().to(torch.uint8)


def mean_distance(corrupted: torch.Tensor, clean: torch.Tensor) -> float:
    return (corrupted.float() - clean.float()).abs().mean().item()


@pytest.fixture(autouse=True)
def no_frost_dir(monkeypatch):
    monkeypatch.delenv(frost_module.FROST_DIR_ENV, raising=False)


@pytest.mark.filterwarnings("ignore:frost")
@pytest.mark.parametrize("image_size", [32, 64])
@pytest.mark.parametrize("name", ALL_CORRUPTIONS)
def test_every_severity_keeps_contract_and_is_seeded(name, image_size):
    clean = smooth_images(4, image_size, seed=1)
    before = clean.clone()
    for severity in SEVERITIES:
        first = corrupt(clean, name, severity, image_size=image_size, generator=torch.Generator().manual_seed(7))
        again = corrupt(clean, name, severity, image_size=image_size, generator=torch.Generator().manual_seed(7))
        assert first.shape == clean.shape and first.dtype == torch.uint8 and first.device == clean.device
        assert torch.equal(first, again), f"{name} severity {severity} not deterministic under a seed"
        assert mean_distance(first, clean) > 0.3, f"{name} severity {severity} left the images (almost) unchanged"
        if name in RANDOM_CORRUPTIONS:
            other = corrupt(clean, name, severity, image_size=image_size, generator=torch.Generator().manual_seed(8))
            assert not torch.equal(first, other), f"{name} ignores its generator"
    assert torch.equal(clean, before), "corrupt() modified its input"


@pytest.mark.filterwarnings("ignore:frost")
@pytest.mark.parametrize("image_size", [32, 64])
def test_distance_from_clean_grows_with_severity(image_size):
    """Property: the batch-mean absolute difference from the clean image (uint8 levels)
    is non-decreasing from severity 1 to 5 (0.25-level slack for sampling noise) for every
    corruption whose official parameters all get harsher, and larger at severity 5 than 1 for
    glass blur and frost. Elastic is exempt: its official table shrinks the affine jitter
    (8% -> 3% of the side) while the displacement grows, so its pixel distance falls; so are
    saturate and spatter (see UNORDERED_CORRUPTIONS)."""
    clean = smooth_images(16, image_size, seed=2)
    for name in ALL_CORRUPTIONS:
        if name in UNORDERED_CORRUPTIONS:
            continue
        distances = [mean_distance(corrupt(clean, name, s, generator=torch.Generator().manual_seed(s)), clean) for s in SEVERITIES]
        assert distances[-1] > distances[0], f"{name}: {distances}"
        if name in MONOTONE_CORRUPTIONS:
            steps = np.diff(distances)
            assert (steps > -0.25).all(), f"{name} distance not increasing with severity: {distances}"


def sequential_glass_shuffle(pixels: np.ndarray, offsets: np.ndarray, max_delta: int) -> np.ndarray:
    """The official per-image loop on an HxWx3 numpy array (whose 'swap' line copies)."""
    height, width = pixels.shape[:2]
    pixels = pixels.copy()
    for h in range(height - max_delta, max_delta, -1):
        for w in range(width - max_delta, max_delta, -1):
            dx, dy = offsets[0, h, w], offsets[1, h, w]
            h_prime, w_prime = h + dy, w + dx
            pixels[h, w], pixels[h_prime, w_prime] = pixels[h_prime, w_prime], pixels[h, w]
    return pixels


@pytest.mark.parametrize("max_delta", [1, 2])
def test_glass_shuffle_matches_the_sequential_loop(max_delta):
    images = torch.randint(0, 256, (3, 3, 16, 16), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    batched = blur._shuffle_pixels(images, max_delta, 1, torch.Generator().manual_seed(5))
    # redraw the same offsets the batched version drew
    offsets = torch.randint(-max_delta, max_delta, (3, 2, 16, 16), generator=torch.Generator().manual_seed(5)).numpy()
    for index in range(3):
        expected = sequential_glass_shuffle(images[index].permute(1, 2, 0).numpy(), offsets[index], max_delta)
        np.testing.assert_array_equal(batched[index].permute(1, 2, 0).numpy(), expected)


@pytest.mark.parametrize("image_size", OFFICIAL_SIZES)
@pytest.mark.parametrize("severity", SEVERITIES)
def test_pixelate_equals_pil_box_resizes(image_size, severity):
    from fastnst.train.corruptions.params import PARAMS

    factor = PARAMS[image_size]["pixelate"][severity - 1]
    clean = smooth_images(3, image_size, seed=3)
    ours = corrupt(clean, "pixelate", severity)
    for index in range(3):
        image = Image.fromarray(clean[index].permute(1, 2, 0).numpy())
        small = image.resize((int(image_size * factor), int(image_size * factor)), Image.BOX)
        expected = np.asarray(small.resize((image_size, image_size), Image.BOX))
        difference = np.abs(ours[index].permute(1, 2, 0).numpy().astype(int) - expected.astype(int))
        assert difference.max() <= 1 and difference.mean() < 0.05  # PIL's fixed-point taps round a few values the other way


@pytest.mark.parametrize("image_size", OFFICIAL_SIZES)
def test_jpeg_close_to_pil(image_size):
    clean = smooth_images(3, image_size, seed=4)
    ours = corrupt(clean, "jpeg_compression", 5)  # quality 40 (32 px), 25 (64 px), 7 (224 px)
    for index in range(3):
        buffer = io.BytesIO()
        Image.fromarray(clean[index].permute(1, 2, 0).numpy()).save(buffer, "JPEG",
                                                                     quality=PARAMS[image_size]["jpeg_compression"][4])
        expected = np.asarray(Image.open(buffer)).astype(int)
        assert np.abs(ours[index].permute(1, 2, 0).numpy().astype(int) - expected).mean() < 1.0


def test_brightness_equals_hsv_round_trip():
    clean = torch.randint(0, 256, (2, 3, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(6))
    clean[0, :, 0, 0] = 0  # black pixel: hue and saturation undefined
    clean[0, :, 0, 1] = 90  # grey pixel
    from fastnst.train.corruptions.digital import brightness

    ours = brightness(clean, 0.15)
    unit = clean.permute(0, 2, 3, 1).reshape(-1, 3).double() / 255
    expected = []
    for red, green, blue in unit.tolist():
        hue, saturation, value = colorsys.rgb_to_hsv(red, green, blue)
        expected.append(colorsys.hsv_to_rgb(hue, saturation, min(value + 0.15, 1.0)))
    expected = (torch.tensor(expected).clamp(0, 1) * 255).to(torch.uint8)
    difference = (ours.permute(0, 2, 3, 1).reshape(-1, 3).int() - expected.int()).abs()
    assert difference.max() <= 1  # truncation of values a float epsilon either side of an integer


def test_motion_blur_kernel_is_imagemagick_one_sided_gaussian():
    # a single bright pixel, angle 0: ImageMagick sums pixels at x + i, so the streak runs to the left
    image = torch.zeros(1, 1, 9, 21)
    image[0, 0, 4, 15] = 1.0
    radius, sigma = 3, 1.5
    blurred = _ops.motion_blur(image, radius, sigma, torch.zeros(1, dtype=torch.float64))
    taps = torch.exp(-torch.arange(7.0) ** 2 / (2 * sigma**2))
    taps = taps / taps.sum()
    torch.testing.assert_close(blurred[0, 0, 4, 9:16], taps.flip(0))
    assert blurred[0, 0, [0, 1, 2, 3, 5, 6, 7, 8]].abs().max() == 0


def test_clipped_zoom_matrix_identity_and_rows_average():
    identity = _ops.clipped_zoom_matrix(32, 1.0, "cpu")
    torch.testing.assert_close(identity, torch.eye(32))
    zoomed = _ops.clipped_zoom_matrix(32, 1.26, "cpu")
    torch.testing.assert_close(zoomed.sum(dim=1), torch.ones(32))
    assert (zoomed >= 0).all()


def test_plasma_fractal_is_normalized_per_sample():
    maps = _ops.plasma_fractal(5, 32, 2.0, torch.Generator().manual_seed(0), "cpu")
    assert maps.shape == (5, 32, 32)
    torch.testing.assert_close(maps.amin(dim=(1, 2)), torch.zeros(5))
    torch.testing.assert_close(maps.amax(dim=(1, 2)), torch.ones(5))
    assert not torch.equal(maps[0], maps[1])


def test_official_frost_textures_are_used(tmp_path, monkeypatch):
    # five constant-colour "textures" in the official file names and formats
    colours = [(250, 0, 0), (0, 250, 0), (0, 0, 250), (250, 250, 0), (0, 250, 250)]
    for name, colour in zip(FROST_FILES, colours):
        Image.new("RGB", (240, 200), colour).save(tmp_path / name, quality=100)
    monkeypatch.setenv(frost_module.FROST_DIR_ENV, str(tmp_path))
    clean = smooth_images(16, 32, seed=5)
    out = corrupt(clean, "frost", 2, generator=torch.Generator().manual_seed(0))  # (1, 0.3)
    candidates = torch.stack([(clean.float() + 0.3 * torch.tensor(c).view(1, 3, 1, 1)).clamp(0, 255).to(torch.uint8) for c in colours])
    matches = (candidates.int() - out.int()).abs().amax(dim=(2, 3, 4)) <= 3  # JPEG of a flat colour is within a few levels
    assert matches.any(dim=0).all(), "every image must be blended with one of the official textures"
    assert matches.sum(dim=1).gt(0).sum() >= 2, "textures should be drawn per sample"


def test_frost_textures_smaller_than_the_images_are_a_clear_error(tmp_path):
    for name in FROST_FILES:
        Image.new("RGB", (100, 90)).save(tmp_path / name)
    with pytest.raises(ValueError, match="frost texture frost.* is 30x27 px after scaling by 0.3, not larger than the 64"):
        corrupt(smooth_images(1, 64, 0), "frost", 1, frost_dir=tmp_path)


def test_frost_dir_missing_files_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="frost1.png"):
        corrupt(smooth_images(1, 32, 0), "frost", 1, frost_dir=tmp_path)


def test_procedural_frost_warns():
    frost_module._warned = False
    with pytest.warns(UserWarning, match="stand-in"):
        corrupt(smooth_images(2, 32, 0), "frost", 1)


def _hwc(images: torch.Tensor) -> np.ndarray:
    return images.permute(0, 2, 3, 1).numpy()


@pytest.mark.parametrize("image_size", OFFICIAL_SIZES)
def test_speckle_noise_equals_the_official_function_on_the_same_draws(image_size):
    clean = smooth_images(3, image_size, seed=10)
    for severity in (1, 5):
        ours = corrupt(clean, "speckle_noise", severity, generator=torch.Generator().manual_seed(severity))
        # the batched version draws one standard normal per value first: redraw it
        normal = torch.randn(clean.shape, generator=torch.Generator().manual_seed(severity)).permute(0, 2, 3, 1).double().numpy()
        std = PARAMS[image_size]["speckle_noise"][severity - 1]
        for index, image in enumerate(_hwc(clean)):
            expected = official.to_uint8(official.speckle_noise(image, std, normal[index]))
            difference = np.abs(_hwc(ours)[index].astype(int) - expected.astype(int))
            assert difference.max() <= 1 and difference.mean() < 0.01  # float32 noise in ours, float64 there


@pytest.mark.parametrize("name", ["gaussian_blur", "saturate"])
@pytest.mark.parametrize("image_size", OFFICIAL_SIZES)
def test_deterministic_extras_equal_the_official_functions(name, image_size):
    clean = smooth_images(3, image_size, seed=11)
    clean[0, :, :4, :4] = 128  # grey pixels: hue 0 in skimage, so saturate's offset turns them red
    clean[0, :, 4:8, :4] = 0
    function = getattr(official, name)
    for severity in SEVERITIES:
        ours = _hwc(corrupt(clean, name, severity))
        expected = np.stack([official.to_uint8(function(image, PARAMS[image_size][name][severity - 1])) for image in _hwc(clean)])
        difference = np.abs(ours.astype(int) - expected.astype(int))
        if name == "saturate":  # skimage's HSV formulas, operation for operation: identical
            np.testing.assert_array_equal(ours, expected, err_msg=f"{name} severity {severity}")
        else:  # a float64 blur summed in another order: a value a hair under a level boundary truncates down
            assert difference.max() <= 1 and difference.mean() < 0.005, f"{name} severity {severity}"


def test_spatter_opencv_steps_equal_the_sequential_opencv_code():
    rng = np.random.default_rng(0)
    liquid = official.gaussian_filter(rng.normal(0.65, 0.3, (3, 32, 32)).transpose(1, 2, 0), 1.0).transpose(2, 0, 1)
    liquid = np.where(liquid < 0.62, 0, liquid)
    liquid_u8 = (liquid * 255).astype(np.uint8)
    batch = torch.from_numpy(liquid_u8)
    edges = spatter_module.canny(batch, 50, 150)
    distances = spatter_module.distance_to_zero(torch.where(edges, 0, 255).to(torch.uint8))
    for index in range(3):
        expected_edges = official.canny(liquid_u8[index], 50, 150)
        assert expected_edges.any() and not expected_edges.all()
        np.testing.assert_array_equal(edges[index].numpy(), expected_edges > 0)
        np.testing.assert_array_equal(distances[index].numpy(), official.distance_transform(255 - expected_edges))
    levels = torch.randint(0, 21, (2, 16, 16), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    kernel = np.array([[-2, -1, 0], [-1, 1, 1], [0, 1, 2]])
    for index in range(2):
        image = levels[index].numpy()
        equalized = official.equalize_hist(image)
        np.testing.assert_array_equal(spatter_module.equalize_hist(levels)[index].numpy(), equalized)
        np.testing.assert_array_equal(spatter_module.emboss_uint8(torch.from_numpy(equalized)[None])[0].numpy(),
                                      official.filter2d_uint8(equalized, kernel))
        np.testing.assert_array_equal(spatter_module.box_blur3_uint8(torch.from_numpy(equalized)[None])[0].numpy(),
                                      official.blur3(equalized))
    constant = torch.full((1, 8, 8), 7, dtype=torch.uint8)
    assert torch.equal(spatter_module.equalize_hist(constant), constant)


@pytest.mark.parametrize("image_size, count", [(32, 2), (64, 2), (224, 1)])  # the sequential OpenCV code is slow at 224
def test_spatter_equals_the_official_function_on_the_same_liquid(image_size, count):
    """Water (severities 1-3, the OpenCV chain) and mud (4-5) on the same liquid layers."""
    clean = smooth_images(count, image_size, seed=12)
    for severity in SEVERITIES:
        params = PARAMS[image_size]["spatter"][severity - 1]
        ours = corrupt(clean, "spatter", severity, generator=torch.Generator().manual_seed(severity))
        liquid = params[0] + params[1] * torch.randn(count, image_size, image_size, dtype=torch.float64,
                                                     generator=torch.Generator().manual_seed(severity))
        for index, image in enumerate(_hwc(clean)):
            expected = official.to_uint8(official.spatter(image, params, liquid[index].numpy().copy()))
            difference = np.abs(_hwc(ours)[index].astype(int) - expected.astype(int))
            # water: identical; mud: a float32 blur summed in another order may cross 0.8 or a level
            assert difference.max() <= (0 if params[5] == 0 else 1) and difference.mean() < 0.01, f"severity {severity}"
            assert np.abs(expected.astype(int) - image.astype(int)).mean() > 0.05  # the layer did something


@pytest.mark.filterwarnings("ignore:frost")
def test_imagenet_size_keeps_the_contract():
    """224 px (ImageNet-C's tables): every corruption at its mildest and harshest severity, seeded."""
    clean = smooth_images(1, 224, seed=1)
    for name in ALL_CORRUPTIONS:
        for severity in (1, 5):
            first = corrupt(clean, name, severity, generator=torch.Generator().manual_seed(7))
            assert first.shape == clean.shape and first.dtype == torch.uint8
            assert mean_distance(first, clean) > 0.3, f"{name} severity {severity} left the image (almost) unchanged"
        if name in {"fog", "elastic_transform", "frost"}:  # the size-dependent ones: seeded too
            assert torch.equal(first, corrupt(clean, name, 5, generator=torch.Generator().manual_seed(7)))


def test_an_image_size_takes_the_nearest_official_table():
    """32, 64, 224 px: their own tables, values as written. Others: the nearest by ratio, and only what the
    scripts tie to the side follows it: elastic's IMSIZE multiples and frost's texture scale."""
    assert [table_size(size) for size in (8, 32, 45, 46, 64, 96, 119, 120, 160, 224, 299, 512)] == \
        [32, 32, 32, 64, 64, 64, 64, 224, 224, 224, 224, 224]
    for size in (32, 64, 224):
        for name, severities in PARAMS[size].items():
            assert [severity_params(name, s, size) for s in SEVERITIES] == severities
    assert severity_params("defocus_blur", 5, 96) == PARAMS[64]["defocus_blur"][4]
    assert severity_params("elastic_transform", 2, 96) == pytest.approx(tuple(v * 1.5 for v in PARAMS[64]["elastic_transform"][1]))
    assert severity_params("elastic_transform", 1, 224) == (488, 244 * 0.7, 244 * 0.1)  # make_imagenet_c.py's 244, as written
    assert [frost_texture_scale(size) for size in (32, 64, 224)] == [0.2, 0.3, 1.0]
    assert frost_texture_scale(96) == pytest.approx(0.45) and frost_texture_scale(448) == pytest.approx(2.0)


def test_fog_crops_its_haze_from_the_next_power_of_two_map():
    """make_imagenet_c.py: plasma_fractal(mapsize=256)[:224, :224]; other sizes likewise."""
    from fastnst.train.corruptions.weather import fog

    for size, mapsize in ((32, 32), (48, 64), (224, 256)):
        clean = smooth_images(2, size, seed=3)
        strength, decay = PARAMS[table_size(size)]["fog"][2]
        ours = fog(clean, strength, decay, generator=torch.Generator().manual_seed(1))
        haze = _ops.plasma_fractal(2, mapsize, decay, torch.Generator().manual_seed(1), "cpu")[:, None, :size, :size]
        unit = clean.float() / 255
        peak = unit.amax(dim=(1, 2, 3), keepdim=True)
        expected = _ops.to_uint8((unit + strength * haze) * peak / (peak + strength))
        assert torch.equal(ours, expected)


@pytest.mark.parametrize(
    "images, name, severity, message",
    [
        (torch.zeros(2, 3, 32, 32), "fog", 1, "uint8"),
        (torch.zeros(2, 32, 32, 3, dtype=torch.uint8), "fog", 1, "N, 3, H, W"),
        (torch.zeros(2, 3, 32, 32, dtype=torch.uint8), "rain", 1, "unknown corruption 'rain'"),
        (torch.zeros(2, 3, 32, 32, dtype=torch.uint8), "fog", 6, "severity must be 1..5"),
        (torch.zeros(2, 3, 4, 4, dtype=torch.uint8), "fog", 1, "at least 8 px"),
    ],
)
def test_bad_input_is_a_clear_error(images, name, severity, message):
    with pytest.raises(ValueError, match=message):
        corrupt(images, name, severity)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.filterwarnings("ignore:frost")
@pytest.mark.parametrize("name", ALL_CORRUPTIONS)
def test_cuda_matches_cpu(name):
    """Same code on the GPU: deterministic corruptions agree with the CPU within float
    rounding (JPEG: nvJPEG vs libjpeg); random ones keep the contract and their strength."""
    clean = smooth_images(8, 32, seed=9)
    on_cpu = corrupt(clean, name, 3, generator=torch.Generator().manual_seed(0))
    on_gpu = corrupt(clean.cuda(), name, 3, generator=torch.Generator(device="cuda").manual_seed(0))
    assert on_gpu.is_cuda and on_gpu.dtype == torch.uint8 and on_gpu.shape == clean.shape
    if name in RANDOM_CORRUPTIONS:
        cpu_distance, gpu_distance = mean_distance(on_cpu, clean), mean_distance(on_gpu.cpu(), clean)
        assert abs(cpu_distance - gpu_distance) < 0.25 * cpu_distance + 1
    else:
        assert (on_cpu.int() - on_gpu.cpu().int()).abs().float().mean() < (1.5 if name == "jpeg_compression" else 0.05)
