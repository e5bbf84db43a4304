"""The hub as a researcher meets it: up, logging members in through GitHub, turning outsiders away kindly."""

import re

import pytest
import requests

from .hub import page_text

pytestmark = pytest.mark.smoke

HUB_VERSION = "5.5.0"  # what the z2jh 4.4.0 hub image runs


def test_hub_is_healthy(smoke_target):
    health = requests.get(f"{smoke_target.hub_url}/hub/health", timeout=30)
    assert health.status_code == 200, health.text[:300]
    api = requests.get(f"{smoke_target.hub_url}/hub/api", timeout=30)
    assert api.status_code == 200, api.text[:300]
    assert api.json()["version"] == HUB_VERSION


def test_member_logs_in_through_github(login, users, smoke_target):
    member = users["member"]
    session = login(member)
    assert session.login_response.status_code == 200, page_text(session.login_response.text)[:500]
    assert session.login_response.url.startswith(smoke_target.hub_url), session.login_response.url
    home = session.get(f"{smoke_target.hub_url}/hub/home", timeout=30, allow_redirects=False)
    assert home.status_code == 200, f"/hub/home with the login cookie: HTTP {home.status_code}"
    assert member in page_text(home.text)


def test_outsider_gets_the_how_to_apply_page(login, users, facts, smoke_target):
    session = login(users["outsider"])
    page = session.login_response
    text = page_text(page.text)
    assert page.status_code == 403, f"the outsider got HTTP {page.status_code}: {text[:500]}"
    assert "Traceback" not in page.text
    teams = facts["github"]["allowed_teams"]
    assert any(team in text for team in teams), f"the page names none of the teams {teams}: {text[:800]}"
    assert facts["support"]["apply_url"] in page.text, f"no link to {facts['support']['apply_url']}: {text[:800]}"
    words = re.sub(r"\s+([,.])", r"\1", text)  # page_text leaves a space where a tag closed before a comma
    assert f"You signed in with the GitHub account {users['outsider']}, which is not a member of the GitHub team" \
        in words, f"the page must name the account that signed in: {text[:800]}"
    # The page stays at /hub/oauth_callback?code=...&state=...: a reload must lead back to the login.
    again = session.get(page.url, timeout=30)
    assert again.status_code == 400 and "This sign-in has already been used" in page_text(again.text), again.text[:800]
    assert 'href="/hub/login"' in again.text, again.text[:800]
    home = session.get(f"{smoke_target.hub_url}/hub/home", timeout=30, allow_redirects=False)
    assert home.status_code != 200, "the outsider was let in after all"


def test_admin_is_admin_and_member_is_not(hub, users, smoke_target):
    admin, member = users["admin"], users["member"]
    if smoke_target.login is not None:
        # The admin flag comes from the GitHub admin team, which the hub reads at login.
        smoke_target.login(admin)
    else:
        hub.ensure_user(member)
    assert (hub.user(admin) or {}).get("admin") is True, f"{admin} is not an admin on the hub"
    assert hub.ensure_user(member)["admin"] is False, f"{member} should not be an admin"
    for name, expected in ((admin, 200), (member, 403)):
        token = hub.user_token(name)
        reply = requests.get(f"{smoke_target.hub_url}/hub/api/users", headers={"Authorization": f"token {token}"}, timeout=30)
        assert reply.status_code == expected, f"{name} listing all users: HTTP {reply.status_code}, wanted {expected}"


def test_admin_page_for_admin_only(login, users, smoke_target):
    for name, expected in ((users["admin"], 200), (users["member"], 403)):
        session = login(name)
        page = session.get(f"{smoke_target.hub_url}/hub/admin", timeout=30, allow_redirects=False)
        assert page.status_code == expected, f"{name} on /hub/admin: HTTP {page.status_code}, wanted {expected}"


def test_services_that_are_apis_stay_out_of_the_menu(hub):
    # Their roots are no page for people (the gateway's is a 404, the credentials service's a health answer).
    services = hub.request("GET", "/services").json()
    for name in ("dask-gateway", "scratch-credentials"):
        assert name in services, f"the hub does not know the {name} service: {sorted(services)}"
        assert services[name]["display"] is False, f"{name} is in the hub's Services menu"


def test_every_entry_of_the_services_menu_opens_a_page(login, users, smoke_target):
    session = login(users["member"])
    home = session.get(f"{smoke_target.hub_url}/hub/home", timeout=30)
    assert home.status_code == 200, f"/hub/home: HTTP {home.status_code}"
    for link in sorted(set(re.findall(r'href="([^"]*/services/[^"]*)"', home.text))):
        page = session.get(requests.compat.urljoin(home.url, link), timeout=30)
        assert page.status_code < 400, f"the Services menu entry {link} leads to HTTP {page.status_code}"
