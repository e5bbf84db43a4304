"""The hub's configuration, from one cluster's facts (deployer.facts.load): `configure(c, facts)`.

The same function runs in the chart's hub (hub.extraConfig `zz-pangeo`, after z2jh's own config) and
in the local stack, which adds only what differs on one machine (spawner, addresses, credentials).
It may import only what the chart's hub image ships (z2jh 4.4.0: jupyterhub 5.5.0, kubespawner 7.0.0,
oauthenticator 17.4.0) and the standard library. OAuth client id and secret are not set here: they
come from the environment (GITHUB_CLIENT_ID/GITHUB_CLIENT_SECRET) or the chart's secret hub.config.
"""

import functools
import logging
import os
import sys
from pathlib import Path
from urllib.parse import quote

from oauthenticator.github import GitHubOAuthenticator
from tornado import web
from tornado.httpclient import HTTPClientError
from traitlets.config import LazyConfigValue

TEMPLATES = Path(__file__).resolve().parent / "hub_templates"
GATEWAY_SERVICE = "dask-gateway"
# scratch_credentials.py: the only holder of the bucket's cloud identity; pods fetch prefix-scoped
# credentials from it with their own token.
SCRATCH_SERVICE = "scratch-credentials"
SCRATCH_SERVICE_PORT = 8080
CULLER_SERVICE = "idle-culler"
# What jupyterhub-idle-culler's documentation lists for culling servers (not users: admin:users is
# needed only with --cull-users, which we do not use).
CULLER_SCOPES = ["list:users", "read:users:activity", "read:servers", "delete:servers"]
# JupyterHub's default `server` role, plus access to the gateway: the notebook's own token is what the
# dask-gateway client presents, and the gateway may require this scope on it.
SERVER_TOKEN_SCOPES = ["users:activity!user", "access:servers!server", f"access:services!service={GATEWAY_SERVICE}",
                       f"access:services!service={SCRATCH_SERVICE}"]
HOME = "/home/jovyan"
ROUTE_CHECK_S = 30
TOKEN_CACHE_S = 30
GIB = 1024**3

LOG = logging.getLogger("JupyterHub")


def configure(c, facts):
    """Configure JupyterHub `c` (a traitlets Config) for the cluster whose facts these are."""
    _authentication(c, facts)
    _pages(c, facts)
    _spawner(c, facts)
    _culler(c, facts["notebook"]["culling"])
    _service_checks(c)
    _roles(c)
    _route_healing(c)
    _cookies(c, facts)
    _token_cache(c)


# ---- authentication -------------------------------------------------------------------------------------

def hub_url(facts):
    """Where users reach the hub: https on a public cluster, plain http (with the port) locally."""
    hub = facts["hub"]
    if "https_contact_email" in hub:
        return f"https://{hub['host']}"
    if facts["cloud"] == "local":
        return f"http://{hub['host']}:{hub['port']}"
    return f"http://{hub['host']}"


def not_member_message(facts):
    """The refusal shown (HTTP 403) to a GitHub user outside the cluster's teams.

    JupyterHub %-formats this text; the schema's patterns for teams and hosts keep '%' out of it.
    """
    teams = " or ".join(facts["github"]["allowed_teams"])
    return (f"You are not a member of the GitHub team {teams}, whose members may use the Pangeo Cloud "
            f"hub {facts['hub']['host']} (cluster {facts['name']}).")


# The refusal names the GitHub account that signed in (nobody is logged in to the hub then, so the 403
# page has no other way to know it): custom_403_message + this + the login + ".".
ACCOUNT_PREFIX = " You signed in to GitHub as "


@functools.cache
def authenticator_class():
    """GitHubOAuthenticator whose refusal of a user outside the teams names their GitHub account (made here,
    once: the module's top level holds only imports, functions and constants)."""

    class PangeoGitHubOAuthenticator(GitHubOAuthenticator):
        async def check_allowed(self, username, auth_model):
            if await super().check_allowed(username, auth_model):
                return True
            # Raised, not returned: the callback handler would otherwise show custom_403_message alone.
            raise web.HTTPError(403, f"{self.custom_403_message}{ACCOUNT_PREFIX}{username}.")

    return PangeoGitHubOAuthenticator


def team_groups(team_names, auth_state):
    """The user's GitHub teams (auth_state["teams"], from /user/teams) that the cluster file names.

    These become the user's JupyterHub groups, written `org:team` as in the cluster file, so that
    `admin_groups` can match the admin teams. Other teams the user belongs to stay out of the hub.
    """
    wanted = {name.lower(): name for name in team_names}
    groups = set()
    for team in auth_state.get("teams") or []:
        key = f"{team['organization']['login']}:{team['slug']}".lower()
        if key in wanted:
            groups.add(wanted[key])
    return groups


def refresh_api_created_user(authenticator, user, auth_state):
    """oauthenticator's refresh_user_hook: an API-created user (the health check's `smoke_*` users on a
    live hub) has no GitHub auth state, and the default refresh would refuse every spawn and token of it
    ("auth has expired"). A name with '_' can never be a GitHub login, so such a user is not a researcher
    whose team membership lapsed; only an admin can have created it. Everyone else: the default refresh."""
    if not auth_state and "_" in user.name:
        return True
    return None


def _authentication(c, facts):
    github = facts["github"]
    c.JupyterHub.authenticator_class = authenticator_class()
    auth = c.GitHubOAuthenticator
    # read:org lets the team checks see private memberships and list the user's teams.
    auth.scope = ["read:org"]
    auth.allowed_organizations = set(github["allowed_teams"])
    auth.populate_teams_in_auth_state = True
    # oauthenticator 17 has no GitHub admin-team option: the admin teams become admin_groups over the
    # teams fetched into auth_state. An admin is also let in (OAuthenticator.check_allowed admits admins).
    auth.manage_groups = True
    auth.auth_state_groups_key = functools.partial(team_groups, github["allowed_teams"] + github["admin_teams"])
    auth.admin_groups = set(github["admin_teams"])
    # Membership is checked at every login: someone removed from the team must not stay allowed
    # because the hub's database already knows them.
    auth.allow_existing_users = False
    auth.custom_403_message = not_member_message(facts)
    auth.refresh_user_hook = refresh_api_created_user
    auth.oauth_callback_url = f"{hub_url(facts)}/hub/oauth_callback"
    if github["url"].rstrip("/") != "https://github.com":
        auth.github_url = github["url"].rstrip("/")
    # Teams are kept in the (encrypted) auth state. The chart generates the key (hub.config.CryptKeeper.keys);
    # elsewhere it comes from JUPYTERHUB_CRYPT_KEY. Without a key, JupyterHub would refuse to start, so
    # run without persisting auth state and say why: login, team checks and admin status still work.
    if os.environ.get("JUPYTERHUB_CRYPT_KEY") or c.get("CryptKeeper", {}).get("keys"):
        auth.enable_auth_state = True
        # With auth state, oauthenticator also asks GitHub again for the user and the teams before every
        # spawn, seconds after the login did. The hub still refreshes any request's auth once it is older
        # than auth_refresh_age (300 s), so a member removed from the team is refused within 5 minutes;
        # under a login storm the per-spawn refresh doubled the hub's CPU (benchmarks/RESULTS.md).
        auth.refresh_pre_spawn = False
    else:
        auth.enable_auth_state = False
        LOG.warning("pangeo hub_config: JUPYTERHUB_CRYPT_KEY is not set, so GitHub teams are not kept in "
                    "auth_state (login, team checks and admin status work without it). To keep them, set "
                    "JUPYTERHUB_CRYPT_KEY to the output of `openssl rand -hex 32`.")


# ---- pages ----------------------------------------------------------------------------------------------

def template_vars(facts):
    return {
        "pangeo_cluster": facts["name"],
        "pangeo_host": facts["hub"]["host"],
        "pangeo_forum_url": facts["support"]["forum_url"],
        "pangeo_guide_url": facts["support"]["guide_url"],
        "pangeo_apply_url": facts["support"]["apply_url"],
        "pangeo_allowed_teams": list(facts["github"]["allowed_teams"]),
        "pangeo_not_member_message": not_member_message(facts),
        "pangeo_account_prefix": ACCOUNT_PREFIX,
        # the spawn and home pages name the size a server was started with (its profile's slug)
        "pangeo_sizes": {slug: facts["sizes"][slug]["display_name"] for slug in facts["notebook"]["sizes"]},
        # JupyterHub calls a callable template variable with the page's user: this one returns the function.
        "pangeo_github_unreachable": lambda user: github_unreachable,
    }


def github_unreachable(exception):
    """Whether a page's error is GitHub not answering the authenticator (connection refused or dropped, a
    timeout, a 5xx), so that hub_templates/500.html says so instead of "Internal Server Error"."""
    if isinstance(exception, HTTPClientError):
        if exception.code < 500:
            return False
    elif not isinstance(exception, OSError):
        return False
    frame = getattr(exception, "__traceback__", None)
    while frame is not None:
        if frame.tb_frame.f_globals.get("__name__", "").startswith("oauthenticator."):
            return True
        frame = frame.tb_next
    return False


def _pages(c, facts):
    paths = _config_list(c.JupyterHub, "template_paths")
    if str(TEMPLATES) not in paths:
        paths.insert(0, str(TEMPLATES))
    _config_dict(c.JupyterHub, "template_vars").update(template_vars(facts))


# ---- user servers ---------------------------------------------------------------------------------------

def _number(value):
    return int(value) if float(value).is_integer() else value


def _cores(value):
    return f"{_number(value)} CPU core{'' if value == 1 else 's'}"


def profiles(facts):
    """KubeSpawner's profile_list: the cluster's notebook sizes in order, the first (smallest) the default."""
    pool = facts["node_pools"][facts["notebook"]["node_pool"]]
    tolerations = [{"key": t["key"], "operator": "Equal", "value": t["value"], "effect": t["effect"]}
                   for t in pool["taints"]]
    result = []
    for i, slug in enumerate(facts["notebook"]["sizes"]):
        size = facts["sizes"][slug]
        cpu, mem = size["cpu"], size["memory_gib"]
        override = {
            "cpu_guarantee": float(cpu["guarantee"]),
            "cpu_limit": float(cpu["limit"]),
            "mem_guarantee": int(mem["guarantee"] * GIB),
            "mem_limit": int(mem["limit"] * GIB),
            "node_selector": dict(pool["node_selector"]),
            "environment": {"PANGEO_SIZE": slug},
        }
        if tolerations:
            override["tolerations"] = tolerations
        profile = {
            "display_name": size["display_name"],
            "slug": slug,
            "description": (f"up to {_cores(cpu['limit'])} and {_number(mem['limit'])} GiB of memory "
                            f"({_cores(cpu['guarantee'])} and {_number(mem['guarantee'])} GiB guaranteed)"),
            "kubespawner_override": override,
        }
        if i == 0:
            profile["default"] = True
        result.append(profile)
    return result


def scratch_url(facts, username):
    """The user's own prefix of the cluster's scratch bucket (the name escaped: it may hold any character)."""
    return _user_prefix(facts["scratch"]["bucket"], username)


def _user_prefix(bucket, username):
    return f"{bucket}/{quote(username, safe='')}"


def _spawner_scratch_url(bucket, spawner):
    return _user_prefix(bucket, spawner.user.name)


def scratch_access_environment(facts, username, credential):
    """How a pod of `username` gets its scratch credentials from the scratch-credentials service, through
    the SDKs' own refreshing providers; `credential` is the pod's token (notebook) or worker credential (Dask).
    The same rule as gateway_config.scratch_access_environment (a unit test checks they agree).

    - S3: botocore's container provider, which accepts only https or loopback: through the hub's proxy.
    - GCS: google-auth's metadata-server path, in-cluster over plain http; google-auth sends no
      Authorization header to a metadata server, so the credential is part of the address.
    """
    prefix = f"/services/{SCRATCH_SERVICE}"
    user = quote(username, safe="")
    if facts["scratch"]["bucket"].startswith("s3://"):
        return {"AWS_CONTAINER_CREDENTIALS_FULL_URI": f"{hub_url(facts)}{prefix}/aws/{user}",
                "AWS_CONTAINER_AUTHORIZATION_TOKEN": credential}
    namespace = facts["kubernetes"]["namespace"]
    address = f"{SCRATCH_SERVICE}.{namespace}.svc.cluster.local:{SCRATCH_SERVICE_PORT}{prefix}/gcp/{user}/{credential}"
    return {"GCE_METADATA_HOST": address, "GCE_METADATA_IP": address}


def _spawner_scratch_access(facts, name, spawner):
    return scratch_access_environment(facts, spawner.user.name, spawner.api_token)[name]


def environment(facts):
    """Variables of every user server. Per-user values are callables: local spawners do not expand
    `{username}` (KubeSpawner does), and both call callables with the spawner."""
    scratch = functools.partial(_spawner_scratch_url, facts["scratch"]["bucket"])
    env = {"PANGEO_CLUSTER": facts["name"], "PANGEO_SCRATCH": scratch, "SCRATCH_BUCKET": scratch}
    for name in scratch_access_environment(facts, "", ""):
        env[name] = functools.partial(_spawner_scratch_access, facts, name)
    endpoint = facts["scratch"].get("endpoint_url")
    if endpoint:
        # botocore and fsspec read these, so s3fs finds the store with no arguments.
        env["AWS_ENDPOINT_URL"] = endpoint
        env["FSSPEC_S3_ENDPOINT_URL"] = endpoint
    return env


def _spawner(c, facts):
    env = environment(facts)
    # KubeSpawner reads only its own section when the chart has set it (singleuser.extraEnv), local
    # spawners read Spawner's: set both.
    _config_dict(c.Spawner, "environment").update(env)
    _config_dict(c.KubeSpawner, "environment").update(env)
    c.Spawner.server_token_scopes = SERVER_TOKEN_SCOPES

    kube = c.KubeSpawner
    kube.profile_list = profiles(facts)
    # No service_account: user pods hold no bucket identity (scratch_access_environment instead).
    # jovyan (uid 1000) owns its files; the volume is group-writable by group 100, as z2jh does.
    kube.uid = 1000
    kube.fs_gid = 100

    home = facts["notebook"]["home"]
    kube.storage_pvc_ensure = True
    kube.storage_capacity = f"{_number(home['size_gib'])}Gi"
    kube.storage_access_modes = ["ReadWriteOnce"]
    if home["storage_class"]:
        kube.storage_class = home["storage_class"]
    kube.pvc_name_template = "claim-{user_server}"
    volumes = _config_list(kube, "volumes")
    mounts = _config_list(kube, "volume_mounts")
    volumes[:] = [v for v in volumes if v.get("name") != "home"]
    mounts[:] = [m for m in mounts if m.get("name") != "home"]
    volumes.insert(0, {"name": "home", "persistentVolumeClaim": {"claimName": "{pvc_name}"}})
    mounts.insert(0, {"name": "home", "mountPath": HOME})


# ---- services and roles ---------------------------------------------------------------------------------

def culler_command(culling):
    return [
        sys.executable, "-m", "jupyterhub_idle_culler",
        f"--timeout={round(culling['idle_minutes'] * 60)}",
        f"--max-age={round(culling['max_age_minutes'] * 60)}",
        f"--cull-every={round(culling['every_minutes'] * 60)}",
    ]


def _culler(c, culling):
    services = _config_list(c.JupyterHub, "services")
    services[:] = [s for s in services if s.get("name") != CULLER_SERVICE]
    services.append({"name": CULLER_SERVICE, "command": culler_command(culling)})
    _add_role(c, {"name": CULLER_SERVICE, "scopes": list(CULLER_SCOPES), "services": [CULLER_SERVICE]})


def _service_checks(c):
    # The hub's minutely check of a service GETs its root, which the gateway answers 404 (a warning in its
    # log every minute) and which only ever logs. The gateway's health is its pod's probes' job (/api/health).
    c.JupyterHub.service_check_interval = 0


def _route_healing(c):
    """A restarted proxy (its pod replaced, or crashed) starts with no routes; the hub puts them back at its
    next check, every last_activity_interval. JupyterHub's default (300 s) means 5 minutes of errors for
    every user; 30 s costs one proxy API call per interval (measured by tests/faults)."""
    c.JupyterHub.last_activity_interval = ROUTE_CHECK_S


def _cookies(c, facts):
    """Secure login and XSRF cookies on an HTTPS hub, whatever the scheme of the request that reaches the hub
    behind the TLS-terminating proxy (JupyterHub otherwise trusts X-Forwarded-Proto). HttpOnly is JupyterHub's."""
    if hub_url(facts).startswith("https://"):
        settings = _config_dict(c.JupyterHub, "tornado_settings")
        settings["cookie_options"] = {**settings.get("cookie_options", {}), "secure": True}


def _token_cache(c):
    """A user server trusts the hub's answer about a token or cookie for HubAuth.cache_max_age (JupyterHub's
    default 300 s): that long, a revoked token still opens the server. Shortened to TOKEN_CACHE_S."""
    for section in (c.Spawner, c.KubeSpawner):
        args = _config_list(section, "args")
        args[:] = [a for a in args if not a.startswith("--HubOAuth.cache_max_age=")]
        args.append(f"--HubOAuth.cache_max_age={TOKEN_CACHE_S}")


def _roles(c):
    # The default `user` role is just `self`; users also need to reach the gateway and scratch services.
    _add_role(c, {"name": "user", "scopes": ["self", f"access:services!service={GATEWAY_SERVICE}",
                                             f"access:services!service={SCRATCH_SERVICE}"]})


def _add_role(c, role):
    roles = _config_list(c.JupyterHub, "load_roles")
    for existing in roles:
        if existing.get("name") == role["name"]:
            existing["scopes"] = sorted(set(existing.get("scopes", [])) | set(role["scopes"]))
            for key in ("services", "users", "groups"):
                if role.get(key):
                    existing[key] = sorted(set(existing.get(key, [])) | set(role[key]))
            return
    roles.append(role)


# ---- config helpers -------------------------------------------------------------------------------------

def _config_list(section, name):
    """section[name] as a plain list, keeping what the chart (or an earlier layer) already put there."""
    value = section[name] if name in section else []
    if isinstance(value, LazyConfigValue):
        value = value.get_value([])
    section[name] = value = list(value)
    return value


def _config_dict(section, name):
    value = section[name] if name in section else {}
    if isinstance(value, LazyConfigValue):
        value = value.get_value({})
    section[name] = value = dict(value)
    return value
