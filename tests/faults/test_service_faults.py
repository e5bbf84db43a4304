"""Pods killed under running work: hub, proxy, gateway, object store, a user's server (issue 13).

The tests share two users' running servers (alice computing in a kernel and writing scratch files, bob with
a Dask cluster computing) and run in file order: each leaves the service as a user would find it.
"""

import json
import os
import signal
import time

import pytest
import requests

from deployer.local import processes

from tests.faults.conftest import CULL_EVERY_MINUTES, CULL_IDLE_MINUTES, running_server
from tests.faults.reliability import Stopwatch, figure, wait_for

pytestmark = pytest.mark.faults

BACK_TIMEOUT_S = 120


@pytest.fixture(scope="module")
def alice(stack, hub):
    server = running_server(stack, hub, "member")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def bob(stack, hub):
    server = running_server(stack, hub, "member2")
    yield server
    if hub.server(server.name):
        server.stop()


@pytest.fixture(scope="module")
def idle_admin(stack, hub):
    """ada's server, never used: the culler's to stop."""
    server = running_server(stack, hub, "admin")
    server.started_at = time.monotonic()
    return server


@pytest.fixture(scope="module")
def bob_cluster(bob):
    """bob's Dask cluster with one worker, made from his notebook as the guide says."""
    bob.run("""
import json, time
from dask_gateway import Gateway
gateway = Gateway()
cluster = gateway.new_cluster()
cluster.scale(1)
client = cluster.get_client()
client.wait_for_workers(1, timeout=180)
def slow(x):
    import time
    time.sleep(15)
    return x * 2
""", timeout=240)
    return bob.run_json("print(json.dumps(cluster.name))")


def pid_of(hub, name):
    return hub.server(name)["state"]["pid"]


def server_answers(server):
    reply = requests.get(server.url + "api/status", headers={"Authorization": f"token {server.token}"}, timeout=5)
    return reply.status_code == 200


def hub_back(stack, hub, names):
    """The hub answers through the proxy and reports every one of `names`' servers ready."""
    if requests.get(stack.hub_url + "/hub/api/", timeout=5).status_code != 200:
        return False
    return all((hub.server(name) or {}).get("ready") for name in names)


SCRATCH_WRITER = """
import json, os, threading, time, fsspec
written, write_errors = [], []
stop_writing = threading.Event()
scratch_dir = os.environ["PANGEO_SCRATCH"] + "/faults-hub-kill"
def write_loop():
    i = 0
    while not stop_writing.is_set():
        path = f"{scratch_dir}/{i}.txt"
        try:
            with fsspec.open(path, "w") as f:
                f.write(str(i))
            written.append(path)
        except Exception as e:
            write_errors.append(repr(e))
        i += 1
        time.sleep(0.2)
writer = threading.Thread(target=write_loop, daemon=True)
writer.start()
# State held in the kernel, and a computation running while the hub dies.
state = {"answer": sum(range(10**6))}
def compute():
    time.sleep(10)
    state["late"] = 42
threading.Thread(target=compute, daemon=True).start()
"""


def test_hub_killed_loses_nothing(stack, hub, alice, bob, bob_cluster, idle_admin, request):
    """Hub SIGKILLed and restarted (a helm upgrade) while two users compute: servers, kernel state, scratch
    files, Dask cluster and browser sessions all survive."""
    pids = {name: pid_of(hub, name) for name in (alice.name, bob.name)}
    alice.run(SCRATCH_WRITER)
    bob.run("future = client.submit(slow, 21, pure=False)")
    hub_restarts = stack.supervisor.restarts("hub")
    clock = Stopwatch()
    stack.kill("hub", signal.SIGKILL)
    wait_for(lambda: stack.supervisor.restarts("hub") > hub_restarts, "the supervisor restarting the hub", 30)
    wait_for(lambda: hub_back(stack, hub, [alice.name, bob.name]), "the hub back with both servers", BACK_TIMEOUT_S)
    figure(request, "hub back (API answers, both servers listed ready)", clock.seconds())

    assert {name: pid_of(hub, name) for name in pids} == pids, "a server was replaced, not re-adopted"
    # The computation started before the kill ends 10 s after it began, in the same kernel.
    assert alice.run_json("time.sleep(8); print(json.dumps(state))") == {"answer": 499999500000, "late": 42}
    files = alice.run_json("""
stop_writing.set(); writer.join(5)
fs = fsspec.filesystem("s3")
found = {"s3://" + p for p in fs.ls(scratch_dir, refresh=True)}
print(json.dumps({"written": len(written), "missing": sorted(set(written) - found), "errors": write_errors[:3]}))
""")
    assert files["written"] > 0 and files["missing"] == [] and files["errors"] == [], files
    assert bob.run_json("print(json.dumps(future.result(timeout=120)))") == 42
    assert bob.run_json("print(json.dumps([c.name for c in gateway.list_clusters()]))") == [bob_cluster]
    for server in (alice, bob):
        home = server.session.get(stack.hub_url + "/hub/home", timeout=30)
        assert home.status_code == 200 and home.url.endswith("/hub/home"), (server.name, home.status_code, home.url)
        lab = server.session.get(server.url + "lab", timeout=60)
        assert lab.status_code == 200 and lab.url.startswith(server.url), (server.name, lab.status_code, lab.url)


def test_proxy_killed_routes_come_back(stack, hub, alice, bob, request):
    """Proxy SIGKILLed and restarted: every running server's route comes back without a hub restart."""
    hub_restarts = stack.supervisor.restarts("hub")
    clock = Stopwatch()
    stack.kill("proxy", signal.SIGKILL)
    wait_for(lambda: stack.supervisor.restarts("proxy") > 0, "the supervisor restarting the proxy", 30)
    wait_for(lambda: requests.get(stack.hub_url + "/hub/api/", timeout=5).status_code == 200,
             "the hub's route", BACK_TIMEOUT_S)
    figure(request, "proxy back, hub route", clock.seconds())
    wait_for(lambda: server_answers(alice) and server_answers(bob), "both servers' routes", BACK_TIMEOUT_S)
    figure(request, "every server route back", clock.seconds())
    wait_for(lambda: requests.get(stack.hub_url + "/services/dask-gateway/api/health", timeout=5).status_code == 200,
             "the gateway's route", BACK_TIMEOUT_S)
    assert stack.supervisor.restarts("hub") == hub_restarts, "the hub was restarted to heal the routes"
    for server in (alice, bob):  # their kernels' websockets went through the proxy: reconnect, as JupyterLab does
        server.kernel().connect()
    assert alice.run_json("print(json.dumps(state['answer']))") == 499999500000


def test_gateway_killed_clusters_survive(stack, bob, bob_cluster, request):
    """Gateway SIGKILLed and restarted with a cluster computing: its owner can still use, scale and stop it."""
    bob.run("future = client.submit(slow, 5, pure=False)")
    clock = Stopwatch()
    stack.kill("gateway", signal.SIGKILL)
    wait_for(lambda: stack.supervisor.restarts("gateway") > 0, "the supervisor restarting the gateway", 30)
    wait_for(lambda: requests.get(stack.hub_url + "/services/dask-gateway/api/health", timeout=5).status_code == 200,
             "the gateway's health", BACK_TIMEOUT_S)
    figure(request, "gateway back", clock.seconds())
    assert bob.run_json("print(json.dumps([c.name for c in gateway.list_clusters()]))") == [bob_cluster]
    assert bob.run_json("print(json.dumps(future.result(timeout=120)))") == 10
    out = bob.run_json("""
cluster.scale(2)
client.wait_for_workers(2, timeout=180)
total = client.submit(sum, range(10)).result(timeout=60)
workers = len(client.scheduler_info()["workers"])
client.close(); cluster.shutdown()
print(json.dumps({"sum": total, "workers": workers, "left": [c.name for c in gateway.list_clusters()]}))
""", timeout=300)
    assert out == {"sum": 45, "workers": 2, "left": []}, out
    figure(request, "scaled to 2 and stopped after the restart", clock.seconds())


def test_object_store_down_then_back(stack, alice, request):
    """Object store down, then back: writes fail with a clear error, nothing written is lost, and writes work
    again without restarting the server."""
    alice.run("""
import fsspec
kept = os.environ["PANGEO_SCRATCH"] + "/faults-store/kept.txt"
with fsspec.open(kept, "w") as f:
    f.write("kept")
""")
    stack.hold("scratch-store")
    try:
        refused = alice.run_json("""
t0 = time.monotonic()
try:
    with fsspec.open(os.environ["PANGEO_SCRATCH"] + "/faults-store/during.txt", "w") as f:
        f.write("x")
    outcome = "written"
except Exception as e:
    outcome = f"{type(e).__name__}: {e}"
print(json.dumps({"outcome": outcome, "seconds": time.monotonic() - t0}))
""", timeout=300)
    finally:
        stack.release("scratch-store")
    figure(request, "a write while the store is down fails after", round(refused["seconds"], 1))
    assert refused["outcome"] != "written", refused
    assert any(word in refused["outcome"].lower() for word in ("connect", "endpoint", "unreachable")), refused
    clock = Stopwatch()
    back = wait_for(lambda: alice.run_json("""
try:
    with fsspec.open(os.environ["PANGEO_SCRATCH"] + "/faults-store/after.txt", "w") as f:
        f.write("after")
    fs = fsspec.filesystem("s3"); fs.invalidate_cache()
    print(json.dumps(fs.cat(kept).decode()))
except Exception as e:
    print(json.dumps(False))
""", timeout=120), "writes working again", 180, interval_s=2)
    assert back == "kept"
    figure(request, "writes work again after the store is back", clock.seconds())


def _scratch_service_pids(stack):
    return processes.tagged_pids(stack.stack_id, also="JUPYTERHUB_SERVICE_NAME=scratch-credentials")


FRESH_WRITE = """
import s3fs
fs = s3fs.S3FileSystem(skip_instance_cache=True)  # a new botocore session: it must ask the service
try:
    fs.pipe_file(os.environ["PANGEO_SCRATCH"] + "/faults-credentials/{name}.txt", b"{name}")
    print(json.dumps("written"))
except Exception as e:
    print(json.dumps(f"{{type(e).__name__}}: {{e}}"))
"""


def test_scratch_credentials_service_killed_then_back(stack, alice, request):
    """The credentials service killed (its pod replaced): sessions holding credentials keep writing, a new
    session fails with an error (never anonymous access) until the service is back, then works again without
    restarting the user's server; nothing written is lost."""
    alice.run("""
import json, os, s3fs
held = s3fs.S3FileSystem(skip_instance_cache=True)
held.pipe_file(os.environ["PANGEO_SCRATCH"] + "/faults-credentials/before.txt", b"before")
""")
    pids = _scratch_service_pids(stack)
    assert pids, "no scratch-credentials process tagged with this stack"
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    clock = Stopwatch()
    # The botocore session that already holds credentials does not need the service until they near expiry.
    assert alice.run_json("""
held.pipe_file(os.environ["PANGEO_SCRATCH"] + "/faults-credentials/held.txt", b"held")
print(json.dumps("written"))
""") == "written"
    during = alice.run_json(FRESH_WRITE.format(name="during"), timeout=120)
    if during != "written":  # the hub may already have started it again; if not, the error must be a clear one
        assert any(word in during for word in ("Connection refused", "Could not connect", "Error retrieving",
                                               "Scratch credentials")), during
    back = wait_for(lambda: alice.run_json(FRESH_WRITE.format(name="after"), timeout=120) == "written",
                    "a new session's credentials from the restarted service", BACK_TIMEOUT_S, interval_s=2)
    assert back
    figure(request, "scratch-credentials back (a new session writes) after", clock.seconds())
    assert alice.run_json("""
print(json.dumps(sorted(p.rsplit("/", 1)[-1] for p in held.ls(os.environ["PANGEO_SCRATCH"] + "/faults-credentials",
                                                              refresh=True))))
""") == sorted({"before.txt", "held.txt", "after.txt"} | ({"during.txt"} if during == "written" else set()))


def test_user_server_dies_user_sees_restart_page(stack, hub, bob, request):
    """A user's server process dies: the hub notices, and the user sees a clear page with a way to restart."""
    import os

    os.kill(pid_of(hub, bob.name), signal.SIGKILL)
    clock = Stopwatch()
    page = wait_for(lambda: _not_running_page(stack, bob), "a page saying bob's server is not running", 120)
    figure(request, "the user sees the not-running page after", clock.seconds())
    assert page.status_code in (424, 503) or page.status_code == 200, page.status_code
    assert f"/hub/spawn/{bob.name}" in page.text or "/hub/spawn" in page.text, page.text[:2000]
    assert "Traceback" not in page.text
    wait_for(lambda: hub.server(bob.name) is None, "the hub noticing bob's server is gone", 120)
    figure(request, "the hub marks the server stopped after", clock.seconds())


def _not_running_page(stack, server):
    page = server.session.get(f"{stack.hub_url}/user/{server.name}/lab", timeout=30)
    return page if "not running" in page.text.lower() else None


def test_culler_still_works_after_hub_restart(stack, hub, idle_admin, request):
    """The idle culler, restarted with the hub, still stops an idle server."""
    limit = CULL_IDLE_MINUTES * 60 + CULL_EVERY_MINUTES * 60 + 120
    wait_for(lambda: hub.server(idle_admin.name) is None, f"{idle_admin.name}'s idle server culled", limit, 2)
    figure(request, "idle server culled after start (idle timeout "
           f"{CULL_IDLE_MINUTES:g} min)", round(time.monotonic() - idle_admin.started_at, 1))
