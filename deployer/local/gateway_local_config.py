"""dask-gateway-server's config file in the local stack (`dask-gateway-server -f <this file>`).

The hub starts the gateway as a managed service (hub_layer), with PANGEO_LOCAL_RUNTIME naming the launcher's
runtime file. gateway_config.configure does the real configuration from the facts; this adds only the local
backend, the hub authentication and the addresses. Schedulers and workers get their scratch credentials from
the scratch-credentials service (gateway_config.cluster_environment signs their credential with
PANGEO_SCRATCH_SIGNING_KEY, which the hub passes to this service).
"""

import json
import logging
import os
import sys
import traceback
from pathlib import Path

RUNTIME = json.loads(Path(os.environ["PANGEO_LOCAL_RUNTIME"]).read_text())
sys.path.insert(0, RUNTIME["repo"])

import gateway_config  # noqa: E402  (the repository root is on sys.path only now)
from deployer.local.confinement import SKIP_TO_KILL, confined  # noqa: E402
from deployer.local.processes import STACK_ID_VAR  # noqa: E402

c = get_config()  # noqa: F821  (provided by traitlets when it loads this file)
ports, paths = RUNTIME["ports"], RUNTIME["paths"]

# We run as root and the stand-in's users are no system accounts: LocalBackend would setuid to them.
c.DaskGateway.backend_class = "dask_gateway_server.backends.local.UnsafeLocalBackend"
gateway_config.configure(c, RUNTIME["facts"])
# Schedulers and workers run the user's code too: confined like their server (deployer/local/confinement.py), in the
# cluster's working directory (its TLS certificate).
c.ClusterConfig.scheduler_cmd = confined(paths["data"], keep_cwd=True) + list(c.ClusterConfig.scheduler_cmd)
c.ClusterConfig.worker_cmd = confined(paths["data"], keep_cwd=True) + list(c.ClusterConfig.worker_cmd)
c.LocalBackend.sigint_timeout = c.LocalBackend.sigterm_timeout = SKIP_TO_KILL

c.DaskGateway.address = f"127.0.0.1:{ports['gateway_api']}"
c.Proxy.address = f"127.0.0.1:{ports['gateway_proxy']}"  # the scheduler (TLS) traffic shares it
c.Proxy.prefix = "/services/dask-gateway"
# The proxy is the launcher's process (`dask-gateway-server proxy` with this file), as the chart's traefik is
# a pod of its own; both get their shared token as DASK_GATEWAY_PROXY_TOKEN.
c.Proxy.externally_managed = True
c.DaskGateway.authenticator_class = "dask_gateway_server.auth.JupyterHubAuthenticator"
# The launcher passes JUPYTERHUB_API_URL and JUPYTERHUB_API_TOKEN (this service's token) in the environment.
c.LocalBackend.clusters_directory = f"{paths['gateway']}/clusters"
# Clusters outlive a gateway restart, as the Kubernetes backend's do (its state is in the API): the cluster
# table is in a file (encrypted with DASK_GATEWAY_ENCRYPT_KEYS, which the launcher sets), and a restarted
# gateway finds its schedulers and workers by the pids stored there.
c.DBBackendBase.db_url = f"sqlite:///{paths['gateway']}/clusters.sqlite"
c.DBBackendBase.stop_clusters_on_shutdown = False
# Schedulers and workers: the notebook environment's `dask` first on PATH, and the stack's tag, which lets
# the launcher find and stop them.
c.LocalBackend.inherited_environment = ["PATH", "VIRTUAL_ENV", "LANG", "LC_ALL", STACK_ID_VAR]
os.environ["VIRTUAL_ENV"] = paths["user_venv"]


def _not_a_dropped_route_watch(record):
    """Drop one upstream traceback (dask-gateway 2026.3.0, local proxy only; Kubernetes uses traefik).

    dask-gateway-proxy watches the routes with a streaming GET whose Go client gives up after 60 s; the
    server notices only when it writes the next route to it (a cluster start) and aiohttp logs that write's
    ClientConnectionResetError with its traceback. Nothing is lost: the proxy reconnects at once and asks
    for every event after the last it saw. Any other error is logged as usual.
    """
    exc_type, _, tb = record.exc_info or (None, None, None)
    if exc_type is None or exc_type.__name__ != "ClientConnectionResetError":
        return True
    return not any(frame.name == "routes_handler" for frame in traceback.extract_tb(tb))


logging.getLogger("aiohttp.server").addFilter(_not_a_dropped_route_watch)
