"""200 users log in and start (light) servers within a minute, then a 10-minute soak of server traffic, hub
API calls and culling (issue 13). Bounded in count and time; 127.0.0.1 only.

The login flow, the light servers and the API prober are the login storm's (benchmarks/storm.py): the same
code measures the storm there and proves the soak here.
"""

import random
import threading
import time

import pytest
import requests

from benchmarks.common import percentile
from benchmarks.procs import find_server
from deployer.local.processes import STACK_ID_VAR
from benchmarks.storm import Prober, login_and_spawn
from benchmarks.variants import bench_stack
from tests.faults.reliability import figure

pytestmark = pytest.mark.load

USERS = 200
ARRIVAL_S = 60.0
SOAK_S = 600.0
IDLE_USERS = 50  # never touched after their spawn: the culler's
CULL = {"idle_minutes": 3.0, "every_minutes": 0.5}
ACTIVITY_PERIOD_S = 20.0  # each active user's server sees a request this often (well under the idle timeout)
ACTIVITY_THREADS = 8
# The hub's memory at the end of the soak, against its memory once all servers were up: a leak of the
# soak's ~70,000 requests would show as steady growth; the hub's caches settle well within this.
MEMORY_GROWTH_BOUND = 1.25
TIMEOUT = 30


def rss_mib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    raise AssertionError(f"no VmRSS for pid {pid}")


@pytest.fixture(scope="module")
def storm(tmp_path_factory):
    logins = [f"load{i:03d}" for i in range(USERS)]
    notes = []
    with bench_stack(tmp_path_factory.mktemp("load"), "ours", logins=logins, notes=notes,
                     overrides={"notebook": {"culling": CULL}}) as stack:
        stack.logins = logins
        yield stack


def arrive(stack, logins, profile):
    """Each user starts at their own moment within ARRIVAL_S, as a morning's logins do."""
    records = [None] * len(logins)

    def user(i):
        time.sleep(i * ARRIVAL_S / len(logins))
        records[i] = login_and_spawn(stack.hub_url, logins[i], profile)

    threads = [threading.Thread(target=user, args=(i,), daemon=True) for i in range(len(logins))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(ARRIVAL_S + 300)
    return [r or {"user": logins[i], "error": "did not finish"} for i, r in enumerate(records)]


def soak(stack, active, failures):
    """Until SOAK_S is over: each active user's server gets a request and their hub model is read, every
    ACTIVITY_PERIOD_S. Every answer but 200 is a failure."""
    api = requests.Session()
    api.headers["Authorization"] = f"token {stack.api_token}"
    end = time.monotonic() + SOAK_S
    queue = list(active)

    def worker(names):
        session = requests.Session()
        while time.monotonic() < end:
            began = time.monotonic()
            for name in names:
                for url, client in ((f"{stack.hub_url}/user/{name}/", session),
                                    (f"{stack.hub_url}/hub/api/users/{name}", api)):
                    try:
                        status = client.get(url, timeout=TIMEOUT).status_code
                    except requests.RequestException as e:
                        status = repr(e)
                    if status != 200:
                        failures.append((name, url, status))
            time.sleep(max(0.0, ACTIVITY_PERIOD_S - (time.monotonic() - began)))

    share = [queue[i::ACTIVITY_THREADS] for i in range(ACTIVITY_THREADS)]
    threads = [threading.Thread(target=worker, args=(names,), daemon=True) for names in share]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(SOAK_S + 120)


def proxy_routes(stack):
    reply = requests.get(f"http://127.0.0.1:{stack.ports['proxy_api']}/api/routes", timeout=TIMEOUT,
                         headers={"Authorization": f"token {stack._secrets['proxy_token']}"})
    reply.raise_for_status()
    return set(reply.json())


def running_servers(stack):
    reply = requests.get(f"{stack.hub_url}/hub/api/users", params={"state": "active", "limit": 1000},
                         headers={"Authorization": f"token {stack.api_token}"}, timeout=TIMEOUT)
    reply.raise_for_status()
    return {u["name"] for u in reply.json() if u["servers"].get("", {}).get("ready")}


@pytest.mark.timeout(ARRIVAL_S + SOAK_S + 600)  # beyond pytest.ini's 600 s per test: the soak alone is 600 s
def test_storm_then_soak_loses_nothing(storm, request):
    """200 users log in and spawn within a minute, then 10 minutes of traffic, API calls and culling: no failed
    login, spawn or request; idle servers culled, active ones kept; hub, proxy and processes agree; no leak."""
    stack = storm
    profile = stack.facts["notebook"]["sizes"][0]
    prober = Prober(stack.hub_url, stack.api_token)
    prober.start()
    began = time.monotonic()
    records = arrive(stack, stack.logins, profile)
    figure(request, f"{USERS} logins and spawns, arriving over {ARRIVAL_S:.0f} s, all ready after",
           round(time.monotonic() - began, 1))
    failed = [r for r in records if "error" in r]
    assert not failed, f"{len(failed)} failed logins or spawns, e.g. {failed[:5]}"
    figure(request, "spawn p99", round(percentile([r["spawn_s"] for r in records], 99), 2))

    hub_pid = stack._processes["hub"].pid
    memory_start = rss_mib(hub_pid)
    idle = set(random.Random(13).sample(stack.logins, IDLE_USERS))
    active = [name for name in stack.logins if name not in idle]
    failures = []
    soak(stack, active, failures)
    prober.stop()
    memory_end = rss_mib(hub_pid)
    figure(request, "hub API p99 over the storm and soak", round(percentile(prober.latencies_ms, 99)), "ms")
    figure(request, "hub memory after the storm / after the soak", f"{memory_start} / {memory_end}", "MiB")
    assert not failures, f"{len(failures)} failed requests during the soak, e.g. {failures[:5]}"
    assert not prober.failures, f"hub API failures: {prober.failures[:5]}"

    running = running_servers(stack)
    assert running == set(active), (f"culled but active: {sorted(set(active) - running)[:5]}; "
                                    f"idle but not culled: {sorted(running - set(active))[:5]}")
    routes = {r.rstrip("/") for r in proxy_routes(stack) if r.startswith("/user/")}  # CHP's keys lack the slash
    expected = {f"/user/{name}" for name in active}
    assert routes == expected, f"routes without a server, servers without a route: {sorted(routes ^ expected)[:5]}"
    left = [name for name in idle if find_server(name, STACK_ID_VAR, stack.stack_id)]
    assert not left, f"culled servers whose processes still run: {left[:5]}"
    assert stack._processes["hub"].pid == hub_pid, "the hub restarted during the soak"
    assert memory_end <= memory_start * MEMORY_GROWTH_BOUND, (memory_start, memory_end)
