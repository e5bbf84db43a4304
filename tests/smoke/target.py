"""The hub the smoke suite tests: whatever runs it (local stack, kind, a live deploy) hands one over."""

import os
import urllib.parse
from dataclasses import dataclass, field
from typing import Callable, Optional

import requests

from .login import standin_login

ROLES = ("member", "member2", "admin", "outsider")
# The GitHub stand-in's own users (deployer/local), used when SMOKE_USERS does not name others.
STANDIN_USERS = {"member": "alice", "member2": "bob", "admin": "ada", "outsider": "eve"}


def scratch_of(facts, name):
    """What PANGEO_SCRATCH must be for user `name`: written out here, not taken from hub_config, so the
    suite checks the promise rather than the code that keeps it."""
    return f"{facts['scratch']['bucket']}/{urllib.parse.quote(name, safe='')}"


@dataclass
class Target:
    """A running hub.

    hub_url: the public root (the proxy), without a trailing slash.
    api_token: a token with the admin role; the suite creates users, short-lived user tokens and servers.
    users: role -> user name for every role in ROLES. Members and the admin must be allowed on the hub.
    facts: the cluster's facts (deployer.facts.load), the source of expected sizes, bucket and limits.
    login: logs a user in through the real GitHub OAuth flow and returns the browser-like session
        (with `.login_response`, the last page); None where nothing can play GitHub (a production hub).
    """

    hub_url: str
    api_token: str
    users: dict
    facts: dict
    login: Optional[Callable[[str], requests.Session]] = None
    description: str = ""
    timings: dict = field(default_factory=dict)

    def __post_init__(self):
        self.hub_url = self.hub_url.rstrip("/")
        missing = [role for role in ROLES if not self.users.get(role)]
        if missing:
            raise ValueError(f"Target.users lacks the roles {missing}; it needs one user for each of {ROLES}")


def from_environment(environ=os.environ):
    """The target named by SMOKE_* variables (`make health`, tests/kind), or None when SMOKE_HUB_URL is unset.

    SMOKE_HUB_URL    the hub's public URL, e.g. https://us-central1-b.gcp.pangeo.io
    SMOKE_API_TOKEN  a token with the admin role
    SMOKE_CLUSTER    the cluster file name whose facts the hub runs (config/clusters/<name>.yaml)
    SMOKE_USERS      role=name,... (roles member, member2, admin, outsider); default the stand-in's users
    SMOKE_GITHUB_URL set where a GitHub stand-in serves the hub's logins (kind); unset: login tests skip
    """
    from deployer import facts as cluster_facts

    hub_url = environ.get("SMOKE_HUB_URL")
    if not hub_url:
        return None
    missing = [name for name in ("SMOKE_API_TOKEN", "SMOKE_CLUSTER") if not environ.get(name)]
    if missing:
        raise ValueError(f"SMOKE_HUB_URL is set, so the smoke suite also needs {', '.join(missing)}")
    users = dict(STANDIN_USERS)
    for pair in filter(None, environ.get("SMOKE_USERS", "").split(",")):
        role, sep, name = pair.partition("=")
        if not sep or role.strip() not in ROLES:
            raise ValueError(f"SMOKE_USERS: {pair!r} is not role=name with a role among {ROLES}")
        users[role.strip()] = name.strip()
    login = None
    if environ.get("SMOKE_GITHUB_URL"):
        login = lambda username: standin_login(hub_url, username)  # noqa: E731
    return Target(
        hub_url=hub_url,
        api_token=environ["SMOKE_API_TOKEN"],
        users=users,
        facts=cluster_facts.load(environ["SMOKE_CLUSTER"]),
        login=login,
        description=f"{environ['SMOKE_CLUSTER']} at {hub_url}",
    )
