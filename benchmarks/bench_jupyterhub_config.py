"""JupyterHub's config file for the benchmarks' hub variants (`jupyterhub -f <this file>`, run from .venv/hub).

The runtime file (PANGEO_LOCAL_RUNTIME) is the local stack's, with a `bench` section (variants.py):
`ours` is exactly deployer/local/jupyterhub_config.py; `stock` leaves hub_config.configure out and sets only
what JupyterHub needs to let the stand-in's users in. Both then get the same local layer.
"""

import json
import os
import sys
from pathlib import Path

RUNTIME = json.loads(Path(os.environ["PANGEO_LOCAL_RUNTIME"]).read_text())
sys.path.insert(0, RUNTIME["repo"])

import hub_config  # noqa: E402  (the repository root is on sys.path only now)
from deployer.local import hub_layer  # noqa: E402

c = get_config()  # noqa: F821  (provided by traitlets when it loads this file)
bench = RUNTIME["bench"]
facts = RUNTIME["facts"]
if bench["flavour"] == "ours":
    hub_config.configure(c, facts)
else:
    # oauthenticator's defaults, but for the stand-in's address and letting every GitHub user in
    # (JupyterHub 5 lets nobody in by default).
    c.JupyterHub.authenticator_class = "github"
    c.GitHubOAuthenticator.github_url = facts["github"]["url"].rstrip("/")
    c.GitHubOAuthenticator.allow_all = True
    # Without this no user may reach the gateway service at all (dask-gateway's documentation for
    # JupyterHub auth asks for it): the one role a stock hub with a gateway needs.
    c.JupyterHub.load_roles = [{"name": "user", "scopes": ["self", f"access:services!service={hub_layer.GATEWAY_SERVICE}"]}]
# The spawner stands in for KubeSpawner in both: the same profile list, so the same spawn form.
hub_layer.configure(c, RUNTIME, hub_config.profiles(facts))

if bench.get("db_url"):
    c.JupyterHub.db_url = bench["db_url"]
