"""Gateway overhead: a Dask cluster through Dask Gateway against a plain LocalCluster, in the notebook environment.

Measured: `Gateway().new_cluster()`, scale(2), both workers connected and a small computation (sum of a
2000x2000 array in 16 chunks), from the notebook environment's Python with the hub's notebook settings
(the gateway as the hub service /services/dask-gateway, JupyterHub auth with a token of the member).
Baseline: the same on dask.distributed.LocalCluster(n_workers=2, processes=True). Runs alternate in one
process (dask_timing.py); the median counts. Shutdown is timed apart and not in the ratio.
"""

import json
import subprocess

from tests.smoke.hub import HubAPI

from . import procs, profiling
from .common import REPO, USER_PY, log, median, ratio

TARGET = 1.2
HERE = REPO / "benchmarks"


def _notebook_environment(stack, token):
    """What hub_layer gives a notebook to reach the gateway, for a process outside any notebook."""
    from deployer.local.hub_layer import GATEWAY_SERVICE
    from deployer.local.processes import STACK_ID_VAR

    return {
        "PATH": f"{USER_PY.parent}:/usr/local/bin:/usr/bin:/bin",
        "HOME": str(stack.data_dir / "homes"),
        "DASK_GATEWAY__ADDRESS": f"{stack.hub_url}/services/{GATEWAY_SERVICE}",
        "DASK_GATEWAY__PUBLIC_ADDRESS": f"/services/{GATEWAY_SERVICE}/",
        "DASK_GATEWAY__PROXY_ADDRESS": f"gateway://127.0.0.1:{stack.ports['gateway_proxy']}",
        "DASK_GATEWAY__AUTH__TYPE": "jupyterhub",
        "JUPYTERHUB_API_TOKEN": token,
        # The stack's tag: its stop() also finds any worker this process leaves behind.
        STACK_ID_VAR: stack.stack_id,
    }


def run(stack, reps=3):
    from tests.smoke.login import standin_login

    hub = HubAPI(stack.hub_url, stack.api_token)
    user = stack.users["member"]
    # The hub refuses tokens of users whose GitHub auth it cannot refresh (never logged in): log in first.
    standin_login(stack.hub_url, user)
    hub.ensure_user(user)
    token = hub.user_token(user, note="benchmark: dask gateway")
    env = _notebook_environment(stack, token)
    server_pid = procs.tagged_process(stack.stack_id, "bin/dask-gateway-server")
    # The first run of each warms the file cache and Python's bytecode caches; it is not counted.
    _timing(stack, env, ["local", "gateway"])
    cpu_before = procs.cpu_seconds(server_pid)
    runs = _timing(stack, env, ["local", "gateway"] * reps)
    cpu_after = procs.cpu_seconds(server_pid)
    by_mode = {mode: [r for r in runs if r["mode"] == mode] for mode in ("gateway", "local")}
    for r in runs:
        log(f"dask {r['mode']}: ready {r['ready_s']:.2f} s (cluster {r['cluster_s']:.2f}, workers "
            f"{r['workers_s']:.2f}, compute {r['compute_s']:.2f}), shutdown {r['shutdown_s']:.2f} s")

    def describe(mode):
        rs = by_mode[mode]
        return {"median_s": median([r["ready_s"] for r in rs]), "samples_s": [r["ready_s"] for r in rs],
                "phases_median_s": {k: median([r[k] for r in rs]) for k in
                                    ("cluster_s", "workers_s", "compute_s", "compute_again_s", "shutdown_s")}}

    measured, baseline = describe("gateway"), describe("local")
    value = ratio(measured["median_s"], baseline["median_s"])
    result = {
        "title": "Gateway overhead: new cluster + 2 workers + small computation, vs LocalCluster",
        "measured": {"what": "Gateway().new_cluster(), scale(2), wait for 2 workers, compute (via the hub's "
                             "service URL, JupyterHub auth)", **measured},
        "baseline": {"what": "LocalCluster(n_workers=2, processes=True, threads_per_worker=1), same steps", **baseline},
        "ratio": value,
        "repetitions": reps,
        "target": {"text": f"ratio <= {TARGET}", "met": value is not None and value <= TARGET},
        "gateway_server": {"cpu_s": None if cpu_before is None or cpu_after is None else cpu_after - cpu_before,
                           "runs": reps},
    }
    if not result["target"]["met"]:
        # One more gateway run with the gateway server sampled: is any of its time our configuration's?
        sampler = profiling.Sampler(server_pid, stack.data_dir / "gateway-server.pyspy.txt")
        _timing(stack, env, ["gateway"])
        result["profile"] = {"what": "one more gateway run, the dask-gateway-server process sampled by py-spy",
                             **sampler.stop()}
    return result


def _timing(stack, env, modes):
    result = subprocess.run([str(USER_PY), str(HERE / "dask_timing.py"), *modes], cwd=stack.data_dir, env=env,
                            capture_output=True, text=True, timeout=120 + 60 * len(modes))
    if result.returncode != 0:
        raise RuntimeError(f"dask_timing.py failed ({result.returncode}): {result.stderr[-1500:]}")
    return [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
