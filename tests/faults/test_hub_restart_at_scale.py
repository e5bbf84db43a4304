"""The hub killed and restarted with 1,000 users in its database and 20 running (light) servers: how long
until it answers and every server is back in its hands (issue 13's figure). The servers are the login
storm's light servers, logged in and spawned by its code (benchmarks/storm.py)."""

import signal
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from benchmarks.storm import login_and_spawn
from benchmarks.variants import bench_stack
from tests.faults.reliability import Stopwatch, figure, wait_for
from tests.smoke.hub import HubAPI

pytestmark = pytest.mark.faults

RUNNING = 20
USERS_IN_DB = 1000
BATCH = 100


@pytest.fixture(scope="module")
def busy_hub(tmp_path_factory):
    logins = [f"scale{i:02d}" for i in range(RUNNING)]
    with bench_stack(tmp_path_factory.mktemp("hub-at-scale"), "ours", logins=logins, notes=[]) as stack:
        profile = stack.facts["notebook"]["sizes"][0]
        with ThreadPoolExecutor(5) as pool:
            records = list(pool.map(lambda name: login_and_spawn(stack.hub_url, name, profile), logins))
        failed = [r for r in records if "error" in r]
        assert not failed, failed[:3]
        hub = HubAPI(stack.hub_url, stack.api_token)
        others = [f"dbuser{i:04d}" for i in range(USERS_IN_DB - RUNNING)]
        for start in range(0, len(others), BATCH):
            hub.request("POST", "/users", json={"usernames": others[start:start + BATCH]}, expect=(201,))
        stack.logins, stack.hub_api = logins, hub
        yield stack


def _user_count(hub):
    page = hub.request("GET", "/users", params={"limit": 1}, headers={"Accept": "application/jupyterhub-pagination+json"})
    return page.json()["_pagination"]["total"]


def _all_ready(stack):
    users = stack.hub_api.request("GET", "/users", params={"state": "ready", "limit": 200}).json()
    return {u["name"] for u in users} >= set(stack.logins)


def _all_routes(stack):
    return all(requests.get(f"{stack.hub_url}/user/{name}/", timeout=5).status_code == 200 for name in stack.logins)


def test_hub_restart_with_1000_users_and_20_servers(busy_hub, request):
    """Hub SIGKILLed with 1,000 users in its database and 20 running servers: back, with every server re-adopted."""
    stack, hub = busy_hub, busy_hub.hub_api
    pids = {name: hub.server(name)["state"]["pid"] for name in stack.logins}
    assert _user_count(hub) == USERS_IN_DB
    clock = Stopwatch()
    stack.kill("hub", signal.SIGKILL)
    wait_for(lambda: stack.supervisor.restarts("hub") > 0, "the supervisor restarting the hub", 30)
    wait_for(lambda: requests.get(stack.hub_url + "/hub/api/", timeout=5).status_code == 200, "the hub's API", 180)
    figure(request, "hub API answers again", clock.seconds())
    wait_for(lambda: _all_ready(stack), f"all {RUNNING} servers listed ready", 180)
    figure(request, f"all {RUNNING} servers listed ready", clock.seconds())
    wait_for(lambda: _all_routes(stack), f"all {RUNNING} servers answering through the proxy", 180)
    figure(request, f"all {RUNNING} servers answer through the proxy", clock.seconds())
    assert {name: hub.server(name)["state"]["pid"] for name in stack.logins} == pids, "a server was replaced"
