"""Fused AdaIN for PyTorch: Triton kernels on CUDA, plain PyTorch on the CPU.

    from fastnst import kernels
    out = kernels.adain(content, style_mean, style_std, alpha)   # (N,C,H,W), (N,C), (N,C), (N,) or float
    mean, std = kernels.adain_stats(features)                    # (N,C) float32 each
"""
from fastnst.kernels.adain import AdaIN, adain, adain_stats
from fastnst.kernels.reference import DEFAULT_EPS, adain_reference, adain_stats_reference

__all__ = ["AdaIN", "adain", "adain_stats", "adain_reference", "adain_stats_reference", "DEFAULT_EPS"]
