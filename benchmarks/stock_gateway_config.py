"""dask-gateway-server's config file for the benchmarks' `stock` variant: dask-gateway 2026.3.0's defaults.

Only what the local stack's gateway needs to run at all is set, as in deployer/local/gateway_local_config.py
(backend, addresses, JupyterHub authentication, where clusters live), and `dask scheduler`/`dask worker`:
distributed no longer ships the default `dask-scheduler`/`dask-worker`. No gateway_config.configure: no
options, limits, per-user environment.
"""

import json
import os
import sys
from pathlib import Path

RUNTIME = json.loads(Path(os.environ["PANGEO_LOCAL_RUNTIME"]).read_text())
sys.path.insert(0, RUNTIME["repo"])

from deployer.local.processes import STACK_ID_VAR  # noqa: E402  (the repository root is on sys.path only now)

c = get_config()  # noqa: F821  (provided by traitlets when it loads this file)
ports, paths = RUNTIME["ports"], RUNTIME["paths"]

c.DaskGateway.backend_class = "dask_gateway_server.backends.local.UnsafeLocalBackend"
c.ClusterConfig.scheduler_cmd = ["dask", "scheduler"]
c.ClusterConfig.worker_cmd = ["dask", "worker"]
c.DaskGateway.address = f"127.0.0.1:{ports['gateway_api']}"
c.Proxy.address = f"127.0.0.1:{ports['gateway_proxy']}"
c.Proxy.prefix = "/services/dask-gateway"
# The launcher runs the proxy as its own process (`dask-gateway-server proxy`), for both variants alike.
c.Proxy.externally_managed = True
c.DaskGateway.authenticator_class = "dask_gateway_server.auth.JupyterHubAuthenticator"
c.LocalBackend.clusters_directory = f"{paths['gateway']}/clusters"
c.LocalBackend.inherited_environment = ["PATH", "VIRTUAL_ENV", "LANG", "LC_ALL", STACK_ID_VAR]
os.environ["VIRTUAL_ENV"] = paths["user_venv"]
