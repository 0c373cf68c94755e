"""``--stylize-cache``: open the stylized caches of a run and check them against its training sources.

A cache (``python -m train.stylize_cache``) is made for one source of one data set; its rows must be
that source's images in the loader's order. A cache whose count, image size, labels or pixels differ
from the source is refused with a message that names the difference.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from fastnst.cli import FileFormatError
from fastnst.cache_format import StylizedDataset, StylizeDatasetError, open_stylized_dataset
from fastnst.train.data.jpeg import decode_rgb
from fastnst.train.data.sources import ArraySource, FileSource


class CacheMismatchError(FileFormatError):
    """A --stylize-cache folder does not belong to this run's data; the message says how it differs."""


class _DecodedFiles:
    """A JPEG source seen as an image array, decoded on access (for the cache's pixel fingerprint)."""

    def __init__(self, source: FileSource, image_size: int):
        self.source, self.image_size = source, image_size
        self.shape = (len(source), image_size, image_size, 3)

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index: int) -> np.ndarray:
        return decode_rgb(self.source.paths[index], self.image_size)


def source_images(source: ArraySource | FileSource, image_size: int):
    return source.images if isinstance(source, ArraySource) else _DecodedFiles(source, image_size)


def open_caches(paths: list[str | Path], sources: dict[str, ArraySource | FileSource | None],
                image_size: int) -> dict[str, StylizedDataset]:
    """source -> cache for each of ``paths``, each checked against ``sources[its source]``."""
    caches: dict[str, StylizedDataset] = {}
    for path in paths:
        try:
            cache = open_stylized_dataset(path)
        except StylizeDatasetError as error:
            raise CacheMismatchError(f"--stylize-cache: {error}") from None
        source = cache.meta["settings"]["source"]
        if source in caches:
            raise CacheMismatchError(f"--stylize-cache: {caches[source].path} and {path} are both caches of the "
                                     f"{source} images; give one per source")
        data = sources.get(source)
        if data is None:
            raise CacheMismatchError(f"--stylize-cache {path}: a cache of {source} images, but this run has no "
                                     f"{source} images")
        differences = cache.mismatches(source_images(data, image_size), data.labels)
        if differences:
            raise CacheMismatchError(f"--stylize-cache {path} was not made from this run's {source} images: "
                                     + "; ".join(differences))
        caches[source] = cache
    return caches
