"""Markers shared by the test modules."""
import importlib.util

import pytest

# DALI is the [train] extra: without it the loaders run on the torch backend, and DALI's own tests skip.
needs_dali = pytest.mark.skipif(importlib.util.find_spec("nvidia.dali") is None,
                                reason="DALI is not installed (pip install 'fastnst[train]')")
