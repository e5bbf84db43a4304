"""What makes the service survive restarts and refuse cookie theft, checked in the configuration (issue 13):
the faults tier (tests/faults) shows the behaviour on the local stack; this shows every cluster gets it."""

import asyncio
import json

import pytest
from traitlets.config import Config

import hub_config
from deployer import facts
from deployer.local import hub_layer
from deployer.local.supervisor import POD_VAR
from tests.unit.test_hub_config import hub_pages

CLUSTERS = facts.cluster_names()


@pytest.fixture(autouse=True)
def crypt_key(monkeypatch):
    monkeypatch.setenv("JUPYTERHUB_CRYPT_KEY", "0" * 64)


def configured(name):
    c = Config()
    hub_config.configure(c, facts.load(name))
    return c


@pytest.mark.parametrize("name", CLUSTERS)
def test_cookies_are_secure_exactly_on_https_hubs(name):
    cluster = facts.load(name)
    options = configured(name).JupyterHub.get("tornado_settings", {}).get("cookie_options", {})
    assert options.get("secure", False) == ("https_contact_email" in cluster["hub"]), (name, options)


@pytest.mark.parametrize("name", CLUSTERS)
def test_a_restarted_proxy_gets_its_routes_back_within_a_minute(name):
    interval = configured(name).JupyterHub.last_activity_interval
    culling = facts.load(name)["notebook"]["culling"]
    # Also how often the culler's view of activity is refreshed: well under its idle timeout.
    assert 0 < interval <= 60 and interval < culling["idle_minutes"] * 60 / 4


def _local_config(tmp_path):
    local = facts.load("local")
    runtime = {"hub_url": "http://127.0.0.1:8000", "stack_id": "s", "repo": str(tmp_path), "facts": local,
               "scratch_role_arn": "arn:aws:iam::000000000000:role/scratch",
               "secrets": {k: "x" for k in ("scratch_signing", "gateway_token", "smoke_token")},
               "ports": {k: 1 for k in ("hub_api", "proxy_api", "gateway_proxy", "scratch_credentials")},
               "paths": {k: str(tmp_path) for k in ("hub", "homes", "runtime", "user_venv", "data", "hub_python",
                                                     "scratch_service_token")}}
    c = configured("local")
    hub_layer.configure(c, json.loads(json.dumps(runtime)), hub_config.profiles(local))
    return c


def test_local_hub_is_a_pod_of_its_own(tmp_path):
    """Like the chart: the proxy and the gateway are not the hub's children, a hub that stops leaves servers
    running, and the hub's own services (the culler) are tagged to go with it."""
    c = _local_config(tmp_path)
    assert c.ConfigurableHTTPProxy.should_start is False
    assert c.JupyterHub.cleanup_servers is False
    services = {s["name"]: s for s in c.JupyterHub.services}
    assert "command" not in services[hub_layer.GATEWAY_SERVICE]
    assert services[hub_config.CULLER_SERVICE]["environment"][POD_VAR] == "hub"
    # Hub-managed here (on Kubernetes a Deployment of its own): it restarts with the hub.
    assert services[hub_layer.SCRATCH_SERVICE]["environment"][POD_VAR] == "hub"


def _raised_in_oauthenticator(exception):
    """`exception` as it arrives at the error page when GitHubOAuthenticator's request to GitHub fails."""
    from oauthenticator.github import GitHubOAuthenticator

    async def fetch(*args, **kwargs):
        raise exception

    authenticator = GitHubOAuthenticator()
    authenticator.fetch = fetch
    try:
        asyncio.run(authenticator.httpfetch("https://api.github.com/user"))
    except Exception as e:
        return e
    raise AssertionError("httpfetch did not raise")


@pytest.mark.parametrize("name", CLUSTERS)
def test_github_unreachable_gets_its_own_page(name):
    from tornado.httpclient import HTTPClientError

    env, namespace = hub_pages(configured(name))
    # As JupyterHub resolves template_vars: a callable is called with the page's user.
    namespace = {k: (v(None) if k.startswith("pangeo_") and callable(v) else v) for k, v in namespace.items()}

    def page(exception):
        return env.get_template("500.html").render(namespace, status_code=500, status_message="Internal Server Error",
                                                   message="", message_html="", extra_error_html="", exception=exception)

    for down in (ConnectionRefusedError(111, "Connection refused"), HTTPClientError(599, "Timeout while connecting"),
                 HTTPClientError(502, "Bad Gateway")):
        shown = page(_raised_in_oauthenticator(down))
        assert "GitHub could not be reached" in shown and 'id="pangeo-github-unreachable"' in shown, down
        assert "Traceback" not in shown
    for other in (_raised_in_oauthenticator(HTTPClientError(401, "Unauthorized")), ConnectionRefusedError(111, "db"),
                  KeyError("x"), None):
        shown = page(other)
        assert "GitHub could not be reached" not in shown and "500 : Internal Server Error" in shown, other
