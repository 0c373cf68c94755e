"""pytest plugin for hosts without DALI: a test that fails only because DALI is missing is reported skipped.

    python -m pytest tests -p bench.missing_dali

The GPU hosts lent for one-off runs (bench/gpu_run.py) have torch and Triton but no DALI and no
package index. The loader then runs its torch backend, but the tests that build DALI graphs
themselves (the DALI pipeline's own) fail with ``ModuleNotFoundError: No module named
'nvidia.dali'``, which says nothing about the code under test. With this plugin, and only when DALI
cannot be imported, such a failure is reported as a skip whose reason starts with ``DALI not installed``;
every other failure stays a failure. Where DALI is installed the plugin does nothing.
"""
from __future__ import annotations

import pytest

from fastnst.train.data.backend import dali_available

SKIP_REASON = "DALI not installed on this host (the test needs nvidia.dali)"
_DALI_MODULE_NAMES = ("nvidia.dali", "nvidia")


def failed_for_missing_dali(excinfo: pytest.ExceptionInfo | None, longrepr_text: str) -> bool:
    """The failure is DALI's absence: the import error itself, or its message in the failure's text
    (e.g. a ``python -m train.run`` subprocess whose stderr the assertion shows)."""
    if excinfo is not None and excinfo.errisinstance(ModuleNotFoundError):
        name = getattr(excinfo.value, "name", None) or ""
        if name in _DALI_MODULE_NAMES or name.startswith("nvidia.dali"):
            return True
    return "No module named 'nvidia.dali'" in longrepr_text


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed and not dali_available():
        if failed_for_missing_dali(call.excinfo, str(report.longrepr)):
            report.outcome = "skipped"
            report.longrepr = (str(item.path), item.location[1] or 0, f"Skipped: {SKIP_REASON}")
