"""The data errors a user can act on: what is missing, which file is broken."""
from __future__ import annotations


class MissingDataError(FileNotFoundError):
    """A data set is not where it should be; the message says what to download and where to put it."""


class DataFormatError(ValueError):
    """A file exists but is not in the expected format (wrong, truncated or inconsistent); names the file."""


class BadImageError(DataFormatError):
    """An image file cannot be decoded; raised with ``on_bad_image="stop"``, names the file."""
