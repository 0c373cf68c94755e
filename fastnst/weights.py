"""Loading encoder and decoder weights, checked key by key.

Accepted files (all read with ``torch.load(weights_only=True)``):

* ``vgg_normalised.pth`` of the PyTorch AdaIN port (naoto0804/pytorch-AdaIN):
  keys ``0.weight`` ... ``51.bias`` (the whole normalised VGG-19 to relu5_4).
  Only the layers up to relu4_1 (indices 0..30) are used; the deeper ones are
  recognised and dropped, exactly as the port does with ``children()[:31]``.
  A file holding only indices 0..30 loads too.
* ``decoder.pth`` of that port (keys ``1.weight`` ... ``28.bias``), or one
  written by ``python -m fastnst.train_decoder``.
* torchvision's VGG-19 ImageNet weights (``vgg19-dcbb9e9d.pth``, keys
  ``features.N.weight``, ``classifier.*``). Converted as follows:
  torchvision's convolutions ``features.{0,2,5,7,10,12,14,16,19}`` are copied
  unchanged into encoder convolutions ``{2,5,9,12,16,19,22,25,29}``, and the
  encoder's leading 1x1 conv (which for the port maps RGB [0,1] to Caffe
  BGR*255 - mean) is set to torchvision's input normalisation instead:
  ``weight = diag(1 / std)``, ``bias = -mean / std`` with ImageNet
  mean (0.485, 0.456, 0.406) and std (0.229, 0.224, 0.225). Two differences
  remain and are not hidden: torchvision pads with zeros where the encoder
  reflects (borders differ), and its features are not rescaled like the
  "normalised" VGG, so a decoder trained on ``vgg_normalised.pth`` does not
  fit this encoder: train one with ``python -m fastnst.train_decoder``.

Without a file the networks keep their random initialisation and a
``RandomWeightsWarning`` says that the stylization is then not the paper's.

Random weights as files, to exercise stylization on real data without the public weights::

    python -m fastnst.weights --random --out DIR [--seed 0]

writes ``DIR/random_vgg_normalised.pth`` and ``DIR/random_decoder.pth`` in the port's key layout
(Kaiming-normal convolutions, zero biases) plus the marker key ``fastnst.random_weights``. Loading
such a file drops the marker, warns ``RandomWeightsWarning`` and, as for no file, sets the loaded
module's ``random_weights`` attribute to True (``python -m train.run`` reports it in its output
and ``summary.json``).
"""
from __future__ import annotations

import argparse
import hashlib
import os
import re
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import nn

from fastnst.atomic import save_atomic
from fastnst.cli import FileFormatError, UsageError, add_debug_flag, program_name, run_cli
from fastnst.networks import Decoder, VGGEncoder
from fastnst.safe_load import safe_torch_load

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# torchvision VGG-19 conv index -> normalised-encoder conv index, up to relu4_1.
TORCHVISION_TO_ENCODER = {0: 2, 2: 5, 5: 9, 7: 12, 10: 16, 12: 19, 14: 22, 16: 25, 19: 29}
# Convolutions of the full vgg_normalised.pth beyond relu4_1 (relu4_2 .. relu5_4), dropped on load.
PORT_VGG_DEEPER_CONVS = (32, 35, 38, 42, 45, 48, 51)
TORCHVISION_VGG19_URL = "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth"
TORCHVISION_VGG19_SHA256_PREFIX = "dcbb9e9d"
# Present (a scalar tensor: the seed) only in files written by ``python -m fastnst.weights --random``.
RANDOM_WEIGHTS_KEY = "fastnst.random_weights"
RANDOM_ENCODER_FILE = "random_vgg_normalised.pth"
RANDOM_DECODER_FILE = "random_decoder.pth"


class RandomWeightsWarning(UserWarning):
    """A network runs with random weights: images change, but not as the paper's style transfer."""


class WeightsError(FileFormatError):
    """A weight file does not hold what it should; the message names the file and the first mismatch."""


def warn_random(what: str) -> None:
    warnings.warn(
        f"the {what} has RANDOM weights (no file given). Stylization will run but is NOT the "
        "paper's AdaIN style transfer; pass vgg_normalised.pth / decoder.pth (see docs/stylizer.md).",
        RandomWeightsWarning,
        stacklevel=3,
    )


def warn_random_file(what: str, path) -> None:
    warnings.warn(
        f"the {what} file {path} holds RANDOM weights (written by python -m fastnst.weights --random). "
        "Stylization will run but is NOT the paper's AdaIN style transfer.",
        RandomWeightsWarning,
        stacklevel=3,
    )


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """``torch.load(weights_only=True)`` of a flat state dict, with errors that name ``path``."""
    state = safe_torch_load(path, "weight file", error_type=WeightsError)
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise WeightsError(f"weight file {path} does not hold a flat state dict of tensors (got {type(state).__name__})")
    return state


def _check_and_load(module: nn.Module, state: dict[str, torch.Tensor], path, ignored=()) -> None:
    """Load ``state`` into ``module`` after checking every key and shape; first mismatch named."""
    expected = module.state_dict()
    for key, target in expected.items():
        if key not in state:
            raise WeightsError(f"weight file {path}: missing key {key!r} (expected shape {tuple(target.shape)})")
        if state[key].shape != target.shape:
            raise WeightsError(
                f"weight file {path}: key {key!r} has shape {tuple(state[key].shape)}, expected {tuple(target.shape)}"
            )
    for key in state:
        if key not in expected and key not in ignored:
            raise WeightsError(f"weight file {path}: unexpected key {key!r} for a {type(module).__name__}")
    module.load_state_dict({key: state[key].float() for key in expected})


def _is_torchvision_vgg(state: dict) -> bool:
    return any(key.startswith("features.") for key in state)


def _port_deeper_keys() -> set[str]:
    return {f"{index}.{kind}" for index in PORT_VGG_DEEPER_CONVS for kind in ("weight", "bias")}


def torchvision_to_encoder_state(state: dict[str, torch.Tensor], path="<state dict>") -> dict[str, torch.Tensor]:
    """Convert torchvision VGG-19 ``features.N`` weights to the normalised encoder's keys (see module doc)."""
    converted = {}
    for source, target in TORCHVISION_TO_ENCODER.items():
        for kind in ("weight", "bias"):
            key = f"features.{source}.{kind}"
            if key not in state:
                raise WeightsError(f"weight file {path}: missing key {key!r} of torchvision VGG-19")
            converted[f"{target}.{kind}"] = state[key]
    for key in state:
        match = re.fullmatch(r"features\.(\d+)\.(weight|bias)|classifier\.\d+\.(weight|bias)", key)
        if match is None:
            raise WeightsError(f"weight file {path}: unexpected key {key!r} for torchvision VGG-19")
    mean = torch.tensor(IMAGENET_MEAN)
    std = torch.tensor(IMAGENET_STD)
    converted["0.weight"] = torch.diag(1.0 / std).reshape(3, 3, 1, 1)
    converted["0.bias"] = -mean / std
    return converted


def _pop_random_marker(state: dict[str, torch.Tensor]) -> bool:
    """Drop the marker of ``--random`` files; True when it was there (the caller warns once the file
    has loaded, so that a wrong file gets only its error, not also a warning about the wrong network)."""
    return state.pop(RANDOM_WEIGHTS_KEY, None) is not None


@contextmanager
def seeded_initialisation(seed: int) -> Iterator[None]:
    """Networks built inside draw their random initial weights from ``seed`` (so ``load_encoder(None)`` and
    ``load_decoder(None)`` are a function of it), and the global RNG is left as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def load_encoder(path: str | os.PathLike | None = None) -> VGGEncoder:
    """The VGG encoder to relu4_1 from ``vgg_normalised.pth`` or torchvision's VGG-19 file; random if None.

    The returned module's ``random_weights`` is True without a file or for a ``--random`` file.
    """
    encoder = VGGEncoder()
    if path is None:
        warn_random("VGG-19 encoder")
        encoder.random_weights = True
    else:
        state = read_state_dict(path)
        encoder.random_weights = _pop_random_marker(state)
        if _is_torchvision_vgg(state):
            _check_and_load(encoder, torchvision_to_encoder_state(state, path), path)
        else:
            _check_and_load(encoder, state, path, ignored=_port_deeper_keys())
        if encoder.random_weights:
            warn_random_file("VGG-19 encoder", path)
    return encoder.eval().requires_grad_(False)


def load_decoder(path: str | os.PathLike | None = None) -> Decoder:
    """The AdaIN decoder from ``decoder.pth`` (the port's, or one from ``fastnst.train_decoder``); random if None.

    The returned module's ``random_weights`` is True without a file or for a ``--random`` file.
    """
    decoder = Decoder()
    if path is None:
        warn_random("AdaIN decoder")
        decoder.random_weights = True
    else:
        state = read_state_dict(path)
        decoder.random_weights = _pop_random_marker(state)
        _check_and_load(decoder, state, path)
        if decoder.random_weights:
            warn_random_file("AdaIN decoder", path)
    return decoder.eval().requires_grad_(False)


def kaiming_initialised(module: nn.Module, seed: int) -> nn.Module:
    """Every convolution Kaiming-normal (fan-in, ReLU gain) with zero bias, from a seeded generator."""
    generator = torch.Generator().manual_seed(seed)
    for layer in module.modules():
        if isinstance(layer, nn.Conv2d):
            fan_in = layer.in_channels * layer.kernel_size[0] * layer.kernel_size[1]
            with torch.no_grad():
                layer.weight.copy_(torch.randn(layer.weight.shape, generator=generator) * (2.0 / fan_in) ** 0.5)
                layer.bias.zero_()
    return module


def write_random_weights(folder: str | os.PathLike, seed: int = 0) -> tuple[Path, Path]:
    """``folder/random_vgg_normalised.pth`` and ``folder/random_decoder.pth``: random weights in the port's
    key layout, marked with ``RANDOM_WEIGHTS_KEY`` so that every loader says they are random."""
    folder = Path(folder)
    paths = (folder / RANDOM_ENCODER_FILE, folder / RANDOM_DECODER_FILE)
    for network, path, offset in ((VGGEncoder(), paths[0], 0), (Decoder(), paths[1], 1)):
        state = dict(kaiming_initialised(network, seed * 2 + offset).state_dict())
        state[RANDOM_WEIGHTS_KEY] = torch.tensor(seed)
        save_atomic(state, path)
    return paths


def download_torchvision_vgg19(folder: str | os.PathLike) -> Path:
    """Fetch torchvision's VGG-19 ImageNet weights into ``folder``, checking the published SHA-256 prefix."""
    destination = Path(folder) / Path(TORCHVISION_VGG19_URL).name
    if not destination.is_file():
        destination.parent.mkdir(parents=True, exist_ok=True)
        torch.hub.download_url_to_file(TORCHVISION_VGG19_URL, str(destination), progress=True)
    digest = hashlib.sha256(destination.read_bytes()).hexdigest()
    if not digest.startswith(TORCHVISION_VGG19_SHA256_PREFIX):
        raise WeightsError(f"{destination}: SHA-256 {digest} does not start with {TORCHVISION_VGG19_SHA256_PREFIX}")
    return destination


def main(argv: list[str] | None = None) -> tuple[Path, Path]:
    parser = argparse.ArgumentParser(
        prog=program_name("fastnst.weights"),
        description="Write RANDOM encoder and decoder weight files, to exercise stylization (train.run --vgg/--decoder, "
        "fastnst.style_bank, fastnst.preview) without the public AdaIN weights. Every command that loads them "
        "says that they are random.",
    )
    parser.add_argument("--random", action="store_true", help="write random weights (the only mode so far)")
    parser.add_argument("--out", type=Path, required=True, metavar="DIR",
                        help=f"folder for {RANDOM_ENCODER_FILE} and {RANDOM_DECODER_FILE}")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random weights (default: 0)")
    add_debug_flag(parser)
    args = parser.parse_args(argv)
    if not args.random:
        parser.error("nothing to do: pass --random to write random weight files")
    if args.out.exists() and not args.out.is_dir():
        raise UsageError(f"--out {args.out} is a file; pass a folder (it is created if missing)")
    paths = write_random_weights(args.out, args.seed)
    for path in paths:
        print(f"wrote {path} (RANDOM weights, seed {args.seed}; not the paper's style transfer)")
    print(f"use them as: --vgg {paths[0]} --decoder {paths[1]}")
    return paths


def cli(argv: list[str] | None = None) -> int:
    return run_cli(main, argv, prog=program_name("fastnst.weights"))


if __name__ == "__main__":
    sys.exit(cli())
