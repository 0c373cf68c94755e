"""The authors' noise injection, batched on the device: input p-norm noise and NoisyMix-style feature noise.

Both follow github.com/Georgsiedel/model-based-data-augmentation at commit 07e47c1 (``experiments/noise.py``,
``experiments/models/ct_model.py``); line numbers below refer to it. Each noise is split in two:
``draw(...)`` takes every random number a batch needs in a few tensor calls on the device (no Python loop over
groups or samples, no host sync), and ``apply(x, draw)`` is a pure function of the input and those numbers.
The split is what lets the tests feed the very same numbers to a verbatim transcription of the authors' code.

**Input p-norm noise** (``noise.py:176-295``, called from ``ct_model.py:117-122``). It acts on the normalised
batch, in [0, 1] pixel units: ``x + delta / std`` clamped to the normalised image range, which is
``clamp(pixel + delta, 0, 1)``. The batch is cut into consecutive groups of ``group_size`` images (the last
one may be shorter, ``noise.py:196-198``); for each group:

- one noise type, uniformly among the configured ones (``random.sample(k=1)``, ``noise.py:201``);
- eps = U(0, 1) * eps_max, a draw of exactly 0 counting as 1 (``noise.py:205-216``);
- sparsity s = U(0, 1) * ``sparsity`` (``noise.py:217``): each noise element is dropped with probability s;
- one rectangle, the same for the group's images and channels, of area U(patch_scale) of the image and aspect
  ratio exp(U(log 0.3, log 3.3)), shrunk to fit, placed uniformly; the noise applies only inside it
  (``noise.py:13-46, 220-223``).

The types (``sample_lp_corr_batch``, ``noise.py:227-295``; all with ``sphere=False``, i.e. inside the ball):

- ``uniform-linf``: delta = (U - 0.5) * 2 eps, independent per element and image (``:230-236``);
- ``uniform-lP`` for P > 0: one vector per group, shared by its images, uniform in the Lp ball of radius eps
  (Calafiore 1998): u = Gamma(1/P, 1)^(1/P) with random signs, scaled to norm eps * U^(1/d) (``:264-279``);
- ``uniform-l0-impulse``: per image, int(d * eps) element positions drawn with replacement (d = C*H*W) are
  replaced by U[0, 1) values, minus the sparsity-dropped ones; no clamp (``:239-262``);
- ``gaussian``: delta = eps * N(0, 1) per element and image (``:237-238``).

Each type is one ``NoiseCondition`` of the authors' lists: ``sphere`` puts the noise on the norm ball's surface
(L-inf: +-eps, Lp: radius 1, impulse: values 0 or 1, ``:231-234, 251-252, 274-275``), ``distribution`` "max"
takes eps = eps_max instead of U(0, 1) * eps_max (``:209-210``). Training uses the configs' ``train_corruptions``
(sphere False, uniform); ``EVALUATION_NOISE`` is their test set, ``test_corruptions``, reported as Combined_Noise.

**Feature noise** (``ct_model.py:138-166`` -> ``noise.py:79-110`` with add 0.5, mult 0.5, sparsity 0.65,
l0 0). Per batch: s = U(0, 1) * 0.65, b1, b2 ~ Beta(2, 5); per element
``h' = M * h + A`` with ``A = 0.5 b1 N(0, 1)`` (0 where U < s) and ``M = 1 + 0.5 b2 (2U - 1)`` (1 where U < s).
The authors pass ``manifold['noise_factor']`` down to this function but never read it (``ct_model.py:81``).

Deviations, on purpose: the random numbers are float32 (feature noise: the feature map's dtype) where the
authors draw float16; one draw per group over the whole batch at once instead of the authors' loop; the RNG
streams differ (torch's device generator instead of python ``random``, numpy and torch CPU/CUDA).
"""
from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

import torch

INPUT_NOISE_GROUP = 8       # configs/config549.py:17 (minibatchsize)
DISTRIBUTIONS = ("uniform", "max")  # noise.py:205-210 (their 'beta2-5' is in no config here)
PATCH_ASPECT_RATIO = (0.3, 3.3)  # noise.py:221 (ratio=[0.3, 3.3])
FEATURE_ADD_LEVEL = 0.5     # ct_model.py:162
FEATURE_MULT_LEVEL = 0.5    # ct_model.py:163
FEATURE_SPARSITY = 0.65     # ct_model.py:164
FEATURE_BETA = (2.0, 5.0)   # noise.py:86, 97 (np.random.beta(2, 5))

_LP = re.compile(r"uniform-l(\d+\.?\d*)$")
KINDS = ("linf", "lp", "impulse", "gaussian")


def noise_kind(name: str) -> tuple[str, float]:
    """("linf" | "lp" | "impulse" | "gaussian", p) of a noise type name as the authors' configs spell it."""
    if name == "uniform-linf":
        return "linf", math.inf
    if name == "uniform-l0-impulse":
        return "impulse", 0.0
    if name == "gaussian":
        return "gaussian", 0.0
    match = _LP.match(name)
    if match and float(match.group(1)) > 0:
        return "lp", float(match.group(1))
    raise ValueError(f"unknown input noise type {name!r}; expected uniform-linf, uniform-lP (P > 0), "
                     "uniform-l0-impulse or gaussian")


@dataclass(frozen=True)
class NoiseCondition:
    """One entry of the authors' noise lists, e.g. ``{'noise_type': 'uniform-l2', 'epsilon': 5.0, 'sphere': False,
    'distribution': 'uniform'}`` (``configs/config549.py:5-9, 56-107``)."""
    noise_type: str
    epsilon: float
    sphere: bool = False            # on the norm ball's surface, not inside it
    distribution: str = "uniform"   # eps = U(0, 1) * epsilon; "max": eps = epsilon

    def __post_init__(self):
        noise_kind(self.noise_type)
        if self.distribution not in DISTRIBUTIONS:
            raise ValueError(f"noise distribution must be one of {', '.join(DISTRIBUTIONS)}, got {self.distribution!r}")


@dataclass
class PnormNoiseDraw:
    """Every random number one batch of input noise needs (G groups, B images, C x H x W)."""
    kind: torch.Tensor             # (G,) int64: index into the noise conditions
    eps_fraction: torch.Tensor     # (G,) U[0, 1); 0 is replaced by 1 (by 1 always for 'max' conditions)
    sparsity: torch.Tensor         # (G,) U[0, 1) * sparsity
    gamma: torch.Tensor            # (G, C, H, W) Gamma(1/p, 1) with the group's p (1 for non-Lp groups)
    sign_uniform: torch.Tensor     # (G, C, H, W) U[0, 1): the sign is sign(U - 0.5)
    radius_uniform: torch.Tensor   # (G,) U[0, 1): radius eps * U^(1/d)
    linf_uniform: torch.Tensor     # (B, C, H, W) U[0, 1)
    sparse_uniform: torch.Tensor   # (B, C, H, W) U[0, 1): element dropped where < sparsity
    impulse_index: torch.Tensor    # (B, K) int64 flat positions in [0, d); the first int(d * eps) count
    impulse_value: torch.Tensor    # (B, C, H, W) U[0, 1); on the sphere: 0 below 0.5, else 1
    patch_area: torch.Tensor       # (G,) U(patch_scale)
    patch_log_ratio: torch.Tensor  # (G,) U(log 0.3, log 3.3)
    patch_top: torch.Tensor        # (G,) U[0, 1): row = floor(U * (H - h + 1))
    patch_left: torch.Tensor       # (G,) U[0, 1)
    normal: torch.Tensor | None = None  # (B, C, H, W) N(0, 1), drawn when a condition is gaussian


class PnormNoise:
    """Input p-norm noise of the authors' configs, e.g. ``PnormNoise({"uniform-linf": 0.1, ...}, mean, std)``.

    ``epsilons``: noise type -> eps_max, in [0, 1] pixel units (``configs/config549.py:5-9``), or a sequence of
    ``NoiseCondition`` (a type may then come more than once); each group draws one of them uniformly.
    ``mean``, ``std``: the per-channel normalisation of the batches it gets (pixel scale [0, 1]).
    """

    def __init__(self, epsilons: dict[str, float] | Sequence[NoiseCondition], mean, std, *,
                 group_size: int = INPUT_NOISE_GROUP, sparsity: float = 1.0, patch_scale=(0.2, 0.7)):
        if not epsilons:
            raise ValueError("input noise needs at least one noise type")
        if group_size < 1:
            raise ValueError(f"noise group size must be >= 1, got {group_size}")
        low, high = patch_scale
        if not 0.0 < low <= high <= 1.0:
            raise ValueError(f"noise patch scale must be 0 < LOW <= HIGH <= 1, got {patch_scale}")
        conditions = ([NoiseCondition(name, eps) for name, eps in epsilons.items()] if isinstance(epsilons, dict)
                      else list(epsilons))
        self.names = tuple(condition.noise_type for condition in conditions)
        self.kinds = [noise_kind(name) for name in self.names]
        self.eps_max = tuple(float(condition.epsilon) for condition in conditions)
        self.on_sphere = tuple(bool(condition.sphere) for condition in conditions)
        self.fixed_eps = tuple(condition.distribution == "max" for condition in conditions)
        self.mean, self.std = tuple(float(m) for m in mean), tuple(float(s) for s in std)
        self.group_size, self.sparsity, self.patch_scale = group_size, float(sparsity), (float(low), float(high))

    def _per_type(self, values, device, dtype=torch.float32) -> torch.Tensor:
        return torch.tensor(values, device=device, dtype=dtype)

    def draw(self, shape, device) -> PnormNoiseDraw:
        batch, channels, height, width = shape
        groups = -(-batch // self.group_size)
        dims = channels * height * width
        kind = torch.randint(len(self.names), (groups,), device=device)
        p = self._per_type([p if k == "lp" else 1.0 for k, p in self.kinds], device)[kind]
        concentration = (1.0 / p).view(groups, 1, 1, 1).expand(groups, channels, height, width)
        impulse_eps = max([eps for (k, _), eps in zip(self.kinds, self.eps_max) if k == "impulse"], default=0.0)
        uniform = lambda *size: torch.rand(size, device=device)  # noqa: E731
        log_low, log_high = (math.log(r) for r in PATCH_ASPECT_RATIO)
        return PnormNoiseDraw(
            kind=kind,
            eps_fraction=uniform(groups),
            sparsity=uniform(groups) * self.sparsity,
            gamma=torch.distributions.Gamma(concentration, torch.ones_like(concentration)).sample(),
            sign_uniform=uniform(groups, channels, height, width),
            radius_uniform=uniform(groups),
            linf_uniform=uniform(batch, channels, height, width),
            sparse_uniform=uniform(batch, channels, height, width),
            impulse_index=torch.randint(dims, (batch, int(dims * impulse_eps)), device=device),
            impulse_value=uniform(batch, channels, height, width),
            patch_area=torch.empty(groups, device=device).uniform_(*self.patch_scale),
            patch_log_ratio=torch.empty(groups, device=device).uniform_(log_low, log_high),
            patch_top=uniform(groups),
            patch_left=uniform(groups),
            normal=torch.randn(shape, device=device) if any(k == "gaussian" for k, _ in self.kinds) else None,
        )

    def patch_boxes(self, draw: PnormNoiseDraw, height: int, width: int):
        """(top, left, h, w) per group, int64 (G,) each, as ``random_erasing_style_mask`` sizes them (``noise.py:30-42``)."""
        area = height * width
        patched = area * draw.patch_area.double()
        aspect = torch.exp(draw.patch_log_ratio).double()
        h = torch.round(torch.sqrt(patched * aspect))
        w = torch.round(torch.sqrt(patched / aspect))
        too_tall = h > height  # crop to the image and keep the area ratio (noise.py:35-37), then the width (:38-40)
        h = torch.where(too_tall, float(height), h)
        w = torch.where(too_tall, torch.round(width * patched / area), w)
        too_wide = w > width
        w = torch.where(too_wide, float(width), w)
        h = torch.where(too_wide, torch.round(height * patched / area), h)
        top = torch.floor(draw.patch_top.double() * (height - h + 1))
        left = torch.floor(draw.patch_left.double() * (width - w + 1))
        return top.long(), left.long(), h.long(), w.long()

    def apply(self, x: torch.Tensor, draw: PnormNoiseDraw) -> torch.Tensor:
        batch, channels, height, width = x.shape
        dims = channels * height * width
        device = x.device
        group = torch.arange(batch, device=device) // self.group_size
        kind_codes = self._per_type([KINDS.index(k) for k, _ in self.kinds], device, torch.int64)
        code = kind_codes[draw.kind]                       # (G,) 0 linf, 1 lp, 2 impulse, 3 gaussian
        fixed = self._per_type(self.fixed_eps, device, torch.bool)[draw.kind]
        sphere = self._per_type(self.on_sphere, device, torch.bool)[draw.kind].view(-1, 1, 1, 1)
        eps_fraction = torch.where((draw.eps_fraction == 0) | fixed, 1.0, draw.eps_fraction)
        eps = eps_fraction.double() * self._per_type(self.eps_max, device, torch.float64)[draw.kind]  # (G,)
        sample_eps = eps.float()[group].view(-1, 1, 1, 1)
        sample_sphere = sphere[group]

        # Lp ball: one vector per group (noise.py:266-279).
        p = self._per_type([p if k == "lp" else 1.0 for k, p in self.kinds], device)[draw.kind].view(-1, 1, 1, 1)
        u = draw.gamma ** (1.0 / p)
        sign = torch.sign(draw.sign_uniform - 0.5)
        norm = (u.abs() ** p).sum(dim=(1, 2, 3), keepdim=True) ** (1.0 / p)
        radius = torch.where(sphere, 1.0, draw.radius_uniform.view(-1, 1, 1, 1) ** (1.0 / dims))
        lp_delta = eps.float().view(-1, 1, 1, 1) * radius * u * sign / norm
        linf_unit = torch.where(sample_sphere, torch.where(draw.linf_uniform < 0.5, -1.0, 1.0),
                                (draw.linf_uniform - 0.5) * 2)
        sample_code = code[group].view(-1, 1, 1, 1)
        delta = torch.where(sample_code == 0, linf_unit * sample_eps, lp_delta[group] * (sample_code == 1))
        if draw.normal is not None:
            delta = torch.where(sample_code == 3, draw.normal * sample_eps, delta)
        dropped = draw.sparse_uniform < draw.sparsity[group].view(-1, 1, 1, 1)
        delta = torch.where(dropped, 0.0, delta)
        mean = torch.tensor(self.mean, device=device, dtype=x.dtype).view(1, -1, 1, 1)
        std = torch.tensor(self.std, device=device, dtype=x.dtype).view(1, -1, 1, 1)
        added = torch.clamp(x + delta / std, (0 - mean) / std, (1 - mean) / std)

        # Impulse: int(d * eps) positions per image, with replacement (noise.py:239-262); the rest point at a
        # spare column that is dropped, so that repeated positions never race in the scatter.
        count = torch.floor(dims * eps).long()[group]      # (B,) == int(num_dimensions * epsilon) for eps >= 0
        used = torch.arange(draw.impulse_index.shape[1], device=device) < count.view(-1, 1)
        index = torch.where(used, draw.impulse_index, dims)
        hit = torch.zeros(batch, dims + 1, dtype=torch.bool, device=device).scatter_(1, index, True)
        hit = hit[:, :dims].view(batch, channels, height, width) & ~dropped
        impulse_value = torch.where(sample_sphere, torch.floor(draw.impulse_value * 2), draw.impulse_value)
        impulse = torch.where(hit, (impulse_value - mean) / std, x)
        noisy = torch.where(sample_code == 2, impulse, added)

        if self.patch_scale != (1.0, 1.0):  # else the whole image (noise.py:22-23)
            top, left, h, w = (t[group].view(-1, 1, 1, 1) for t in self.patch_boxes(draw, height, width))
            rows = torch.arange(height, device=device).view(1, 1, -1, 1)
            cols = torch.arange(width, device=device).view(1, 1, 1, -1)
            inside = (rows >= top) & (rows < top + h) & (cols >= left) & (cols < left + w)
            noisy = torch.where(inside, noisy, x)
        if x.is_contiguous(memory_format=torch.channels_last):  # keep the layout the classifier runs in
            noisy = noisy.contiguous(memory_format=torch.channels_last)
        return noisy

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.apply(x, self.draw(x.shape, x.device))


# The authors' Lp-noise test set, ``test_corruptions`` of configs/config549.py:56-107 (config550.py:57-108 and
# config551.py:56-107 are the same lines): (noise type, eps values, sphere), every entry with distribution 'max'.
_EVALUATION_NOISE = (
    ("uniform-l0-impulse", (0.01, 0.02, 0.05, 0.1, 0.2), True),
    ("uniform-l0.5", (50000.0, 100000.0, 200000.0, 300000.0, 500000.0), False),
    ("uniform-l1", (25.0, 50.0, 100.0, 200.0, 300.0), False),
    ("uniform-l2", (0.5, 1.0, 2.0, 3.0, 5.0), False),
    ("uniform-l5", (0.05, 0.1, 0.2, 0.4, 0.8), False),
    ("uniform-l10", (0.02, 0.05, 0.1, 0.2, 0.4), False),
    ("uniform-l50", (0.02, 0.05, 0.1, 0.15, 0.2), False),
    ("uniform-l200", (0.02, 0.04, 0.08, 0.12, 0.2), False),
    ("uniform-linf", (0.01, 0.02, 0.05, 0.1, 0.2), False),
    ("gaussian", (0.01, 0.02, 0.05, 0.1, 0.2), False),
)
EVALUATION_NOISE = tuple(NoiseCondition(noise_type, eps, sphere, "max")
                         for noise_type, values, sphere in _EVALUATION_NOISE for eps in values)
# How they apply it (combine_test_corruptions = True, config549.py:110): eval_corruptions.py:29 calls
# apply_noise(inputs, 8, test_corruptions, 1, False, dataset): groups of 8, and noise.py:176-177's defaults,
# no sparsity and one rectangle of U(0.3, 1.0) of the image per group.
EVALUATION_NOISE_GROUP, EVALUATION_NOISE_SPARSITY, EVALUATION_NOISE_PATCH = 8, 0.0, (0.3, 1.0)


def evaluation_noise(mean, std) -> PnormNoise:
    """The authors' Lp-noise test set ("Combined_Noise") for batches normalised with ``mean`` and ``std``."""
    return PnormNoise(EVALUATION_NOISE, mean, std, group_size=EVALUATION_NOISE_GROUP,
                      sparsity=EVALUATION_NOISE_SPARSITY, patch_scale=EVALUATION_NOISE_PATCH)


@dataclass
class FeatureNoiseDraw:
    sparsity: torch.Tensor      # () U[0, 1) * 0.65
    add_beta: torch.Tensor      # () Beta(2, 5)
    mult_beta: torch.Tensor     # () Beta(2, 5)
    normal: torch.Tensor        # shape of h: N(0, 1)
    add_drop: torch.Tensor      # shape of h: U[0, 1)
    mult_uniform: torch.Tensor  # shape of h: U[0, 1)
    mult_drop: torch.Tensor     # shape of h: U[0, 1)


class FeatureNoise:
    """NoisyMix-style additive and multiplicative noise on a feature map, as ``noise_up`` with the authors'
    levels (``ct_model.py:159-166``)."""

    def __init__(self, add_level: float = FEATURE_ADD_LEVEL, mult_level: float = FEATURE_MULT_LEVEL,
                 sparsity: float = FEATURE_SPARSITY):
        self.add_level, self.mult_level, self.sparsity = add_level, mult_level, sparsity

    def draw(self, shape, device, dtype=torch.float32) -> FeatureNoiseDraw:
        beta = torch.distributions.Beta(torch.tensor(FEATURE_BETA[0], device=device),
                                        torch.tensor(FEATURE_BETA[1], device=device))
        return FeatureNoiseDraw(
            sparsity=torch.rand((), device=device) * self.sparsity,
            add_beta=beta.sample(),
            mult_beta=beta.sample(),
            normal=torch.randn(shape, device=device, dtype=dtype),
            add_drop=torch.rand(shape, device=device, dtype=dtype),
            mult_uniform=torch.rand(shape, device=device, dtype=dtype),
            mult_drop=torch.rand(shape, device=device, dtype=dtype),
        )

    def apply(self, h: torch.Tensor, draw: FeatureNoiseDraw) -> torch.Tensor:
        sparsity = draw.sparsity.to(h.dtype)
        add = (self.add_level * draw.add_beta).to(h.dtype) * draw.normal
        add = torch.where(draw.add_drop < sparsity, 0.0, add)
        mult = (self.mult_level * draw.mult_beta).to(h.dtype) * (2 * draw.mult_uniform - 1) + 1
        mult = torch.where(draw.mult_drop < sparsity, 1.0, mult)
        return mult * h + add

    def __call__(self, h: torch.Tensor) -> torch.Tensor:
        return self.apply(h, self.draw(h.shape, h.device, h.dtype))
