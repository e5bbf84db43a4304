"""Run by the notebook environment's Python (.venv/user), not by the bench process:

    python dask_timing.py gateway:ours gateway:stock local ...   (JSON lines on stdout, one per run)

Each run times the same thing on a fresh cluster: cluster created, two workers connected, one small
computation done (`ready_s`); then the same computation again (warm workers) and the shutdown, apart.
`gateway:<name>` is `Gateway(...).new_cluster()` with the address, proxy address and token that
BENCH_GATEWAYS (JSON: {name: {address, public_address, proxy_address, api_token}}) gives for <name>, the
values the hub gives notebooks as DASK_GATEWAY__* and JUPYTERHUB_API_TOKEN;
`local` is dask.distributed.LocalCluster(n_workers=2, processes=True) on 127.0.0.1.
Imports happen before any timing, so both modes start from the same warm interpreter; they happen in
main(), not at the top, because LocalCluster's worker processes (multiprocessing "spawn") re-import this
module: top-level imports would pre-load dask.array and numpy into its workers, which gateway workers and
workers started from a notebook import at their first task.
"""

import json
import os
import sys
import time

WORKERS = 2
TIMEOUT_S = 180


def compute(client):
    import dask.array as da

    total = client.compute(da.ones((2000, 2000), chunks=(500, 500)).sum()).result()
    if total != 4_000_000:
        raise RuntimeError(f"wrong result {total}")


def timed_work(client, started, created, close):
    """The same steps after either cluster exists: wait for the workers, compute twice, close; the times."""
    client.wait_for_workers(WORKERS, timeout=TIMEOUT_S)
    workers = time.monotonic()
    compute(client)
    ready = time.monotonic()
    compute(client)
    again = time.monotonic()
    client.close()
    for step in close:
        step()
    return {"ready_s": ready - started, "cluster_s": created - started, "workers_s": workers - created,
            "compute_s": ready - workers, "compute_again_s": again - ready, "shutdown_s": time.monotonic() - again}


def gateway_run(name):
    from dask_gateway import Gateway, JupyterHubAuth

    where = json.loads(os.environ["BENCH_GATEWAYS"])[name]
    started = time.monotonic()
    gateway = Gateway(address=where["address"], proxy_address=where["proxy_address"],
                      public_address=where["public_address"], auth=JupyterHubAuth(api_token=where["api_token"]))
    cluster = gateway.new_cluster()
    created = time.monotonic()
    cluster.scale(WORKERS)
    return timed_work(cluster.get_client(), started, created, close=[cluster.shutdown, gateway.close])


def local_run():
    from dask.distributed import Client, LocalCluster

    started = time.monotonic()
    # threads_per_worker=1: one core per worker, as the gateway's default worker size on this machine.
    cluster = LocalCluster(n_workers=WORKERS, processes=True, threads_per_worker=1, host="127.0.0.1",
                           dashboard_address="127.0.0.1:0")
    created = time.monotonic()
    return timed_work(Client(cluster), started, created, close=[cluster.close])


def main(modes):
    import dask.array  # noqa: F401  (imported before any timing)
    import dask.distributed  # noqa: F401
    import dask_gateway  # noqa: F401

    for mode in modes:
        kind, _, name = mode.partition(":")
        result = gateway_run(name) if kind == "gateway" else local_run()
        print(json.dumps({"mode": mode, **result}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
