"""A deployed hub, named by the SMOKE_* variables that `make health` sets (tests/smoke/target.py)."""

import pytest

from tests.smoke.target import from_environment


@pytest.fixture(scope="session")
def live_target():
    target = from_environment()
    if target is None:
        pytest.skip("no live hub: set SMOKE_HUB_URL, SMOKE_API_TOKEN and SMOKE_CLUSTER (`make health CLUSTER=…` does)")
    return target
