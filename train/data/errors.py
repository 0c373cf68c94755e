"""The data errors a user can act on: what is missing, which file is broken.

They are ``fastnst.cli`` user errors: every command line reports them as one line and exits 2.
"""
from __future__ import annotations

from fastnst.cli import FileFormatError, MissingFileError


class MissingDataError(MissingFileError):
    """A data set is not where it should be; the message says what to download and where to put it."""


class DataFormatError(FileFormatError):
    """A file exists but is not in the expected format (wrong, truncated or inconsistent); names the file."""


class BadImageError(DataFormatError):
    """An image file cannot be decoded; raised with ``on_bad_image="stop"``, names the file."""
