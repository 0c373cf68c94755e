"""Neural style transfer as a library: VGG-19 encoder, AdaIN decoder, style bank, batched Stylizer.

    from fastnst import StyleBank, build_stylizer
    stylizer = build_stylizer("styles.pt", "vgg_normalised.pth", "decoder.pth", device="cuda")
    stylizer.set_epoch(epoch)
    images = stylizer(images_uint8_nchw, is_synthetic)     # a random per-sample subset re-textured

Command lines: ``python -m fastnst.style_bank``, ``python -m fastnst.train_decoder``,
``python -m fastnst.preview``. AdaIN itself is ``kernels.adain``; this package never re-implements it.
"""
from fastnst.networks import Decoder, VGGEncoder
from fastnst.style_bank import StyleBank, encode_style_folder
from fastnst.stylizer import PAPER_RESOLUTION, StylePlan, Stylizer, build_stylizer
from fastnst.weights import RandomWeightsWarning, WeightsError, load_decoder, load_encoder

__all__ = [
    "Decoder", "VGGEncoder", "StyleBank", "encode_style_folder", "Stylizer", "StylePlan", "build_stylizer",
    "PAPER_RESOLUTION", "RandomWeightsWarning", "WeightsError", "load_decoder", "load_encoder",
]
