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
"""
from __future__ import annotations

import hashlib
import os
import re
import warnings
from pathlib import Path

import torch
from torch import nn

from fastnst.networks import Decoder, VGGEncoder

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# torchvision VGG-19 conv index -> normalised-encoder conv index, up to relu4_1.
TORCHVISION_TO_ENCODER = {0: 2, 2: 5, 5: 9, 7: 12, 10: 16, 12: 19, 14: 22, 16: 25, 19: 29}
# Convolutions of the full vgg_normalised.pth beyond relu4_1 (relu4_2 .. relu5_4), dropped on load.
PORT_VGG_DEEPER_CONVS = (32, 35, 38, 42, 45, 48, 51)
TORCHVISION_VGG19_URL = "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth"
TORCHVISION_VGG19_SHA256_PREFIX = "dcbb9e9d"


class RandomWeightsWarning(UserWarning):
    """A network runs with random weights: images change, but not as the paper's style transfer."""


class WeightsError(ValueError):
    """A weight file does not hold what it should; the message names the file and the first mismatch."""


def warn_random(what: str) -> None:
    warnings.warn(
        f"fastnst: the {what} has RANDOM weights (no file given). Stylization will run but is NOT the "
        "paper's AdaIN style transfer; pass vgg_normalised.pth / decoder.pth (see docs/stylizer.md).",
        RandomWeightsWarning,
        stacklevel=3,
    )


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """``torch.load(weights_only=True)`` of a flat state dict, with errors that name ``path``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weight file {path} does not exist or is not a file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated file, not a torch file, unsafe pickle
        raise WeightsError(f"weight file {path} could not be read as a PyTorch state dict: {exc}") from exc
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


def load_encoder(path: str | os.PathLike | None = None) -> VGGEncoder:
    """The VGG encoder to relu4_1 from ``vgg_normalised.pth`` or torchvision's VGG-19 file; random if None."""
    encoder = VGGEncoder()
    if path is None:
        warn_random("VGG-19 encoder")
    else:
        state = read_state_dict(path)
        if _is_torchvision_vgg(state):
            _check_and_load(encoder, torchvision_to_encoder_state(state, path), path)
        else:
            _check_and_load(encoder, state, path, ignored=_port_deeper_keys())
    return encoder.eval().requires_grad_(False)


def load_decoder(path: str | os.PathLike | None = None) -> Decoder:
    """The AdaIN decoder from ``decoder.pth`` (the port's, or one from ``fastnst.train_decoder``); random if None."""
    decoder = Decoder()
    if path is None:
        warn_random("AdaIN decoder")
    else:
        _check_and_load(decoder, read_state_dict(path), path)
    return decoder.eval().requires_grad_(False)


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
