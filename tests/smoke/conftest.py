"""Run directly (`pytest tests/smoke`, `make health`), the suite tests the hub the SMOKE_* variables name
(tests/smoke/target.py: from_environment). tests/local and tests/kind provide their own `smoke_target`."""

import pytest

from tests.smoke.fixtures import *  # noqa: F401,F403 (fixtures must be visible from this directory)
from tests.smoke.target import from_environment


@pytest.fixture(scope="session")
def smoke_target():
    target = from_environment()
    if target is None:
        pytest.skip("no hub to test: set SMOKE_HUB_URL, SMOKE_API_TOKEN and SMOKE_CLUSTER "
                    "(or run tests/local, which starts the local stack)")
    return target
