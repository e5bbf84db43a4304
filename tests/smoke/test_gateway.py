"""Dask Gateway from a notebook, exactly as researchers call it: `Gateway()` with no arguments."""

import re

import pytest

from .kernel import Kernel
from .report import record

pytestmark = pytest.mark.smoke

GATEWAY_TIMEOUT = 240  # seconds: cluster start and two workers on a busy 2-core machine or a cold node pool
IDLE_TIMEOUT_MINUTES = 0.25  # the idle test's own, shortened, timeout


class TestGateway:
    """One cluster of the member's, from `Gateway().new_cluster()`, in a kernel of its own.

    Class-scoped so that it is gone before other tests (the guide's) count the member's clusters.
    """

    @pytest.fixture(scope="class")
    def cluster(self, member_server, member2_server):
        kernel = Kernel(member_server.url, member_server.token)
        started = kernel.run_json(f"""
import json, os, time
from dask_gateway import Gateway
gateway = Gateway()
t0 = time.monotonic()
cluster = gateway.new_cluster()
t1 = time.monotonic()
cluster.scale(2)
client = cluster.get_client()
client.wait_for_workers(2, timeout={GATEWAY_TIMEOUT})
print(json.dumps({{"name": cluster.name, "new_cluster": t1 - t0, "two_workers": time.monotonic() - t1}}))
""", timeout=GATEWAY_TIMEOUT + 60)
        record("gateway: new_cluster()", started["new_cluster"])
        record("gateway: scale(2) until 2 workers", started["two_workers"])
        kernel.cluster_name = started["name"]
        yield kernel
        try:
            kernel.run("client.close()\nfor c in gateway.list_clusters(): gateway.stop_cluster(c.name)", timeout=120)
        finally:
            kernel.close()

    def test_cluster_computes_with_two_workers(self, cluster):
        out = cluster.run_json("""
import dask.array as da
workers = client.scheduler_info()["workers"]
total = da.ones((2000, 2000), chunks=(500, 500)).sum().compute()
print(json.dumps({"workers": len(workers), "total": float(total), "sum": client.submit(sum, range(10)).result()}))
""")
        assert out == {"workers": 2, "total": 4_000_000.0, "sum": 45}

    def test_workers_match_the_notebook(self, cluster):
        cluster.run("client.get_versions(check=True)")

    def test_workers_see_pangeo_scratch(self, cluster):
        seen = cluster.run_json("""
seen = client.run(lambda: __import__("os").environ.get("PANGEO_SCRATCH"))
print(json.dumps({"notebook": os.environ["PANGEO_SCRATCH"], "workers": sorted(set(seen.values()))}))
""")
        assert seen["workers"] == [seen["notebook"]], seen

    def test_workers_write_and_read_their_prefix_with_no_arguments(self, cluster):
        """Each worker fetches its own credentials (its process has only its own environment): chunks of a
        Zarr store are written and read on the workers, and a worker writes a file of its own."""
        out = cluster.run_json("""
import uuid
import dask.array as da
import fsspec
import xarray as xr
path = os.environ["PANGEO_SCRATCH"] + "/smoke/" + uuid.uuid4().hex
ds = xr.Dataset({"t": ("x", da.arange(1000, chunks=100))})
ds.to_zarr(path + "/ds.zarr", mode="w")
total = float(xr.open_zarr(path + "/ds.zarr").t.sum().compute())
def write_here(p):
    with fsspec.open(p, "w") as f:
        f.write("from a worker")
    with fsspec.open(p) as f:
        return f.read().decode()
from_worker = client.submit(write_here, path + "/worker.txt", pure=False).result()
fsspec.filesystem(path.split("://")[0]).rm(path, recursive=True)
print(json.dumps({"total": total, "from_worker": from_worker}))
""", timeout=180)
        assert out == {"total": 499500.0, "from_worker": "from a worker"}

    def test_another_user_can_neither_see_nor_stop_it(self, cluster, member2_server):
        outcome = member2_server.run_json(f"""
import json
from dask_gateway import Gateway
gateway = Gateway()
outcome = {{"listed": [c.name for c in gateway.list_clusters()]}}
for action in ("connect", "stop_cluster"):
    try:
        getattr(gateway, action)({cluster.cluster_name!r})
        outcome[action] = "allowed"
    except Exception as e:
        outcome[action] = f"{{type(e).__name__}}: {{e}}"
print(json.dumps(outcome))
""")
        assert cluster.cluster_name not in outcome["listed"]
        assert "403" in outcome["connect"], f"{member2_server.name} connecting to the member's cluster: {outcome}"
        assert "403" in outcome["stop_cluster"], f"{member2_server.name} stopping the member's cluster: {outcome}"
        alive = cluster.run_json("""
print(json.dumps({"status": [c.status.name for c in gateway.list_clusters() if c.name == cluster.name],
                  "workers": len(client.scheduler_info()["workers"])}))
""")
        assert alive == {"status": ["RUNNING"], "workers": 2}, f"after {member2_server.name}'s attempts: {alive}"

    @pytest.fixture
    def notebook(self, member_server):
        """Another notebook of the member's. Refusals are tried there, not beside the cluster's client:
        with dask-gateway 2026.3.0, the second GatewayCluster that fails to start in a process stops the
        event loop its other clients share, and they hang from then on."""
        with Kernel(member_server.url, member_server.token) as kernel:
            kernel.run("import json\nfrom dask_gateway import Gateway\ngateway = Gateway()")
            yield kernel

    @pytest.mark.parametrize("option, limit, unit", [
        ("worker_memory", lambda f: max(f["sizes"][s]["memory_gib"]["limit"] for s in f["dask_gateway"]["worker_sizes"]), "GiB"),
        ("worker_cores", lambda f: max(f["sizes"][s]["cpu"]["limit"] for s in f["dask_gateway"]["worker_sizes"]), "cores"),
        ("idle_timeout_minutes", lambda f: f["dask_gateway"]["idle_timeout_minutes"]["maximum"], "minutes"),
    ], ids=["worker_memory", "worker_cores", "idle_timeout_minutes"])
    def test_options_above_the_limits_are_refused(self, cluster, notebook, facts, option, limit, unit):
        """One wording, whether the option is set or passed, and it is the first line the researcher reads."""
        maximum = limit(facts)
        value = maximum * 2 + 1
        wording = (f"ValueError: {option}={value:g} is not allowed on this hub: choose more than 0 and at most "
                   f"{maximum:g} {unit}")
        assigned = notebook.shown_error(f"options = gateway.cluster_options()\noptions.{option} = {value}",
                                        timeout=GATEWAY_TIMEOUT)
        assert assigned == wording
        passed = notebook.shown_error(f"gateway.new_cluster({option}={value})", timeout=GATEWAY_TIMEOUT)
        assert passed == wording

    def test_clusters_beyond_the_users_limit_are_refused(self, cluster, notebook, facts):
        allowed = facts["dask_gateway"]["limits_per_user"]["clusters"]
        # the class's cluster is the first; gateway.submit() asks for a cluster without connecting to it
        notebook.run(f"extras = [gateway.submit() for _ in range({allowed} - 1)]", timeout=GATEWAY_TIMEOUT)
        try:
            shown = notebook.shown_error("gateway.submit()", timeout=GATEWAY_TIMEOUT)  # uncaught, as in a notebook
        finally:
            notebook.run("for name in extras: gateway.stop_cluster(name)", timeout=GATEWAY_TIMEOUT)
        pattern = (rf"ValueError: You already have {allowed} Dask clusters running or starting \([0-9a-f., ]+\); each "
                   rf"user may have at most {allowed} at once on {re.escape(facts['name'])}\. Close one first: "
                   r"cluster\.close\(\), or gateway\.stop_cluster\(name\) \(gateway\.list_clusters\(\) lists yours\)\.")
        assert re.fullmatch(pattern, shown), shown

    def test_an_image_that_cannot_run_is_refused_at_once(self, notebook, facts):
        shown = notebook.shown_error("gateway.new_cluster(image='no-such-image:latest')", timeout=GATEWAY_TIMEOUT)
        if facts["cloud"] == "local":
            assert shown == ("ValueError: image='no-such-image:latest' cannot be used on this hub: its Dask schedulers "
                             "and workers are processes running the notebook's own packages, not containers; leave "
                             "image empty")
        else:
            assert shown == ("ValueError: image='no-such-image:latest' is not allowed on this hub: Dask schedulers and "
                             f"workers run the notebook's image, {facts['notebook']['image']['name']}:<tag>; leave image "
                             "empty to use your notebook's own")

    def test_idle_cluster_is_shut_down(self, notebook):
        """A cluster whose owner shortened its idle timeout (an option every hub offers) is stopped by the
        gateway once idle that long; the hub's own default (30 min on deployed hubs) is checked offline."""
        seconds = IDLE_TIMEOUT_MINUTES * 60
        wait = seconds * 2 + 60
        gone = notebook.run_json(f"""
import time
idle = gateway.new_cluster(idle_timeout_minutes={IDLE_TIMEOUT_MINUTES})
idle.scale(1)
with idle.get_client() as client:
    client.wait_for_workers(1, timeout={GATEWAY_TIMEOUT})
    client.submit(sum, [1, 2]).result()
t0 = time.monotonic()
while gateway.get_cluster(idle.name).status.name not in ("STOPPED", "FAILED") and time.monotonic() - t0 < {wait}:
    time.sleep(1)
print(json.dumps({{"seconds": time.monotonic() - t0, "status": gateway.get_cluster(idle.name).status.name}}))
""", timeout=wait + GATEWAY_TIMEOUT)
        record(f"gateway: idle cluster stopped (idle timeout {seconds:g} s)", gone["seconds"])
        assert gone["status"] == "STOPPED", f"the cluster is {gone['status']} {gone['seconds']:.0f} s after it was left idle ({seconds:g} s timeout)"
        assert gone["seconds"] >= seconds * 0.9, f"stopped after {gone['seconds']:.0f} s, before {seconds:g} s idle"
