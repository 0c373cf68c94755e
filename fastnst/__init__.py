"""Neural style transfer as a library: VGG-19 encoder, AdaIN decoder, style bank, batched Stylizer.

    from fastnst import StyleBank, build_stylizer
    stylizer = build_stylizer("styles.pt", "vgg_normalised.pth", "decoder.pth", device="cuda")
    stylizer.set_epoch(epoch)
    images, plan = stylizer(images_uint8_nchw, is_synthetic)  # a random per-sample subset re-textured

Command lines: ``python -m fastnst.style_bank``, ``python -m fastnst.train_decoder``, ``python -m fastnst.weights``,
``python -m fastnst.preview``; ``fastnst.stylize_dataset`` makes the offline stylized cache (command line:
``python -m train.stylize_cache``) that ``CachedStylizer`` serves in place of the networks. AdaIN itself is ``fastnst.kernels.adain``; this package never re-implements it.

The distribution claims no generic top-level name: ``kernels/`` and ``train/`` are subpackages
``fastnst.kernels`` and ``fastnst.train``, through the committed links ``fastnst/kernels -> ../kernels``
and ``fastnst/train -> ../train`` (static, so type checkers and the wheel see them as any subpackage).
"""
import importlib

# Public names, imported on first use so that ``python -m fastnst.<cli>`` never imports its own
# module twice and ``import fastnst`` stays cheap.
_EXPORTS = {
    "Decoder": "fastnst.networks", "VGGEncoder": "fastnst.networks",
    "StyleBank": "fastnst.style_bank", "encode_style_folder": "fastnst.style_bank",
    "PAPER_RESOLUTION": "fastnst.stylizer", "StylePlan": "fastnst.stylizer", "Stylizer": "fastnst.stylizer",
    "build_stylizer": "fastnst.stylizer",
    "CachedStylizer": "fastnst.cached_stylizer",
    "StylizedDataset": "fastnst.cache_format", "open_stylized_dataset": "fastnst.cache_format",
    "RandomWeightsWarning": "fastnst.weights", "WeightsError": "fastnst.weights",
    "load_decoder": "fastnst.weights", "load_encoder": "fastnst.weights",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'fastnst' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))
