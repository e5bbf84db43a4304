"""Where a notebook's Dask Gateway clusters show their dashboards (DASK_GATEWAY__PUBLIC_ADDRESS).

The gateway is reached through the user's own server (jupyter-server-proxy), the only kind of link that
JupyterLab's Dask panel can open for a cluster it lists; images/pangeo-notebook/dask.yaml says why.
Standard library only: the local hub layer imports it inside the hub's process too.
"""

from urllib.parse import urlsplit


def gateway_public_address(gateway_address):
    """`{JUPYTERHUB_SERVICE_PREFIX}proxy/<host>:<port><path>` for the gateway's internal address.

    The dask_gateway client fills in `{JUPYTERHUB_SERVICE_PREFIX}` (the server's `/user/<name>/`) from its
    environment. jupyter-server-proxy's `proxy/<host>:<port>/` needs the port written out.
    """
    parts = urlsplit(gateway_address)
    if not parts.hostname:
        raise ValueError(f"the gateway's address {gateway_address!r} has no host")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"{{JUPYTERHUB_SERVICE_PREFIX}}proxy/{parts.hostname}:{port}{parts.path.rstrip('/')}"
