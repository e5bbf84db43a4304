"""Starts the local stack (deployer/local) once per session and hands it to the smoke suite as its target."""

import time

import pytest

from tests.faults import reliability
from tests.smoke.fixtures import *  # noqa: F401,F403 (pytest shows a conftest's fixtures only below it)
from tests.smoke.login import standin_login
from tests.smoke.report import record
from tests.smoke.target import Target


def pytest_collection_modifyitems(items):
    """The log check reads what every other test left in the stack's logs: it runs last."""
    items.sort(key=lambda item: item.module.__name__.endswith("test_logs"))


@pytest.fixture(scope="session")
def local_stack(tmp_path_factory):
    from deployer.local.stack import LocalStack

    stack = LocalStack(tmp_path_factory.mktemp("local-stack"), port=0)
    started = time.monotonic()
    try:
        stack.start()
        record("local stack start-up", time.monotonic() - started)
        for what, seconds in (stack.timings or {}).items():
            record(f"  {what}", seconds)
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="session")
def smoke_target(local_stack):
    return Target(
        hub_url=local_stack.hub_url,
        api_token=local_stack.api_token,
        users=local_stack.users,
        facts=local_stack.facts,
        login=lambda username: standin_login(local_stack.hub_url, username),
        description=f"local stack in {local_stack.data_dir}",
    )


# The attacks' outcomes join the reliability table (benchmarks/RELIABILITY.md) beside the faults'.
def pytest_runtest_setup(item):
    if getattr(item, "function", None) is not None and item.function.__module__ == "tests.smoke.test_attacks":
        reliability.started(item)


def pytest_runtest_logreport(report):
    reliability.reported(report)


def pytest_sessionfinish(session):
    reliability.write()
