"""A picture of what a run's Stylizer does to its training images: ``report/stylization.png``.

    path = write_stylization_figure(loader, stylizer, config, out_dir / "report" / "stylization.png")

A few real and synthetic training samples, as the loader reads them (an image folder's files, of any size,
as its test view), before and after this run's stylizer, each row labelled with its source, alpha and style:
one small batch, once per run, drawn with ``fastnst.preview``'s grid. With random networks the title says so, as ``fastnst.preview``'s does. A
``--stylize-cache`` run shows stored variants (their stored alpha and style). The draws come from their
own generator: training's random streams and the stylizer's are left as they were.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from fastnst import CachedStylizer, Stylizer
from fastnst.train.data.errors import BadImageError
from fastnst.train.data.imagefolder import centre_view, eval_image
from fastnst.train.data.jpeg import decode_rgb
from fastnst.train.data.sources import ArraySource, FileSource
from fastnst.train.data.stats import DatasetInfo

SAMPLES_PER_SOURCE = 3


def _samples(source, count: int, info: DatasetInfo, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray] | None:
    """(rows, uint8 (R, S, S, 3) images) of up to ``count`` training samples of ``source`` at the model's side S;
    images of another size (an image folder's files, a synthetic set of its own size) as the test view sees them.
    A file that does not decode is passed over, as training skips it. None for a source it cannot read."""
    order = rng.permutation(len(source))
    if isinstance(source, ArraySource):
        rows = np.sort(order[:count])
        images = np.ascontiguousarray(source.images[rows])
        if images.shape[1:3] == (info.image_size, info.image_size):
            return rows, images
        return rows, np.stack([centre_view(Image.fromarray(image), info.image_size, info.eval_resize or info.image_size)
                               for image in images])
    if not isinstance(source, FileSource):
        return None
    readable: list[int] = []
    decoded: list[np.ndarray] = []
    for row in order:
        try:
            decoded.append(decode_rgb(source.paths[row], info.image_size) if info.eval_resize is None
                           else eval_image(source.paths[row], info.image_size, info.eval_resize))
        except BadImageError:
            continue
        readable.append(int(row))
        if len(readable) == count:
            break
    return (np.array(readable), np.stack(decoded)) if readable else None


def _stylize(stylizer, source: str, images: np.ndarray, rows: np.ndarray, rng: np.random.Generator):
    """(stylized uint8 NHWC, alphas, style names) of ``images`` (rows ``rows`` of ``source``)."""
    if isinstance(stylizer, CachedStylizer):  # a stored variant of each image, with its stored style and alpha
        cache = stylizer.caches[source]
        variant = rng.integers(cache.variants, size=len(rows))
        styles = [f"style {index}" for index in cache.style_index[rows, variant]]
        return np.ascontiguousarray(cache.images[rows, variant]), cache.alpha[rows, variant], styles
    low, high = stylizer.alpha_synthetic if source == "synthetic" else stylizer.alpha_real
    alpha = torch.from_numpy(rng.uniform(low, high, size=len(rows))).float()
    style_index = torch.from_numpy(rng.integers(len(stylizer.style_names), size=len(rows)))
    device = stylizer.style_mean.device
    content = torch.from_numpy(images).permute(0, 3, 1, 2).to(device)
    stylized = stylizer.stylize(content, style_index, alpha).permute(0, 2, 3, 1).cpu().numpy()
    return stylized, alpha.numpy(), [stylizer.style_names[index] for index in style_index.tolist()]


def _random_networks(stylizer) -> list[str]:
    if isinstance(stylizer, CachedStylizer):  # the networks ran when the cache was made; its metadata says how
        random = any(cache.meta["settings"].get("random_weights", False) for cache in stylizer.caches.values())
        return ["encoder", "decoder"] if random else []
    return [name for name in ("encoder", "decoder") if getattr(getattr(stylizer, name), "random_weights", False)]


def write_stylization_figure(loader, stylizer: Stylizer | CachedStylizer, config: dict, path: Path) -> Path | None:
    """Draw the figure of ``loader``'s sources (``real``, ``synthetic``) through ``stylizer`` into ``path``;
    None when no source is stylized (both probabilities 0)."""
    from fastnst.preview import draw_grid, random_weights_note  # matplotlib only when a figure is drawn

    rng = np.random.default_rng([config["seed"], 7])
    probability = {"real": config["prob_real"], "synthetic": config["prob_synthetic"]}
    originals, stylized, labels, styles = [], [], [], []
    for source, data in (("real", loader.real), ("synthetic", loader.synthetic)):
        if data is None or probability[source] == 0:
            continue
        samples = _samples(data, SAMPLES_PER_SOURCE, loader.info, rng)
        if samples is None:
            continue
        rows, images = samples
        after, alpha, names = _stylize(stylizer, source, images, rows, rng)
        originals.append(images)
        stylized.append(after)
        labels += [f"{source}\nα = {value:.2f}" for value in alpha]
        styles += names
    if not originals:
        return None
    random = _random_networks(stylizer)
    if isinstance(stylizer, CachedStylizer):
        how = "stored variants of --stylize-cache"
    else:
        how = f"upsampled to {stylizer.resolution} px" if stylizer.resolution else "native resolution"
    title = "\n".join([f"{config['dataset']} training samples, before and after the Stylizer",
                       f"{how}; λs {config['prob_synthetic']}, λo {config['prob_real']}",
                       *([random_weights_note(random)] if random else [])])

    def as_tensor(parts: list[np.ndarray]) -> torch.Tensor:
        return torch.from_numpy(np.concatenate(parts)).permute(0, 3, 1, 2)

    return draw_grid(as_tensor(originals), [as_tensor(stylized)], ["stylized"], styles, title, Path(path),
                     row_labels=labels)
