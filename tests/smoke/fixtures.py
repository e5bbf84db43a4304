"""The smoke suite's fixtures, built on `smoke_target` (which the runner's conftest provides).

Star-imported by tests/smoke/conftest.py and by every runner's conftest (tests/local, tests/kind), because
pytest only shows a conftest's fixtures to the tests below it. Everything is session-scoped: one server
per user, started once, so that the whole suite stays within minutes.
"""

import pytest

from .hub import HubAPI, UserServer, profile_choices
from .report import record


@pytest.fixture(scope="session")
def facts(smoke_target):
    return smoke_target.facts


@pytest.fixture(scope="session")
def users(smoke_target):
    return smoke_target.users


@pytest.fixture(scope="session")
def hub(smoke_target):
    return HubAPI(smoke_target.hub_url, smoke_target.api_token)


@pytest.fixture(scope="session")
def login(smoke_target):
    if smoke_target.login is None:
        pytest.skip(f"no GitHub stand-in serves {smoke_target.hub_url}'s logins (a production hub logs in at github.com)")
    return smoke_target.login


def _fresh_server(hub, name, smoke_target):
    """The user's server object, their old server stopped, and (where possible) their login session.

    The user logs in first where a stand-in allows it: with auth state on, the hub refreshes a user's GitHub
    auth before a spawn when it is older than auth_refresh_age or was never refreshed by this hub, and
    refuses users that never logged in ("auth has expired").
    On a production hub, SMOKE_USERS must name accounts that have logged in recently.
    """
    session = smoke_target.login(name) if smoke_target.login is not None else None
    hub.ensure_user(name)
    server = UserServer(hub, name)
    server.session = session
    if hub.user(name)["servers"].get(""):
        server.stop()  # left over from an earlier run: the suite must watch a spawn from the start
    return server


def _start(server, choice, role):
    spawn = server.start(choice)
    record(f"spawn {role} ({server.name}, profile {choice})", spawn.seconds)
    return spawn


@pytest.fixture(scope="session")
def member_server(hub, users, facts, smoke_target):
    """The member's server, started with the second size offered (the first where there is only one).

    `.spawn_page_html` is the spawn page it was started from, seen through the member's login session; None
    where nobody can log in (a production hub), and the profile slugs are then the size names, the slugs
    hub_config gives its profiles. `.spawn` is the spawn, with its progress events.
    """
    server = _fresh_server(hub, users["member"], smoke_target)
    server.spawn_page_html = None
    choices = list(facts["notebook"]["sizes"])
    if server.session is not None:
        server.spawn_page_html = server.spawn_page(server.session)
        choices = [slug for slug, _ in profile_choices(server.spawn_page_html)]
        if not choices:
            pytest.fail(f"the spawn page of {server.name} offers no profile:\n{server.spawn_page_html[:2000]}")
    server.profile_index = 1 if len(choices) > 1 else 0
    server.spawn = _start(server, choices[server.profile_index], "member")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def member2_server(hub, users, facts, smoke_target):
    """A second member's server, with the default (first) size: the neighbour in the isolation tests."""
    server = _fresh_server(hub, users["member2"], smoke_target)
    server.spawn = _start(server, facts["notebook"]["sizes"][0], "member2")
    yield server
    server.stop()
