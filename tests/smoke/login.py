"""Logging in the way a researcher does, against a GitHub stand-in (deployer/local's, or kind's)."""

import requests

TIMEOUT = 30


def standin_login(hub_url, username):
    """Run the hub's GitHub OAuth flow as `username` and return the session (cookies of the hub).

    "Sign in with GitHub" is GET /hub/oauth_login, which redirects to the stand-in's authorize page; the
    page's form posts `login` back to the same URL, and the stand-in redirects to the hub's callback.
    The final page is kept as `session.login_response` (the hub home for a member, the friendly 403 page
    for an outsider).
    """
    session = requests.Session()
    page = session.get(f"{hub_url.rstrip('/')}/hub/oauth_login", timeout=TIMEOUT)
    page.raise_for_status()
    if "/login/oauth/authorize" not in page.url:
        raise AssertionError(f"/hub/oauth_login led to {page.url}, not to GitHub's /login/oauth/authorize")
    session.login_response = session.post(page.url, data={"login": username}, timeout=TIMEOUT)
    return session


def callback_url(hub_url, username):
    """The first half of standin_login: the stand-in's redirect back to the hub (with code and state), not yet
    followed, and the session whose state cookie goes with it (the attack and fault tests replay or break it)."""
    session = requests.Session()
    page = session.get(f"{hub_url.rstrip('/')}/hub/oauth_login", timeout=TIMEOUT)
    page.raise_for_status()
    reply = session.post(page.url, data={"login": username}, timeout=TIMEOUT, allow_redirects=False)
    if reply.status_code not in (302, 303):
        raise AssertionError(f"the stand-in answered the login of {username} with HTTP {reply.status_code}")
    return session, reply.headers["Location"]
