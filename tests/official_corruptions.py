"""Straight numpy transcriptions of the official extra corruptions, one image at a time.

``speckle_noise``, ``gaussian_blur``, ``spatter`` and ``saturate`` as make_cifar_c.py /
make_tinyimagenet_c.py (github.com/hendrycks/robustness, ImageNet-C/create_c/) write them,
with the library calls they make written out as sequential loops from the libraries' own
code: scipy.ndimage.gaussian_filter (skimage.filters.gaussian), skimage.color.rgb2hsv /
hsv2rgb, and OpenCV's Canny, distanceTransform (DIST_L2, 5x5), threshold, blur,
equalizeHist and filter2D. The random draws are arguments, so a test can feed the
batched version the same ones. Slow on purpose: it is the reference, not the product.
"""
from __future__ import annotations

import numpy as np


# ---- scipy.ndimage / skimage --------------------------------------------------------------

def gaussian_filter(image: np.ndarray, sigma: float, truncate: float = 4.0) -> np.ndarray:
    """scipy.ndimage.gaussian_filter(mode='nearest') over the two spatial axes, float64."""
    radius = int(truncate * sigma + 0.5)
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    taps /= taps.sum()
    out = image.astype(np.float64)
    for axis in (0, 1):
        padded = np.pad(out, [(radius, radius) if a == axis else (0, 0) for a in range(out.ndim)], mode="edge")
        total = np.zeros_like(out)
        for k, tap in enumerate(taps):
            total += tap * np.take(padded, range(k, k + out.shape[axis]), axis=axis)
        out = total
    return out


def rgb2hsv(rgb: np.ndarray) -> np.ndarray:
    """skimage.color.rgb2hsv (float64 HxWx3)."""
    out = np.empty_like(rgb)
    value = rgb.max(-1)
    delta = np.ptp(rgb, -1)
    with np.errstate(invalid="ignore", divide="ignore"):
        saturation = delta / value
        saturation[delta == 0.0] = 0.0
        idx = rgb[..., 0] == value
        out[idx, 0] = (rgb[idx, 1] - rgb[idx, 2]) / delta[idx]
        idx = rgb[..., 1] == value
        out[idx, 0] = 2.0 + (rgb[idx, 2] - rgb[idx, 0]) / delta[idx]
        idx = rgb[..., 2] == value
        out[idx, 0] = 4.0 + (rgb[idx, 0] - rgb[idx, 1]) / delta[idx]
    hue = (out[..., 0] / 6.0) % 1.0
    hue[delta == 0.0] = 0.0
    return np.stack([hue, saturation, value], axis=-1)


def hsv2rgb(hsv: np.ndarray) -> np.ndarray:
    """skimage.color.hsv2rgb."""
    hi = np.floor(hsv[..., 0] * 6)
    f = hsv[..., 0] * 6 - hi
    p = hsv[..., 2] * (1 - hsv[..., 1])
    q = hsv[..., 2] * (1 - f * hsv[..., 1])
    t = hsv[..., 2] * (1 - (1 - f) * hsv[..., 1])
    v = hsv[..., 2]
    hi = np.stack([hi, hi, hi], axis=-1).astype(np.uint8) % 6
    return np.choose(hi, np.stack([np.stack((v, t, p), axis=-1), np.stack((q, v, p), axis=-1),
                                   np.stack((p, v, t), axis=-1), np.stack((p, q, v), axis=-1),
                                   np.stack((t, p, v), axis=-1), np.stack((v, p, q), axis=-1)]))


# ---- OpenCV (imgproc/src/canny.cpp, distransform.cpp, box filter, histogram, filter2D) -------

def canny(image: np.ndarray, low: int, high: int) -> np.ndarray:
    """cv2.Canny(uint8, low, high), aperture 3, L1 gradient: uint8 0/255, sequential with a stack."""
    height, width = image.shape
    padded = np.pad(image.astype(np.int32), 1, mode="edge")
    dx = np.zeros((height, width), np.int32)
    dy = np.zeros((height, width), np.int32)
    for i in range(height):
        for j in range(width):
            w = padded[i : i + 3, j : j + 3]
            dx[i, j] = (w[0, 2] + 2 * w[1, 2] + w[2, 2]) - (w[0, 0] + 2 * w[1, 0] + w[2, 0])
            dy[i, j] = (w[2, 0] + 2 * w[2, 1] + w[2, 2]) - (w[0, 0] + 2 * w[0, 1] + w[0, 2])
    magnitude = np.zeros((height + 2, width + 2), np.int64)
    magnitude[1:-1, 1:-1] = np.abs(dx) + np.abs(dy)
    tg22 = int(0.4142135623730950488016887242097 * (1 << 15) + 0.5)
    state = np.ones((height + 2, width + 2), np.int8)  # 1: not an edge, 0: candidate, 2: edge
    stack = []
    for i in range(height):
        for j in range(width):
            m = magnitude[i + 1, j + 1]
            if m <= low:
                continue
            xs, ys = int(dx[i, j]), int(dy[i, j])
            x, y = abs(xs), abs(ys) << 15
            tg22x = x * tg22
            mag = lambda di, dj: magnitude[i + 1 + di, j + 1 + dj]  # noqa: E731
            if y < tg22x:
                keep = m > mag(0, -1) and m >= mag(0, 1)
            elif y > tg22x + (x << 16):
                keep = m > mag(-1, 0) and m >= mag(1, 0)
            else:
                s = -1 if (xs ^ ys) < 0 else 1
                keep = m > mag(-1, -s) and m > mag(1, s)
            if keep:
                if m > high:
                    state[i + 1, j + 1] = 2
                    stack.append((i + 1, j + 1))
                else:
                    state[i + 1, j + 1] = 0
    while stack:
        i, j = stack.pop()
        for di in (-1, 0, 1):
            for dj in (-1, 0, 1):
                if state[i + di, j + dj] == 0:
                    state[i + di, j + dj] = 2
                    stack.append((i + di, j + dj))
    return np.where(state[1:-1, 1:-1] == 2, 255, 0).astype(np.uint8)


def distance_transform(image: np.ndarray) -> np.ndarray:
    """cv2.distanceTransform(uint8, DIST_L2, 5): two raster passes, 5x5 chamfer (1, 1.4, 2.1969), float32."""
    height, width = image.shape
    a, b, c = np.float32(1.0), np.float32(1.4), np.float32(2.1969)
    t = np.full((height + 4, width + 4), np.float32(1e20), np.float32)
    for i in range(2, height + 2):
        for j in range(2, width + 2):
            if image[i - 2, j - 2] == 0:
                t[i, j] = 0
                continue
            t[i, j] = min(t[i - 2, j - 1] + c, t[i - 2, j + 1] + c, t[i - 1, j - 2] + c, t[i - 1, j - 1] + b,
                          t[i - 1, j] + a, t[i - 1, j + 1] + b, t[i - 1, j + 2] + c, t[i, j - 1] + a)
    for i in range(height + 1, 1, -1):
        for j in range(width + 1, 1, -1):
            t[i, j] = min(t[i, j], t[i + 2, j + 1] + c, t[i + 2, j - 1] + c, t[i + 1, j + 2] + c, t[i + 1, j + 1] + b,
                          t[i + 1, j] + a, t[i + 1, j - 1] + b, t[i + 1, j - 2] + c, t[i, j + 1] + a)
    return t[2:-2, 2:-2].copy()


def _reflect101(image: np.ndarray) -> np.ndarray:
    return np.pad(image, 1, mode="reflect")  # numpy 'reflect' does not repeat the edge: OpenCV's REFLECT_101


def blur3(image: np.ndarray) -> np.ndarray:
    """cv2.blur(image, (3, 3)): float32 input -> float32 (sum in float64 / 9); uint8 -> uint8 rounded."""
    padded = _reflect101(image.astype(np.float64))
    height, width = image.shape
    total = sum(padded[di : di + height, dj : dj + width] for di in range(3) for dj in range(3))
    if image.dtype == np.uint8:
        return np.floor(total / 9 + 0.5).astype(np.uint8)
    return (total * (1.0 / 9.0)).astype(np.float32)


def equalize_hist(image: np.ndarray) -> np.ndarray:
    """cv2.equalizeHist."""
    hist = np.bincount(image.ravel(), minlength=256)
    i = 0
    while not hist[i]:
        i += 1
    total = image.size
    if hist[i] == total:
        return np.full_like(image, i)
    scale = np.float32(255.0) / np.float32(total - hist[i])
    lut = np.zeros(256, np.uint8)
    running = 0
    for k in range(i + 1, 256):
        running += hist[k]
        lut[k] = min(255, max(0, int(np.round(np.float32(running) * scale))))
    return lut[image]


def filter2d_uint8(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """cv2.filter2D(image, cv2.CV_8U, kernel): correlation, REFLECT_101, saturated."""
    padded = _reflect101(image.astype(np.int64))
    height, width = image.shape
    total = sum(kernel[di, dj] * padded[di : di + height, dj : dj + width] for di in range(3) for dj in range(3))
    return np.clip(total, 0, 255).astype(np.uint8)


# ---- the official functions (make_cifar_c.py / make_tinyimagenet_c.py) ---------------------

def speckle_noise(x: np.ndarray, c: float, normal: np.ndarray) -> np.ndarray:
    """normal: the standard normal draw (HxWx3) that np.random.normal(scale=c) scales."""
    x = np.array(x) / 255.0
    return np.clip(x + x * (normal * c), 0, 1) * 255


def gaussian_blur(x: np.ndarray, c: float) -> np.ndarray:
    x = gaussian_filter(np.array(x) / 255.0, c)
    return np.clip(x, 0, 1) * 255


def saturate(x: np.ndarray, c: tuple) -> np.ndarray:
    x = np.array(x) / 255.0
    x = rgb2hsv(x)
    x[:, :, 1] = np.clip(x[:, :, 1] * c[0] + c[1], 0, 1)
    x = hsv2rgb(x)
    return np.clip(x, 0, 1) * 255


def spatter(x: np.ndarray, c: tuple, liquid_layer: np.ndarray) -> np.ndarray:
    """liquid_layer: the np.random.normal(size=HxW, loc=c[0], scale=c[1]) draw."""
    x = np.array(x, dtype=np.float32) / 255.0
    liquid_layer = gaussian_filter(liquid_layer, sigma=c[2])
    liquid_layer[liquid_layer < c[3]] = 0
    if c[5] == 0:
        liquid_layer = (liquid_layer * 255).astype(np.uint8)
        dist = 255 - canny(liquid_layer, 50, 150)
        dist = distance_transform(dist)
        dist = np.minimum(dist, np.float32(20))  # cv2.threshold(dist, 20, 20, cv2.THRESH_TRUNC)
        dist = blur3(dist).astype(np.uint8)
        dist = equalize_hist(dist)
        ker = np.array([[-2, -1, 0], [-1, 1, 1], [0, 1, 2]])
        dist = filter2d_uint8(dist, ker)
        dist = blur3(dist).astype(np.float32)
        m = liquid_layer * dist  # cv2.cvtColor(GRAY2BGRA) copies it to three channels
        m = m / np.max(m)
        m = (m * np.float32(c[4])).astype(np.float32)[..., None]
        color = (np.array([175, 238, 238]) / 255.0).astype(np.float32)
        return np.clip(x + m * color, 0, 1) * 255
    m = np.where(liquid_layer > c[3], 1, 0)
    m = gaussian_filter(m.astype(np.float32), sigma=c[4]).astype(np.float32)
    m[m < 0.8] = 0
    color = (np.array([63, 42, 20]) / 255.0).astype(np.float32) * m[..., None]
    x *= 1 - m[..., None]
    return np.clip(x + color, 0, 1) * 255


def to_uint8(x: np.ndarray) -> np.ndarray:
    """The scripts' np.uint8(...) of the result (NaN, from a zero peak in spatter, becomes 0)."""
    return np.nan_to_num(x, nan=0.0).astype(np.uint8)
