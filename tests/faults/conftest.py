"""The faults tier (`make test-faults`): the local stack with faults injected as Kubernetes would see them
(a pod killed and restarted, a service down for a while), each test checking that nothing was lost.

One stack for the tier, with a short idle-culler timeout so that the culler can be seen working after a hub
restart. Every test's outcome and figures go into benchmarks/RELIABILITY.md (reliability.py).
"""

import pytest

from tests.faults import reliability
from tests.smoke.hub import HubAPI, UserServer
from tests.smoke.login import standin_login

CULL_IDLE_MINUTES = 2.0
CULL_EVERY_MINUTES = 0.25


@pytest.fixture(scope="session")
def stack(tmp_path_factory):
    from deployer.local.stack import LocalStack

    overrides = {"notebook": {"culling": {"idle_minutes": CULL_IDLE_MINUTES, "every_minutes": CULL_EVERY_MINUTES}}}
    with LocalStack(tmp_path_factory.mktemp("faults-stack"), port=0, overrides=overrides) as stack:
        yield stack


@pytest.fixture(scope="session")
def hub(stack):
    return HubAPI(stack.hub_url, stack.api_token)


def running_server(stack, hub, role):
    """The role's user logged in through the stand-in (a browser session, kept for later) with a running server
    of the smallest size."""
    name = stack.users[role]
    session = standin_login(stack.hub_url, name)
    server = UserServer(hub, name)
    server.session = session
    server.start(stack.facts["notebook"]["sizes"][0])
    # The browser visits the server once: the server's own login cookie is set too.
    page = session.get(server.url + "lab", timeout=60)
    assert page.status_code == 200 and "/user/" in page.url, (page.status_code, page.url)
    return server


def pytest_runtest_setup(item):
    reliability.started(item)


def pytest_runtest_logreport(report):
    reliability.reported(report)


def pytest_sessionfinish(session):
    reliability.write()
