# The image's Jupyter server configuration, installed by postBuild into {sys.prefix}/etc/jupyter.
# Dask dashboards open through the user's own server (jupyter-server-proxy, see dask.yaml): it may proxy
# to the gateway's host, which the hub names in DASK_GATEWAY__ADDRESS, besides its default localhost.
import os
from urllib.parse import urlsplit

c = get_config()  # noqa: F821  (provided by traitlets when it loads this file)
_gateway_host = urlsplit(os.environ.get("DASK_GATEWAY__ADDRESS", "")).hostname
c.ServerProxy.host_allowlist = ["localhost", "127.0.0.1"] + ([_gateway_host] if _gateway_host else [])
