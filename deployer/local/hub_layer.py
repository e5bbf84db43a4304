"""The local layer of the hub's configuration, applied after hub_config.configure(c, facts).

Only what differs on one machine: addresses and ports, the local-process spawner (each server confined so
that the stack's own state is out of its sight), the stand-in's OAuth client, the gateway as a service
known by URL (the launcher runs it, as the chart runs its pods), the scratch-credentials service as a
hub-managed one, and a token for the smoke suite.
`runtime` is the dict the launcher writes (see stack.LocalStack._runtime).
"""

import json

from deployer.dashboards import gateway_public_address
from deployer.local.confinement import SKIP_TO_KILL, confined
from deployer.local.github_standin import CLIENT_ID, CLIENT_SECRET
from deployer.local.processes import STACK_ID_VAR
from deployer.local.spawner import PangeoLocalSpawner
from deployer.local.supervisor import POD_VAR

GATEWAY_SERVICE = "dask-gateway"
SCRATCH_SERVICE = "scratch-credentials"
SMOKE_SERVICE = "smoke-admin"


def configure(c, runtime, profiles):
    ports, paths = runtime["ports"], runtime["paths"]
    _hub(c, runtime, ports, paths)
    _authenticator(c)
    _spawner(c, runtime, profiles, ports, paths)
    _services(c, runtime, ports, paths)


def _hub(c, runtime, ports, paths):
    c.JupyterHub.bind_url = runtime["hub_url"]
    c.JupyterHub.hub_bind_url = f"http://127.0.0.1:{ports['hub_api']}"
    c.JupyterHub.db_url = f"sqlite:///{paths['hub']}/jupyterhub.sqlite"
    c.JupyterHub.cookie_secret_file = f"{paths['hub']}/jupyterhub_cookie_secret"
    _separate_pods(c, ports)


def _separate_pods(c, ports):
    """As in the chart: the proxy is its own process (the launcher's; its token in CONFIGPROXY_AUTH_TOKEN),
    and a hub that stops, or restarts, leaves the users' servers running and re-adopts them from its
    database (LocalProcessSpawner keeps the pid in its state)."""
    c.ConfigurableHTTPProxy.should_start = False
    c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{ports['proxy_api']}"
    c.JupyterHub.cleanup_servers = False
    c.JupyterHub.cleanup_proxy = False


def _authenticator(c):
    c.GitHubOAuthenticator.client_id = CLIENT_ID
    c.GitHubOAuthenticator.client_secret = CLIENT_SECRET
    # Derived from each request: the hub answers on 127.0.0.1 and localhost alike, and the state cookie
    # set on one host must come back to the same host.
    c.GitHubOAuthenticator.oauth_callback_url = ""


def _spawner(c, runtime, profiles, ports, paths):
    c.JupyterHub.spawner_class = PangeoLocalSpawner
    spawner = c.PangeoLocalSpawner
    spawner.profile_list = profiles
    # Own mount and PID namespaces: the stack's secrets, database, logs and raw store are hidden, and the
    # hub's and services' processes (their environments) are out of sight.
    spawner.cmd = confined(paths["data"]) + [f"{paths['user_venv']}/bin/jupyterhub-singleuser"]
    spawner.interrupt_timeout = spawner.term_timeout = SKIP_TO_KILL
    # Everything runs as root here; Jupyter refuses root unless told.
    spawner.args = [*(c.Spawner.args if "args" in c.Spawner else []), "--allow-root"]
    spawner.home_dir_template = f"{paths['homes']}/{{username}}"
    spawner.notebook_dir = f"{paths['homes']}/{{username}}"
    spawner.default_url = "/lab"
    spawner.ip = "127.0.0.1"
    gateway = f"{runtime['hub_url']}/services/{GATEWAY_SERVICE}"
    env = dict(c.Spawner.environment) if "environment" in c.Spawner else {}
    env.update({
        "PATH": f"{paths['user_venv']}/bin:/usr/local/bin:/usr/bin:/bin",
        "VIRTUAL_ENV": paths["user_venv"],
        "DASK_GATEWAY__ADDRESS": gateway,
        "DASK_GATEWAY__PUBLIC_ADDRESS": gateway_public_address(gateway),
        "DASK_GATEWAY__PROXY_ADDRESS": f"gateway://127.0.0.1:{ports['gateway_proxy']}",
        "DASK_GATEWAY__AUTH__TYPE": "jupyterhub",
        STACK_ID_VAR: runtime["stack_id"],
    })
    spawner.environment = env


def scratch_service(runtime, ports, paths):
    """scratch_credentials.py as the chart runs it, with the stack's web identity token in place of IRSA's."""
    return {
        "name": SCRATCH_SERVICE,
        "url": f"http://127.0.0.1:{ports['scratch_credentials']}",
        # An API for notebooks and Dask pods, not a page for people: out of the Services menu, as in the chart.
        "display": False,
        "command": [paths["hub_python"], f"{runtime['repo']}/scratch_credentials.py"],
        "cwd": paths["hub"],
        "environment": {
            "PANGEO_FACTS": json.dumps(runtime["facts"]),
            "PANGEO_SCRATCH_SIGNING_KEY": runtime["secrets"]["scratch_signing"],
            "SCRATCH_CREDENTIALS_PORT": str(ports["scratch_credentials"]),
            "SCRATCH_CREDENTIALS_IP": "127.0.0.1",
            "AWS_ROLE_ARN": runtime["scratch_role_arn"],
            "AWS_WEB_IDENTITY_TOKEN_FILE": paths["scratch_service_token"],
            "AWS_ENDPOINT_URL_STS": runtime["facts"]["scratch"]["endpoint_url"],
        },
    }


def _services(c, runtime, ports, paths):
    services = [s for s in (c.JupyterHub.services if "services" in c.JupyterHub else [])
                if s.get("name") not in (GATEWAY_SERVICE, SCRATCH_SERVICE, SMOKE_SERVICE)]
    # The gateway is the launcher's process (the chart's gateway pod), not started by the hub: a hub
    # restart must not take users' clusters with it.
    services.append({
        "name": GATEWAY_SERVICE,
        "url": f"http://127.0.0.1:{ports['gateway_proxy']}",
        "api_token": runtime["secrets"]["gateway_token"],
        # No page of its own for people (its root is a 404): not in the hub's Services menu, as in the chart.
        "display": False,
    })
    services.append(scratch_service(runtime, ports, paths))
    services.append({"name": SMOKE_SERVICE, "api_token": runtime["secrets"]["smoke_token"]})
    for service in services:
        if "command" in service:
            # The hub's managed services (the culler) are in the hub's pod: they go when it goes (supervisor).
            service["environment"] = {**service.get("environment", {}), STACK_ID_VAR: runtime["stack_id"],
                                      POD_VAR: "hub"}
    c.JupyterHub.services = services

    # The smoke suite and health checks act as an admin: JupyterHub's own `admin` role.
    roles = [dict(r) for r in (c.JupyterHub.load_roles if "load_roles" in c.JupyterHub else [])]
    admin = next((r for r in roles if r.get("name") == "admin"), None)
    if admin is None:
        roles.append(admin := {"name": "admin"})
    admin["services"] = sorted(set(admin.get("services", [])) | {SMOKE_SERVICE})
    c.JupyterHub.load_roles = roles
