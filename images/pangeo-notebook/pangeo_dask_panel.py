"""JupyterLab's Dask panel in step with the user's Dask Gateway clusters (a Jupyter server extension).

dask-labextension 7.0.0 lists only the clusters its own server process made (its "+NEW" button), and
keeps listing one that was stopped elsewhere until SHUTDOWN is clicked. On a hub, a researcher's clusters
live in the gateway, made from notebooks as often as from the panel. Every few seconds while the panel
is polling, this asks the gateway for the user's running clusters: one the panel does not know is connected to (so it is listed,
scaled and shut down like the panel's own), one the gateway no longer runs is dropped. It changes only
the panel's cluster manager's table (its private dicts, pinned by the image's dask-labextension version).

Dashboards: the panel proxies a cluster's dashboard through `dask/dashboard/<id>`, which keeps only the
host and port of the cluster's link and drops its path, so it cannot reach a gateway's
`/services/dask-gateway/clusters/<name>/`. A link under the server's own `proxy/` prefix is used as it is:
the hub sets DASK_GATEWAY__PUBLIC_ADDRESS to the gateway through jupyter-server-proxy (see dask.yaml),
and jupyter_server_config.py lets jupyter-server-proxy reach the gateway's host.
"""

import asyncio
import os
import time
import uuid

REFRESH_S = 3.0
# The gateway is asked only while JupyterLab's panel asks for its list (it polls while JupyterLab is open):
# a server left alone does not query the gateway every few seconds.
WATCHED_FOR_S = 60.0
# Ids of clusters this extension connected to are derived from the gateway's cluster name, in the
# uuid shape the panel's URL patterns accept.
ID_NAMESPACE = uuid.UUID("7d1b5b7e-6f1d-4c55-9a43-2f4c1f0b9e11")


class PanelSync:
    """Keeps dask_labextension.manager.manager's table equal to the user's running gateway clusters."""

    def __init__(self, manager, log):
        self.manager, self.log = manager, log
        self.gateway = None
        self.warned = False
        self.asked_at = -WATCHED_FOR_S
        list_clusters = manager.list_clusters

        def listed_and_noted():
            self.asked_at = time.monotonic()
            return list_clusters()

        manager.list_clusters = listed_and_noted

    async def run(self):
        from dask_gateway import Gateway

        self.gateway = Gateway(asynchronous=True)
        while True:
            try:
                if time.monotonic() - self.asked_at < WATCHED_FOR_S:
                    await self.refresh()
                self.warned = False
            except asyncio.CancelledError:
                raise
            except Exception as e:  # the gateway restarting, a network hiccup: say so once, keep trying
                if not self.warned:
                    self.log.warning("Dask panel: could not list the gateway's clusters (%s); retrying every %g s",
                                     e, REFRESH_S)
                    self.warned = True
            await asyncio.sleep(REFRESH_S)

    async def refresh(self):
        from dask_gateway import GatewayCluster

        running = {report.name: report for report in await self.gateway.list_clusters()}
        manager = self.manager
        known = {getattr(cluster, "name", None): cid for cid, cluster in list(manager._clusters.items())}
        for name, cid in known.items():
            if name is not None and name not in running:
                await self.drop(cid)
        for name, report in running.items():
            if name in known or report.status.name != "RUNNING":
                continue
            # shutdown_on_close: the panel's SHUTDOWN stops the cluster, as for the panel's own; an
            # asynchronous cluster is not shut down when the server exits.
            cluster = await GatewayCluster.from_name(name, shutdown_on_close=True, asynchronous=True)
            cid = str(uuid.uuid5(ID_NAMESPACE, name))
            manager._clusters[cid] = cluster
            manager._cluster_names[cid] = name

    async def drop(self, cid):
        manager = self.manager
        cluster = manager._clusters.pop(cid, None)
        manager._cluster_names.pop(cid, None)
        manager._adaptives.pop(cid, None)
        if cluster is not None:
            try:
                await cluster.close(shutdown=False)
            except Exception:
                pass  # already gone with its scheduler


def _jupyter_server_extension_points():
    return [{"module": "pangeo_dask_panel"}]


def _load_jupyter_server_extension(server_app):
    if not os.environ.get("DASK_GATEWAY__ADDRESS"):
        server_app.log.info("Dask panel: no DASK_GATEWAY__ADDRESS, so no gateway clusters to list")
        return
    from dask_labextension.manager import manager

    sync = PanelSync(manager, server_app.log)
    server_app.io_loop.add_callback(lambda: asyncio.ensure_future(sync.run()))
