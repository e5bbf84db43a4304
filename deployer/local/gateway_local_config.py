"""dask-gateway-server's config file in the local stack (`dask-gateway-server -f <this file>`).

The hub starts the gateway as a managed service (hub_layer), with PANGEO_LOCAL_RUNTIME naming the launcher's
runtime file. gateway_config.configure does the real configuration from the facts; this adds only the local
backend, the hub authentication, the addresses, and each user's scratch keys for their schedulers and workers.
"""

import functools
import json
import os
import sys
from pathlib import Path

RUNTIME = json.loads(Path(os.environ["PANGEO_LOCAL_RUNTIME"]).read_text())
sys.path.insert(0, RUNTIME["repo"])

import gateway_config  # noqa: E402  (the repository root is on sys.path only now)
from deployer.local import scratch  # noqa: E402
from deployer.local.processes import STACK_ID_VAR  # noqa: E402

c = get_config()  # noqa: F821  (provided by traitlets when it loads this file)
ports, paths = RUNTIME["ports"], RUNTIME["paths"]

# We run as root and the stand-in's users are no system accounts: LocalBackend would setuid to them.
c.DaskGateway.backend_class = "dask_gateway_server.backends.local.UnsafeLocalBackend"
gateway_config.configure(c, RUNTIME["facts"],
                         user_environment=functools.partial(scratch.user_environment, RUNTIME["secrets"]["scratch"]))

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
