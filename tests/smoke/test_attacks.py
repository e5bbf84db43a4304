"""What a user must not be able to do to another (issue 13): reach their server, tokens or cluster, make
herself an admin, be redirected off the hub, replay a login, forge a form, or use a dead token.

Alice is the member, bob the second member (Target.users). Each refusal is asserted where a researcher
would try it: with her browser cookie (where a GitHub stand-in lets the suite log in) and with her token.
"""

import time
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import websocket

from .hub import TIMEOUT
from .kernel import Kernel
from .login import callback_url
from .report import record
from .test_gateway import GATEWAY_TIMEOUT

pytestmark = pytest.mark.smoke

REFUSED = (401, 403, 404)
# hub_config.TOKEN_CACHE_S, written out: the suite checks the promise, not the code that keeps it.
TOKEN_CACHE_S = 30
EVIL = "https://evil.example.org/steal"


def _token_session(token):
    session = requests.Session()
    session.headers["Authorization"] = f"token {token}"
    return session


@pytest.fixture(scope="module")
def alice_token(hub, member_server):
    return member_server.token


@pytest.fixture(scope="module")
def bob_kernel_id(member2_server):
    return member2_server.kernel().id


def _bob_urls(smoke_target, bob, kernel_id):
    base = f"{smoke_target.hub_url}/user/{bob}"
    return {
        "lab": ("GET", f"{base}/lab"),
        "contents api": ("GET", f"{base}/api/contents"),
        "kernels api": ("GET", f"{base}/api/kernels"),
        "kernel": ("GET", f"{base}/api/kernels/{kernel_id}"),
        "new terminal": ("POST", f"{base}/api/terminals"),
        "new kernel": ("POST", f"{base}/api/kernels"),
    }


def _assert_not_bobs(reply, what, bob):
    """Refused outright, or sent to a login/authorization page that refuses: never bob's content."""
    landed = urlsplit(reply.url).path
    assert reply.status_code in REFUSED or not landed.startswith(f"/user/{bob}/"), \
        f"{what}: HTTP {reply.status_code} at {reply.url}"
    assert reply.status_code != 200 or "/hub/" in landed, f"{what}: HTTP 200 at {reply.url}"


def test_alices_token_cannot_reach_bobs_server(smoke_target, users, alice_token, bob_kernel_id):
    session = _token_session(alice_token)
    for what, (method, url) in _bob_urls(smoke_target, users["member2"], bob_kernel_id).items():
        reply = session.request(method, url, timeout=TIMEOUT, json={} if method == "POST" else None)
        _assert_not_bobs(reply, f"alice's token, {method} bob's {what}", users["member2"])


def test_alices_cookie_cannot_reach_bobs_server(member_server, smoke_target, users, bob_kernel_id):
    if member_server.session is None:
        pytest.skip(f"no GitHub stand-in logs anyone in to {smoke_target.hub_url}: no browser cookie to try")
    session = member_server.session
    session.get(member_server.url + "lab", timeout=TIMEOUT)  # her own server's cookie too, as a browser has
    for what, (method, url) in _bob_urls(smoke_target, users["member2"], bob_kernel_id).items():
        reply = session.request(method, url, timeout=TIMEOUT)
        _assert_not_bobs(reply, f"alice's cookie, {method} bob's {what}", users["member2"])


def _kernel_socket(smoke_target, bob, kernel_id, header=None, cookie=None):
    parts = urlsplit(smoke_target.hub_url)
    scheme = "wss" if parts.scheme == "https" else "ws"
    url = f"{scheme}://{parts.netloc}/user/{bob}/api/kernels/{kernel_id}/channels"
    try:
        websocket.create_connection(url, header=header or [], cookie=cookie, timeout=TIMEOUT).close()
    except websocket.WebSocketBadStatusException as e:
        return e.status_code
    return 101


def test_alice_cannot_open_bobs_kernel_websocket(member_server, smoke_target, users, alice_token, bob_kernel_id):
    bob = users["member2"]
    assert _kernel_socket(smoke_target, bob, bob_kernel_id, header=[f"Authorization: token {alice_token}"]) in REFUSED
    if member_server.session is not None:
        cookie = "; ".join(f"{c.name}={c.value}" for c in member_server.session.cookies)
        assert _kernel_socket(smoke_target, bob, bob_kernel_id, cookie=cookie) in REFUSED


def test_alice_cannot_manage_bobs_server_or_tokens_via_the_hub_api(smoke_target, users, alice_token):
    session = _token_session(alice_token)
    api, bob = f"{smoke_target.hub_url}/hub/api", users["member2"]
    for method, path in (("GET", f"/users/{bob}"), ("POST", f"/users/{bob}/server"), ("DELETE", f"/users/{bob}/server"),
                         ("DELETE", f"/users/{bob}"), ("GET", f"/users/{bob}/tokens"),
                         ("POST", f"/users/{bob}/tokens"), ("GET", "/users"), ("GET", "/groups"),
                         ("GET", "/proxy"), ("GET", "/services")):
        reply = session.request(method, api + path, timeout=TIMEOUT, json={} if method == "POST" else None)
        assert reply.status_code in REFUSED, f"alice's token: {method} /hub/api{path}: HTTP {reply.status_code}"
    assert session.get(api + f"/users/{bob}", timeout=TIMEOUT).status_code in REFUSED


def test_a_member_cannot_make_herself_admin(hub, smoke_target, users, alice_token):
    session = _token_session(alice_token)
    alice, api = users["member"], f"{smoke_target.hub_url}/hub/api"
    reply = session.patch(f"{api}/users/{alice}", json={"admin": True}, timeout=TIMEOUT)
    assert reply.status_code in REFUSED, f"alice granting herself admin: HTTP {reply.status_code}"
    for scopes in (["admin:users"], ["admin-ui"], ["access:servers"], ["read:tokens"]):
        reply = session.post(f"{api}/users/{alice}/tokens", json={"scopes": scopes, "expires_in": 60}, timeout=TIMEOUT)
        assert reply.status_code in (400, 403), f"alice asking for a token with {scopes}: HTTP {reply.status_code}"
    assert hub.user(alice)["admin"] is False


def test_a_servers_own_token_cannot_act_for_another_user(member_server, smoke_target, users):
    """The token JupyterHub gives alice's server (what her notebook code can read) is scoped to her server."""
    server_token = member_server.run("import os; print(os.environ['JUPYTERHUB_API_TOKEN'])").strip()
    session = _token_session(server_token)
    api, bob = f"{smoke_target.hub_url}/hub/api", users["member2"]
    for method, path in (("GET", f"/users/{bob}"), ("POST", f"/users/{bob}/tokens"), ("DELETE", f"/users/{bob}/server"),
                         ("GET", "/users")):
        reply = session.request(method, api + path, timeout=TIMEOUT, json={} if method == "POST" else None)
        assert reply.status_code in REFUSED, f"alice's server token: {method} /hub/api{path}: HTTP {reply.status_code}"
    reply = session.get(f"{smoke_target.hub_url}/user/{bob}/api/contents", timeout=TIMEOUT)
    _assert_not_bobs(reply, "alice's server token on bob's contents", bob)


def _everywhere(smoke_target, member_server, token):
    """Status codes a token gets from the hub API, the owner's server and the gateway."""
    session = _token_session(token)
    return {
        "hub api": session.get(f"{smoke_target.hub_url}/hub/api/user", timeout=TIMEOUT).status_code,
        "server": session.get(member_server.url + "api/contents", timeout=TIMEOUT, allow_redirects=False).status_code,
        # The gateway's JupyterHub authenticator reads the token as the dask-gateway client sends it.
        "gateway": requests.get(f"{smoke_target.hub_url}/services/dask-gateway/api/v1/clusters/",
                                headers={"Authorization": f"jupyterhub {token}"}, timeout=TIMEOUT,
                                allow_redirects=False).status_code,
    }


def _refused(seen):
    """A server redirects an unknown token to the hub's login (302); dask-gateway 2026.3.0 answers 500 for a
    token the hub refuses (upstream: its JupyterHub authenticator does not map the hub's 403/404)."""
    return all(status in REFUSED or (where == "server" and status == 302) or (where == "gateway" and status == 500)
               for where, status in seen.items())


def test_expired_and_revoked_tokens_are_refused_everywhere(hub, member_server, smoke_target, users):
    """Everywhere at once for an expired token; a revoked one may still open the server it was used on for the
    server's cache time of the hub's answer (HubOAuth.cache_max_age, hub_config.TOKEN_CACHE_S), not longer."""
    alice = users["member"]
    live = hub.request("POST", f"/users/{alice}/tokens", json={"note": "attack: live", "expires_in": 600},
                       expect=(200, 201)).json()
    assert _everywhere(smoke_target, member_server, live["token"]) == {"hub api": 200, "server": 200, "gateway": 200}
    expiring = hub.request("POST", f"/users/{alice}/tokens", json={"note": "attack: expiring", "expires_in": 1},
                           expect=(200, 201)).json()
    hub.request("DELETE", f"/users/{alice}/tokens/{live['id']}", expect=(204,))
    revoked_at = time.monotonic()
    time.sleep(3)
    seen = _everywhere(smoke_target, member_server, expiring["token"])
    assert _refused(seen), f"the expired token is accepted somewhere: {seen}"
    seen = _everywhere(smoke_target, member_server, live["token"])
    while not _refused(seen) and time.monotonic() - revoked_at < TOKEN_CACHE_S + 15:
        time.sleep(2)
        seen = _everywhere(smoke_target, member_server, live["token"])
    assert _refused(seen), f"the revoked token is still accepted {time.monotonic() - revoked_at:.0f} s later: {seen}"
    record("attack: a revoked token refused everywhere after", time.monotonic() - revoked_at)


# ---- login ------------------------------------------------------------------------------------------------

def test_next_off_the_hub_is_not_followed(login, users, smoke_target):
    session = login(users["member"])
    for next_url in (EVIL, "//evil.example.org/steal", "/\\evil.example.org", "https:evil.example.org"):
        reply = session.get(f"{smoke_target.hub_url}/hub/login", params={"next": next_url}, timeout=TIMEOUT,
                            allow_redirects=False)
        location = reply.headers.get("Location", "")
        target = urlsplit(requests.compat.urljoin(smoke_target.hub_url + "/hub/login", location))
        assert target.hostname in (None, urlsplit(smoke_target.hub_url).hostname), \
            f"next={next_url!r} redirected to {location!r}"


def test_oauth_state_mismatch_and_replayed_callback_are_refused(login, users, smoke_target):
    session, callback = callback_url(smoke_target.hub_url, users["member"])
    query = parse_qs(urlsplit(callback).query)
    forged = callback.replace(f"state={query['state'][0]}", "state=forged")
    assert session.get(forged, timeout=TIMEOUT).status_code in (400, 403), "a forged state was accepted"

    session, callback = callback_url(smoke_target.hub_url, users["member"])
    assert session.get(callback, timeout=TIMEOUT).status_code == 200, "the genuine callback failed"
    replayed = session.get(callback, timeout=TIMEOUT, allow_redirects=False)
    assert replayed.status_code in (400, 403), f"the same callback again: HTTP {replayed.status_code}"
    stranger = requests.Session().get(callback, timeout=TIMEOUT, allow_redirects=False)
    assert stranger.status_code in (400, 403), f"the callback in another browser: HTTP {stranger.status_code}"


def _deletion(flags):
    expires = next((f.split("=", 1)[1] for f in flags if f.startswith("expires=")), None)
    return "max-age=0" in flags or (expires is not None and parsedate_to_datetime(expires) < datetime.now(timezone.utc))


def test_login_cookies_are_httponly_and_secure_on_https(users, smoke_target, login):
    session, callback = callback_url(smoke_target.hub_url, users["member"])
    reply = session.get(callback, timeout=TIMEOUT, allow_redirects=False)
    cookies = reply.raw.headers.getlist("Set-Cookie")
    assert cookies, "the login set no cookie"
    https = smoke_target.hub_url.startswith("https://")
    for cookie in cookies:
        flags = {part.strip().lower() for part in cookie.split(";")[1:]}
        if _deletion(flags):
            continue  # the OAuth state cookie, cleared: an expired empty cookie, nothing to protect
        name = cookie.split("=")[0]
        # The XSRF cookie is read by the hub's own pages' JavaScript (double submit): HttpOnly would break it.
        assert "httponly" in flags or name == "_xsrf", f"not HttpOnly: {name}"
        assert ("secure" in flags) or not https, f"not Secure on an HTTPS hub: {name}"


def test_cross_site_posts_are_refused(member_server, smoke_target, users):
    """Forms (spawn, token creation) need the hub's XSRF token: a page elsewhere cannot post them for alice."""
    if member_server.session is None:
        pytest.skip(f"no GitHub stand-in logs anyone in to {smoke_target.hub_url}: no browser cookie to try")
    alice, hub_url = users["member"], smoke_target.hub_url
    cross_site = {"Origin": "https://evil.example.org", "Referer": "https://evil.example.org/form"}
    jar = requests.Session()
    jar.cookies.update({c.name: c.value for c in member_server.session.cookies if c.name != "_xsrf"})
    spawn = jar.post(f"{hub_url}/hub/spawn/{alice}", data={"profile": "x"}, headers=cross_site, timeout=TIMEOUT,
                     allow_redirects=False)
    assert spawn.status_code == 403, f"a cross-site spawn form: HTTP {spawn.status_code}"
    token = jar.post(f"{hub_url}/hub/api/users/{alice}/tokens", json={"note": "cross-site"}, headers=cross_site,
                     timeout=TIMEOUT)
    assert token.status_code in (401, 403), f"a cross-site token creation: HTTP {token.status_code}: {token.text[:200]}"


# ---- Dask clusters ------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def bobs_cluster(member2_server):
    """bob's cluster, and where its scheduler listens: inside the gateway's network and behind its proxy."""
    with Kernel(member2_server.url, member2_server.token) as kernel:
        info = kernel.run_json("""
import json
from dask_gateway import Gateway
gateway = Gateway()
cluster = gateway.new_cluster()
client = cluster.get_client()
print(json.dumps({"name": cluster.name, "scheduler": client.scheduler_info()["address"],
                  "proxied": cluster.scheduler_address}))
""", timeout=GATEWAY_TIMEOUT)
        yield info
        kernel.run("client.close()\ncluster.shutdown()", timeout=120)


def test_alice_cannot_use_bobs_cluster(bobs_cluster, member_server):
    """Not listed, not scalable, not stoppable through the gateway; not connectable at its scheduler's own
    address nor through the gateway's proxy (both need the cluster's TLS credentials, which only bob gets)."""
    with Kernel(member_server.url, member_server.token) as kernel:
        outcome = kernel.run_json(f"""
import json
from dask_gateway import Gateway
from distributed import Client
gateway = Gateway()
name = {bobs_cluster["name"]!r}
outcome = {{"listed": name in [c.name for c in gateway.list_clusters()]}}
def attempt(what, action):
    try:
        action()
        outcome[what] = "allowed"
    except Exception as e:
        outcome[what] = f"{{type(e).__name__}}: {{e}}"[:300]
attempt("scale", lambda: gateway.scale_cluster(name, 2))
attempt("stop", lambda: gateway.stop_cluster(name))
attempt("scheduler", lambda: Client({bobs_cluster["scheduler"]!r}, timeout=10).close())
attempt("proxied", lambda: Client({bobs_cluster["proxied"]!r}, timeout=10).close())
print(json.dumps(outcome))
""", timeout=180)
    assert outcome["listed"] is False, outcome
    for what in ("scale", "stop", "scheduler", "proxied"):
        assert outcome[what] != "allowed", f"alice could {what} bob's cluster: {outcome}"
    assert "403" in outcome["scale"] and "403" in outcome["stop"], outcome
