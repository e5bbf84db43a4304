"""The load tier (`make test-load`): its outcome and figures join the reliability table too."""

from tests.faults.conftest import pytest_runtest_logreport, pytest_runtest_setup, pytest_sessionfinish  # noqa: F401
