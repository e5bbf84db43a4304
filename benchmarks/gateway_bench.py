"""Dask Gateway: our gateway against a stock dask-gateway-server 2026.3.0, in the notebook environment.

Measured: `Gateway(...).new_cluster()`, scale(2), both workers connected and a small computation (sum of a
2000x2000 array in 16 chunks), from the notebook environment's Python, through our hub's service URL
(/services/dask-gateway, JupyterHub auth with a token of the member): our gateway_config (cluster
options, per-user limits wrapper, worker environment).
Baseline: the same client steps against a stock dask-gateway-server (benchmarks/stock_gateway_config.py: same
local-process backend, its defaults) behind a stock hub running beside ours.
Floor: the same steps on dask.distributed.LocalCluster(n_workers=2, processes=True).
Runs alternate in one process (dask_timing.py: local, ours, stock, ...); the median counts. Shutdown is
timed apart and not in the ratio.
"""

import json
import subprocess

from tests.smoke.hub import HubAPI

from . import procs, profiling
from .common import REPO, USER_PY, log, median, ratio

TARGET = 1.05
HERE = REPO / "benchmarks"
PHASES = ("cluster_s", "workers_s", "compute_s", "compute_again_s", "shutdown_s")


def _where(stack):
    """What hub_layer gives a notebook to reach this stack's gateway, with a fresh token of the member."""
    from deployer.local.hub_layer import GATEWAY_SERVICE
    from tests.smoke.login import standin_login

    hub = HubAPI(stack.hub_url, stack.api_token)
    user = stack.users["member"]
    # The hub refuses tokens of users whose GitHub auth it cannot refresh (never logged in): log in first.
    standin_login(stack.hub_url, user)
    hub.ensure_user(user)
    token = hub.user_token(user, note="benchmark: dask gateway")
    return {"address": f"{stack.hub_url}/services/{GATEWAY_SERVICE}",
            "public_address": f"/services/{GATEWAY_SERVICE}/",
            "proxy_address": f"gateway://127.0.0.1:{stack.ports['gateway_proxy']}",
            "api_token": token}


def _environment(stacks, where):
    from deployer.local.processes import STACK_ID_VAR

    return {
        "PATH": f"{USER_PY.parent}:/usr/local/bin:/usr/bin:/bin",
        "HOME": str(stacks["ours"].data_dir / "homes"),
        "BENCH_GATEWAYS": json.dumps(where),
        # Our stack's tag: its stop() also finds any LocalCluster worker this process leaves behind.
        STACK_ID_VAR: stacks["ours"].stack_id,
    }


def run(stacks, reps=3):
    """stacks: {"ours": stack, "stock": stack}."""
    where = {name: _where(stack) for name, stack in stacks.items()}
    env = _environment(stacks, where)
    server_pid = procs.tagged_process(stacks["ours"].stack_id, "bin/dask-gateway-server")
    # The first run of each warms the file cache and Python's bytecode caches; it is not counted.
    _timing(stacks["ours"], env, ["local", "gateway:ours", "gateway:stock"])
    cpu_before = procs.cpu_seconds(server_pid)
    order = []
    for i in range(reps):
        order += ["local", "gateway:ours", "gateway:stock"] if i % 2 == 0 else ["gateway:stock", "gateway:ours", "local"]
    runs = _timing(stacks["ours"], env, order)
    cpu_after = procs.cpu_seconds(server_pid)
    for r in runs:
        log(f"dask {r['mode']}: ready {r['ready_s']:.2f} s (cluster {r['cluster_s']:.2f}, workers "
            f"{r['workers_s']:.2f}, compute {r['compute_s']:.2f}), shutdown {r['shutdown_s']:.2f} s")

    def describe(mode, what):
        rs = [r for r in runs if r["mode"] == mode]
        return {"what": what, "median_s": median([r["ready_s"] for r in rs]), "samples_s": [r["ready_s"] for r in rs],
                "phases_median_s": {k: median([r[k] for r in rs]) for k in PHASES}}

    steps = "new_cluster(), scale(2), wait for 2 workers, compute"
    measured = describe("gateway:ours", f"our gateway via our hub's service URL (JupyterHub auth): {steps}")
    baseline = describe("gateway:stock", f"stock dask-gateway-server 2026.3.0 (same backend, its defaults) via a "
                                         f"stock hub: {steps}")
    floor = describe("local", "LocalCluster(n_workers=2, processes=True, threads_per_worker=1), same steps")
    value = ratio(measured["median_s"], baseline["median_s"])
    result = {
        "title": "Dask Gateway: ours vs stock dask-gateway-server 2026.3.0 (new cluster + 2 workers + compute)",
        "measured": measured,
        "baseline": baseline,
        "floor": floor,
        "ratio": value,
        "floor_ratio": ratio(measured["median_s"], floor["median_s"]),
        "repetitions": reps,
        "target": {"text": f"ratio <= {TARGET}", "met": value is not None and value <= TARGET},
        "gateway_server": {"cpu_s": None if cpu_before is None or cpu_after is None else cpu_after - cpu_before,
                           "runs": reps},
    }
    if not result["target"]["met"]:
        # One more run of ours with our gateway server sampled: is any of its time our configuration's?
        sampler = profiling.Sampler(server_pid, stacks["ours"].data_dir / "gateway-server.pyspy.txt")
        _timing(stacks["ours"], env, ["gateway:ours"])
        result["profile"] = {"what": "one more run of ours, our dask-gateway-server process sampled by py-spy",
                             **sampler.stop()}
    return result


def _timing(stack, env, modes):
    result = subprocess.run([str(USER_PY), str(HERE / "dask_timing.py"), *modes], cwd=stack.data_dir, env=env,
                            capture_output=True, text=True, timeout=120 + 60 * len(modes))
    if result.returncode != 0:
        raise RuntimeError(f"dask_timing.py failed ({result.returncode}): {result.stderr[-1500:]}")
    return [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
