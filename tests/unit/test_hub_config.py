"""hub_config.py loaded into a real traitlets Config, read by the real JupyterHub, GitHubOAuthenticator and
KubeSpawner classes of the chart's hub image; logins run against a fake GitHub API; pages rendered by
JupyterHub's own templates with ours in front.
"""

import ast
import asyncio
import importlib.metadata
import io
import json
import logging
import re
import subprocess
import sys
import types
import urllib.parse

import pytest
from jinja2 import ChoiceLoader, Environment, FileSystemLoader, PrefixLoader
from jupyterhub.app import JupyterHub
from jupyterhub.scopes import _check_scopes_exist
from jupyterhub.spawner import LocalProcessSpawner
from oauthenticator.github import GitHubOAuthenticator
from oauthenticator.oauth2 import _serialize_state
from tornado import web
from tornado.httpclient import HTTPClientError, HTTPResponse
from tornado.httputil import HTTPHeaders
from traitlets.config import Config

import hub_config
from deployer import facts, values

CLUSTERS = facts.cluster_names()
PRODUCTION = [name for name in CLUSTERS if facts.read_yaml(facts.cluster_file(name))["stage"] == "production"]


def configured(cluster_facts, c=None):
    c = Config() if c is None else c
    hub_config.configure(c, cluster_facts)
    return c


@pytest.fixture(autouse=True)
def crypt_key(monkeypatch):
    monkeypatch.setenv("JUPYTERHUB_CRYPT_KEY", "0" * 64)


# ---- authentication ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", CLUSTERS)
def test_authenticator_is_limited_to_the_cluster_teams(all_facts, name):
    cluster = all_facts[name]
    c = configured(cluster)
    assert issubclass(c.JupyterHub.authenticator_class, GitHubOAuthenticator)
    auth = c.JupyterHub.authenticator_class(config=c)
    github = cluster["github"]
    assert auth.allowed_organizations == set(github["allowed_teams"])
    assert auth.admin_groups == set(github["admin_teams"])
    assert auth.manage_groups is True
    assert auth.populate_teams_in_auth_state is True
    assert "read:org" in auth.scope
    assert auth.enable_auth_state is True
    # Membership is rechecked by the hub's periodic refresh, not again before every spawn (cost measured).
    assert auth.refresh_pre_spawn is False
    assert auth.auth_refresh_age <= 300
    assert auth.allow_all is False
    assert auth.allow_existing_users is False
    assert auth.oauth_callback_url == f"{hub_config.hub_url(cluster)}/hub/oauth_callback"
    assert cluster["hub"]["host"] in auth.oauth_callback_url
    if "https_contact_email" in cluster["hub"]:
        assert auth.oauth_callback_url.startswith("https://")
    for team in github["allowed_teams"]:
        assert team in auth.custom_403_message
    assert cluster["hub"]["host"] in auth.custom_403_message


def test_github_url_moves_every_endpoint(all_facts):
    local = all_facts["local"]
    auth = GitHubOAuthenticator(config=configured(local))
    url = local["github"]["url"]
    assert auth.github_api == f"{url}/api/v3"
    assert auth.authorize_url == f"{url}/login/oauth/authorize"
    assert auth.token_url == f"{url}/login/oauth/access_token"
    assert auth.oauth_callback_url == f"http://localhost:{local['hub']['port']}/hub/oauth_callback"
    public = GitHubOAuthenticator(config=configured(all_facts["aws-uswest2"]))
    assert public.github_api == "https://api.github.com"


class FakeGitHub:
    """GitHub's OAuth token endpoint and the REST calls oauthenticator makes, for a few users and teams."""

    def __init__(self, auth, teams_of):
        self.auth, self.teams_of, self.requests = auth, teams_of, []

    async def fetch(self, request, raise_error=True, **kwargs):
        self.requests.append((request.method, request.url))
        code, body = self.answer(request)
        response = HTTPResponse(request, code, headers=HTTPHeaders({"Content-Type": "application/json"}),
                                buffer=io.BytesIO(b"" if body is None else json.dumps(body).encode()))
        if raise_error and code >= 400:
            raise HTTPClientError(code, response=response)
        return response

    def answer(self, request):
        if request.method == "POST" and request.url == self.auth.token_url:
            login = urllib.parse.parse_qs(request.body.decode())["code"][0]
            return 200, {"access_token": f"token-{login}", "token_type": "bearer", "scope": "read:org"}
        authorization = request.headers.get("Authorization", "")
        if not authorization.startswith("Bearer token-"):
            return 401, {"message": "Requires authentication"}
        login = authorization.removeprefix("Bearer token-")
        api = self.auth.github_api
        path = request.url.removeprefix(api)
        if path == "/user":
            return 200, {"login": login, "id": 7, "name": login, "email": f"{login}@example.org"}
        if path == "/user/teams?per_page=100":
            return 200, [{"slug": t.split(":")[1], "name": t, "organization": {"login": t.split(":")[0]}}
                         for t in self.teams_of.get(login, [])]
        match = re.fullmatch(r"/orgs/([^/]+)/teams/([^/]+)/members/([^/]+)", path)
        if match:
            org, team, user = match.groups()
            member = user == login and f"{org}:{team}" in self.teams_of.get(login, [])
            return (204, None) if member else (404, {"message": "Not Found"})
        return 404, {"message": f"not faked: {request.method} {request.url}"}


def login(auth, teams_of, username):
    """The OAuth callback's path through the authenticator, from the code GitHub hands back."""
    auth.http_client = github = FakeGitHub(auth, teams_of)
    handler = types.SimpleNamespace(get_argument=lambda name: username,
                                    get_state_cookie=lambda: _serialize_state({"code_verifier": "v" * 43}))
    model = asyncio.run(auth.get_authenticated_user(handler, None))
    return model, github.requests


@pytest.mark.parametrize("name", CLUSTERS)
def test_team_members_get_in_admins_are_admins_others_are_refused(all_facts, name):
    github = all_facts[name]["github"]
    org = github["allowed_teams"][0].split(":")[0]
    teams_of = {
        "alice": [github["allowed_teams"][0], "other-org:friends"],
        "ada": list(github["admin_teams"]),
        "eve": [f"{org}:not-this-cluster", "other-org:friends"],
    }
    auth = GitHubOAuthenticator(config=configured(all_facts[name]))

    member, _ = login(auth, teams_of, "alice")
    assert member["name"] == "alice"
    assert member["admin"] is False
    assert member["groups"] == [github["allowed_teams"][0]]
    assert member["auth_state"]["teams"]

    admin, _ = login(auth, teams_of, "ada")
    assert admin["admin"] is True
    assert admin["groups"] == sorted(github["admin_teams"])

    outsider, requests = login(auth, teams_of, "eve")
    assert outsider is None
    asked = {url for method, url in requests if "/members/" in url}
    assert asked == {f"{auth.github_api}/orgs/{team.replace(':', '/teams/')}/members/eve"
                     for team in github["allowed_teams"]}


def test_team_groups_ignore_case_and_foreign_teams():
    teams = [{"slug": "aws-uswest2", "organization": {"login": "Pangeo-Data"}},
             {"slug": "aws-uswest2", "organization": {"login": "someone-else"}}]
    assert hub_config.team_groups(["pangeo-data:aws-uswest2"], {"teams": teams}) == {"pangeo-data:aws-uswest2"}
    assert hub_config.team_groups(["pangeo-data:aws-uswest2"], {}) == set()


def test_without_a_crypt_key_the_hub_still_starts_and_says_why(all_facts, monkeypatch, caplog):
    monkeypatch.delenv("JUPYTERHUB_CRYPT_KEY")
    with caplog.at_level(logging.WARNING, logger="JupyterHub"):
        auth = GitHubOAuthenticator(config=configured(all_facts["local"]))
    assert auth.enable_auth_state is False
    assert "JUPYTERHUB_CRYPT_KEY" in caplog.text
    assert auth.populate_teams_in_auth_state is True


def test_the_chart_key_is_enough(all_facts, monkeypatch):
    monkeypatch.delenv("JUPYTERHUB_CRYPT_KEY")
    c = Config()
    c.CryptKeeper.keys = ["1" * 64]  # as z2jh's jupyterhub_config.py sets it from its generated secret
    assert GitHubOAuthenticator(config=configured(all_facts["gcp-us-central1b"], c)).enable_auth_state is True


# ---- culling, services, roles -----------------------------------------------------------------------------

@pytest.mark.parametrize("name", CLUSTERS)
def test_idle_culler_is_a_hub_service_with_the_documented_scopes(all_facts, name):
    culling = all_facts[name]["notebook"]["culling"]
    hub = JupyterHub(config=configured(all_facts[name]))
    (culler,) = [s for s in hub.services if s["name"] == hub_config.CULLER_SERVICE]
    command = culler["command"]
    assert command[:3] == [sys.executable, "-m", "jupyterhub_idle_culler"]
    args = dict(arg.removeprefix("--").split("=") for arg in command[3:])
    assert args == {"timeout": str(round(culling["idle_minutes"] * 60)),
                    "max-age": str(round(culling["max_age_minutes"] * 60)),
                    "cull-every": str(round(culling["every_minutes"] * 60))}
    (role,) = [r for r in hub.load_roles if r["name"] == hub_config.CULLER_SERVICE]
    assert sorted(role["scopes"]) == sorted(["list:users", "read:users:activity", "read:servers", "delete:servers"])
    assert role["services"] == [hub_config.CULLER_SERVICE]


@pytest.mark.parametrize("name", PRODUCTION)
def test_production_culls_after_an_hour_idle_and_seven_days(all_facts, name):
    command = configured(all_facts[name]).JupyterHub.services[-1]["command"]
    assert "--timeout=3600" in command
    assert "--max-age=604800" in command


def test_the_culler_knows_the_options_we_pass():
    result = subprocess.run([sys.executable, "-m", "jupyterhub_idle_culler", "--help"],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    usage = result.stdout + result.stderr  # tornado.options prints its help on stderr
    for option in ("--timeout", "--max-age", "--cull-every"):
        assert option in usage


@pytest.mark.parametrize("name", CLUSTERS)
def test_users_and_their_servers_may_reach_the_gateway_and_scratch_credentials(all_facts, name):
    c = configured(all_facts[name])
    hub = JupyterHub(config=c)
    (user_role,) = [r for r in hub.load_roles if r["name"] == "user"]
    gateway_scope = f"access:services!service={hub_config.GATEWAY_SERVICE}"
    scratch_scope = f"access:services!service={hub_config.SCRATCH_SERVICE}"
    assert set(user_role["scopes"]) == {"self", gateway_scope, scratch_scope}
    scopes = LocalProcessSpawner(config=c).server_token_scopes
    assert gateway_scope in scopes and scratch_scope in scopes and "users:activity!user" in scopes and "access:servers!server" in scopes
    for role in hub.load_roles:
        _check_scopes_exist(role["scopes"], who_for=role["name"])
    _check_scopes_exist(scopes)


def test_what_the_chart_configured_is_kept(all_facts):
    """z2jh's own jupyterhub_config.py runs first: its services, env and roles must survive configure()."""
    c = Config()
    c.KubeSpawner.environment = {"DASK_GATEWAY__ADDRESS": "http://proxy-public/services/dask-gateway"}
    c.JupyterHub.services = [{"name": "dask-gateway", "url": "http://traefik", "api_token": "t"}]
    c.JupyterHub.load_roles = [{"name": "user", "scopes": ["self", "read:users:name"]}]
    c.JupyterHub.template_paths = ["/somewhere"]
    c.KubeSpawner.volumes.append({"name": "extra", "emptyDir": {}})
    configured(all_facts["aws-uswest2"], c)
    hub = JupyterHub(config=c)
    assert [s["name"] for s in hub.services] == ["dask-gateway", hub_config.CULLER_SERVICE]
    assert [r["name"] for r in hub.load_roles].count("user") == 1
    (user_role,) = [r for r in hub.load_roles if r["name"] == "user"]
    assert {"self", "read:users:name", "access:services!service=dask-gateway",
            "access:services!service=scratch-credentials"} == set(user_role["scopes"])
    assert hub.template_paths[:2] == [str(hub_config.TEMPLATES), "/somewhere"]
    env = c.KubeSpawner.environment
    assert env["DASK_GATEWAY__ADDRESS"] and callable(env["PANGEO_SCRATCH"])
    assert [v["name"] for v in c.KubeSpawner.volumes] == ["home", "extra"]
    configured(all_facts["aws-uswest2"], c)  # twice: nothing is duplicated
    assert [v["name"] for v in c.KubeSpawner.volumes] == ["home", "extra"]
    assert len(JupyterHub(config=c).services) == 2


# ---- profiles and environment (the KubeSpawner side is in test_manifests.py) ------------------------------

@pytest.mark.parametrize("name", CLUSTERS)
def test_profiles_follow_the_sizes_table(all_facts, name):
    cluster = all_facts[name]
    listed = hub_config.profiles(cluster)
    assert [p["slug"] for p in listed] == cluster["notebook"]["sizes"]
    assert [p.get("default", False) for p in listed] == [True] + [False] * (len(listed) - 1)
    limits = [p["kubespawner_override"]["mem_limit"] for p in listed]
    assert limits == sorted(limits)
    selector = cluster["node_pools"][cluster["notebook"]["node_pool"]]["node_selector"]
    for profile in listed:
        size = cluster["sizes"][profile["slug"]]
        override = profile["kubespawner_override"]
        assert profile["display_name"] == size["display_name"]
        assert override["cpu_guarantee"] == size["cpu"]["guarantee"]
        assert override["cpu_limit"] == size["cpu"]["limit"]
        assert override["mem_guarantee"] == size["memory_gib"]["guarantee"] * 1024**3
        assert override["mem_limit"] == size["memory_gib"]["limit"] * 1024**3
        assert override["node_selector"] == selector
        assert override["environment"] == {"PANGEO_SIZE": profile["slug"]}
        assert f"{size['memory_gib']['limit']:g} GiB" in profile["description"]
    assert configured(cluster).KubeSpawner.profile_list == listed


def test_notebook_pool_taints_are_tolerated(all_facts):
    cluster = json.loads(json.dumps(all_facts["gcp-us-central1b"]))
    taint = {"key": "pangeo.io/notebook", "value": "true", "effect": "NoSchedule"}
    cluster["node_pools"]["notebook"]["taints"] = [taint]
    for profile in hub_config.profiles(cluster):
        assert profile["kubespawner_override"]["tolerations"] == [dict(taint, operator="Equal")]
    assert "tolerations" not in hub_config.profiles(all_facts["gcp-us-central1b"])[0]["kubespawner_override"]


@pytest.mark.parametrize("username, prefix", [
    ("alice", "alice"),
    ("Éva.o'Brien+1", "%C3%89va.o%27Brien%2B1"),
    ("a/b c?{x}", "a%2Fb%20c%3F%7Bx%7D"),
])
def test_scratch_url_escapes_the_name(all_facts, username, prefix):
    cluster = all_facts["aws-uswest2"]
    assert hub_config.scratch_url(cluster, username) == f"{cluster['scratch']['bucket']}/{prefix}"
    env = configured(cluster).Spawner.environment
    spawner = types.SimpleNamespace(user=types.SimpleNamespace(name=username))
    assert env["PANGEO_SCRATCH"](spawner) == env["SCRATCH_BUCKET"](spawner) == hub_config.scratch_url(cluster, username)


def test_an_s3_endpoint_reaches_botocore_and_fsspec(all_facts):
    local = all_facts["local"]
    env = configured(local).Spawner.environment
    assert env["AWS_ENDPOINT_URL"] == env["FSSPEC_S3_ENDPOINT_URL"] == local["scratch"]["endpoint_url"]
    assert "AWS_ENDPOINT_URL" not in configured(all_facts["aws-uswest2"]).Spawner.environment


# ---- pages ------------------------------------------------------------------------------------------------

def hub_pages(c):
    """JupyterHub's template environment (as JupyterHub.init_tornado_settings builds it) and its variables."""
    hub = JupyterHub(config=c)
    base = hub._template_paths_default()[0]
    paths = list(hub.template_paths) + ([base] if base not in hub.template_paths else [])
    loader = ChoiceLoader([PrefixLoader({"templates": FileSystemLoader([base])}, "/"), FileSystemLoader(paths)])
    namespace = dict(base_url="/hub/", prefix="/", user=None, login_url="/hub/login", logout_url="/hub/logout",
                     login_service="GitHub", static_url=lambda path, include_version=True: f"/hub/static/{path}",
                     version_hash="", services=[], parsed_scopes=set(), expanded_scopes=set(), xsrf="x",
                     xsrf_token="x", **hub.template_vars)
    return Environment(loader=loader, autoescape=True), namespace


def error_page(env, namespace, exception):
    """What BaseHandler.write_error renders for an HTTPError: <code>.html, with the formatted message."""
    return env.get_template(f"{exception.status_code}.html").render(
        namespace, status_code=exception.status_code, status_message="Forbidden",
        message=exception.log_message % exception.args, message_html="", extra_error_html="", exception=exception)


def assert_names_the_cluster(page, cluster):
    assert cluster["name"] in page
    assert cluster["hub"]["host"] in page
    assert f'href="{cluster["support"]["forum_url"]}"' in page
    assert f'href="{cluster["support"]["guide_url"]}"' in page


@pytest.mark.parametrize("name", CLUSTERS)
def test_an_outsider_gets_a_friendly_403_page(all_facts, name):
    cluster = all_facts[name]
    c = configured(cluster)
    env, namespace = hub_pages(c)
    refusal = web.HTTPError(403, GitHubOAuthenticator(config=c).custom_403_message)  # as OAuthCallbackHandler raises
    page = error_page(env, namespace, refusal)
    assert 'id="pangeo-not-member"' in page
    assert "<h1>Not a member of this hub's team</h1>" in page.replace("&#39;", "'")
    assert f'href="{cluster["support"]["apply_url"]}"' in page
    for team in cluster["github"]["allowed_teams"]:
        assert team in page
    assert_names_the_cluster(page, cluster)
    assert "Traceback" not in page

    other = error_page(env, namespace, web.HTTPError(403, "Action is not authorized with current scopes"))
    assert 'id="pangeo-not-member"' not in other
    assert "403 : Forbidden" in other
    assert "Action is not authorized with current scopes" in other
    assert_names_the_cluster(other, cluster)


def test_the_refusal_names_the_github_account(all_facts):
    cluster = all_facts["local"]
    c = configured(cluster)
    auth = c.JupyterHub.authenticator_class(config=c)
    refusal = web.HTTPError(403, f"{auth.custom_403_message}{hub_config.ACCOUNT_PREFIX}eve.")  # as check_allowed raises
    env, namespace = hub_pages(c)
    page = error_page(env, namespace, refusal)
    assert '<strong id="pangeo-account">eve</strong>' in page, page
    assert 'id="pangeo-sign-in-again"' in page


def test_the_authenticator_raises_the_named_refusal(all_facts):
    import asyncio

    c = configured(all_facts["local"])
    auth = c.JupyterHub.authenticator_class(config=c)
    model = {"name": "eve", "auth_state": {"github_user": {"login": "eve"}, "teams": []}}

    async def refused():
        async def no_team(self, *args):
            return False
        type(auth).__mro__[1].check_allowed = no_team  # GitHub's own answer: not in a team
        try:
            await auth.check_allowed("eve", model)
        finally:
            del type(auth).__mro__[1].check_allowed
    with pytest.raises(web.HTTPError) as e:
        asyncio.run(refused())
    assert e.value.status_code == 403
    assert e.value.log_message == f"{auth.custom_403_message}{hub_config.ACCOUNT_PREFIX}eve."


def test_a_reloaded_sign_in_leads_back_to_the_login(all_facts):
    env, namespace = hub_pages(configured(all_facts["local"]))
    page = error_page(env, namespace, web.HTTPError(400, "OAuth state missing from cookies"))
    assert 'id="pangeo-stale-sign-in"' in page and 'href="/hub/login"' in page
    other = error_page(env, namespace, web.HTTPError(400, "something else"))
    assert 'id="pangeo-stale-sign-in"' not in other and "something else" in other


def test_spawn_and_home_pages_name_the_size(all_facts):
    cluster = all_facts["local"]
    env, namespace = hub_pages(configured(cluster))
    slug = cluster["notebook"]["sizes"][-1]
    name = cluster["sizes"][slug]["display_name"]
    spawner = types.SimpleNamespace(user_options={"profile": slug}, active=True)
    user = types.SimpleNamespace(name="alice", json_escaped_name="alice", spawner=spawner)
    pending = env.get_template("spawn_pending.html").render(namespace, user=user, spawner=spawner,
                                                            progress_url="/p")
    home = env.get_template("home.html").render(namespace, user=user, url="/user/alice/", default_server=spawner,
                                                allow_named_servers=False)
    for page in (pending, home):
        assert 'id="pangeo-size"' in page and f"<strong>{name}</strong>" in page.replace("&#39;", "'")


@pytest.mark.parametrize("name", CLUSTERS)
def test_every_page_names_the_cluster_and_links_to_help(all_facts, name):
    cluster = all_facts[name]
    env, namespace = hub_pages(configured(cluster))
    login_page = env.get_template("login.html").render(namespace, authenticator_login_url="/hub/oauth_login")
    assert "Sign in with GitHub" in login_page  # JupyterHub's own login block is still there
    assert f'href="{cluster["support"]["apply_url"]}"' in login_page
    user = types.SimpleNamespace(name="alice", json_escaped_name="alice", spawner=types.SimpleNamespace(options_form=""))
    pages = {
        "login": login_page,
        "home": env.get_template("home.html").render(namespace, user=user, url="/hub/spawn/alice",
                                                     default_server=types.SimpleNamespace(active=False),
                                                     allow_named_servers=False),
        "spawn": env.get_template("spawn.html").render(namespace, user=user, url="/hub/spawn/alice",
                                                       spawner_options_form="<select name=profile></select>"),
        "404": env.get_template("404.html").render(namespace, status_code=404, status_message="Not Found"),
    }
    for page_name, page in pages.items():
        assert 'id="pangeo-footer"' in page, page_name
        assert_names_the_cluster(page, cluster)
    assert "Start" in pages["home"] and "<select name=profile>" in pages["spawn"]


def test_the_chart_mounts_the_templates_beside_hub_config(all_facts):
    files = values.merged_values(all_facts["kind"])["jupyterhub"]["hub"]["extraFiles"]
    mounted = {f["mountPath"]: f["stringData"] for f in files.values()}
    templates = sorted(hub_config.TEMPLATES.glob("*.html"))
    assert {"page.html", "login.html", "403.html"} <= {t.name for t in templates}
    for template in templates:
        # hub_config.TEMPLATES is relative to hub_config.py: the same relative path in the hub pod
        path = f"{values.HUB_CONFIG_DIR}/{hub_config.TEMPLATES.name}/{template.name}"
        assert mounted[path] == template.read_text()
    assert f"{values.HUB_CONFIG_DIR}/hub_config.py" in mounted


# ---- what hub_config.py may import ------------------------------------------------------------------------

def hub_image_requirements():
    """The hub image's frozen requirements (z2jh 4.4.0 images/hub/requirements.txt), kept in requirements/."""
    return facts.REPO / "requirements" / "hub-image.txt"


def _normalized(name):
    return re.sub(r"[-_.]+", "-", name).lower()


def foreign_imports(source, allowed_distributions):
    """Top-level module names imported by `source` that are neither stdlib nor from an allowed distribution."""
    distributions = importlib.metadata.packages_distributions()
    foreign = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            modules = [node.module]
        else:
            continue
        for module in modules:
            top = module.split(".")[0]
            if top in sys.stdlib_module_names:
                continue
            owners = {_normalized(d) for d in distributions.get(top, [])}
            if not owners or not owners & allowed_distributions:
                foreign.add(top)
    return foreign


def hub_image_distributions():
    lines = hub_image_requirements().read_text().splitlines()
    return {_normalized(line.split("==")[0].strip()) for line in lines if "==" in line and not line.startswith("#")}


def test_hub_config_imports_only_what_the_hub_image_has():
    allowed = hub_image_distributions()
    assert {"jupyterhub", "oauthenticator", "jupyterhub-kubespawner", "traitlets"} <= allowed
    assert foreign_imports(hub_config.__loader__.get_source("hub_config"), allowed) == set()
    # the check itself catches what the image lacks
    assert foreign_imports("import yaml\nimport pytest\nfrom kubernetes import client\nimport os", allowed) \
        == {"pytest", "kubernetes"}


def test_hub_config_top_level_is_imports_functions_and_constants():
    """The chart runs it beside its own config code: no statements run at import, no lower-case globals."""
    tree = ast.parse(hub_config.__loader__.get_source("hub_config"))
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom, ast.FunctionDef)):
            continue
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            continue  # the docstring
        assert isinstance(node, ast.Assign), ast.dump(node)
        assert all(isinstance(t, ast.Name) and t.id.isupper() for t in node.targets), ast.dump(node)
