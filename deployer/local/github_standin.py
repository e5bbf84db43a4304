"""A local stand-in for GitHub's OAuth and REST API, so `make dev` logs in through the production
GitHubOAuthenticator (oauthenticator 17.4.0) pointed at it with `github_url`.

Users and teams come from config/github-standin.yaml. It answers exactly what oauthenticator calls:

- GET  /login/oauth/authorize?client_id&redirect_uri&state[&code_challenge&code_challenge_method=S256]
       an HTML page "Sign in to GitHub (local stand-in)" with one button per user: a
       `<form method="post">` on the same URL (same query string) with `<button name="login" value="alice">`.
- POST /login/oauth/authorize (form: login=<user>)  -> 302 to redirect_uri?code=...&state=...
- POST /login/oauth/access_token (form: client_id, client_secret, code, redirect_uri[, code_verifier])
       -> JSON {access_token, token_type, scope}; errors are GitHub's 200 + {error, error_description}.
       With a code_challenge at authorize, the verifier must hash (S256) to it.
- GET  /api/v3/user                                   -> {login, id, name, email}
- GET  /api/v3/user/emails                            -> [{email, primary, verified}]
- GET  /api/v3/user/teams?per_page=100                -> [{slug, name, organization: {login}}]
- GET  /api/v3/orgs/{org}/teams/{team}/members/{user} -> 204 member, 404 otherwise
- GET  /api/v3/orgs/{org}/members/{user}              -> 204 if in any team of the org, 404 otherwise
  (the API calls need `Authorization: Bearer|token <access_token>`; 401 otherwise)

Logging a user in over plain HTTP (what the smoke suite does): GET {hub}/hub/oauth_login and follow the
redirects to the authorize page here, POST that same authorize URL with `login=<user>`, and follow the
redirects back to the hub (keep the hub's cookies throughout: the state cookie carries the PKCE verifier).

Access tokens are signed (HMAC) rather than stored, so they stay valid across a restart of the stand-in
that keeps the same key. The client id and secret are fixed development values that protect nothing.

Run: python -m deployer.local.github_standin --port 8010 [--users FILE]   (env PANGEO_STANDIN_TOKEN_KEY)
"""

import argparse
import asyncio
import base64
import hashlib
import hmac
import html
import json
import os
import secrets
import signal
import time
import urllib.parse
from pathlib import Path

import yaml
from tornado import web

USERS_FILE = Path(__file__).resolve().parents[2] / "config" / "github-standin.yaml"
# Development values, shared by the stand-in and the local hub's GitHubOAuthenticator. Not secrets:
# the stand-in only listens on 127.0.0.1 and vouches for made-up users.
CLIENT_ID = "pangeo-local-dev"
CLIENT_SECRET = "local-dev-not-a-secret"
CODE_LIFETIME_S = 600
SCOPES = "read:org"


def load_directory(path=USERS_FILE):
    with open(path) as f:
        data = yaml.safe_load(f)
    return Directory(data["users"], data.get("orgs", {}), data.get("roles", {}))


class Directory:
    """Who exists and who is in which team."""

    def __init__(self, users, orgs, roles=None):
        self.users, self.orgs, self.roles = users, orgs, roles or {}

    def teams_of(self, login):
        return [(org, team) for org, spec in self.orgs.items()
                for team, members in spec.get("teams", {}).items() if login in members]

    def in_team(self, org, team, login):
        return login in self.orgs.get(org, {}).get("teams", {}).get(team, [])

    def in_org(self, org, login):
        return any(o == org for o, _ in self.teams_of(login))


class TokenSigner:
    def __init__(self, key):
        self.key = key.encode()

    def _mac(self, payload):
        return hmac.new(self.key, payload.encode(), hashlib.sha256).hexdigest()[:32]

    def issue(self, login):
        payload = f"{login}.{secrets.token_hex(8)}"
        return f"gho_{payload}.{self._mac(payload)}"

    def login_of(self, token):
        if not token.startswith("gho_") or token.count(".") != 2:
            return None
        payload, mac = token[4:].rsplit(".", 1)
        if not hmac.compare_digest(mac, self._mac(payload)):
            return None
        return payload.split(".", 1)[0]


def s256(verifier):
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


class _Base(web.RequestHandler):
    @property
    def directory(self):
        return self.settings["directory"]

    def json(self, data, status=200):
        self.set_status(status)
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.finish(json.dumps(data))

    def check_xsrf_cookie(self):
        pass  # OAuth endpoints are form targets of other origins by design


class AuthorizeHandler(_Base):
    def _request(self):
        if self.get_argument("client_id", "") != CLIENT_ID:
            raise web.HTTPError(400, f"unknown client_id; this stand-in knows only {CLIENT_ID!r}")
        redirect_uri = self.get_argument("redirect_uri", "")
        if not redirect_uri.startswith(("http://127.0.0.1", "http://localhost")):
            raise web.HTTPError(400, "redirect_uri must be a local http URL")
        method = self.get_argument("code_challenge_method", "S256")
        if self.get_argument("code_challenge", "") and method != "S256":
            raise web.HTTPError(400, "only code_challenge_method=S256 is supported")
        return redirect_uri

    def get(self):
        self._request()
        buttons = "\n".join(
            f'<li><button name="login" value="{html.escape(login)}">{html.escape(login)}</button> '
            f'{html.escape(str(user.get("name", "")))} &middot; teams: '
            f'{html.escape(", ".join(f"{o}:{t}" for o, t in self.directory.teams_of(login)) or "none")}</li>'
            for login, user in self.directory.users.items())
        self.finish(f"""<!doctype html>
<html><head><meta charset="utf-8"><title>Sign in to GitHub (local stand-in)</title>
<style>body{{font-family:sans-serif;max-width:40em;margin:3em auto}} ul{{list-style:none;padding:0}}
li{{margin:.8em 0}} button{{font-size:1em;padding:.3em 1em;min-width:6em}}</style></head>
<body><h1>Sign in to GitHub (local stand-in)</h1>
<p>This is the local development stand-in for GitHub, not github.com. Pick the user to sign in as.</p>
<form method="post"><ul>
{buttons}
</ul></form></body></html>""")

    def post(self):
        redirect_uri = self._request()
        login = self.get_argument("login", "")
        if login not in self.directory.users:
            raise web.HTTPError(400, f"unknown user {login!r}")
        code = secrets.token_urlsafe(16)
        self.settings["codes"][code] = {
            "login": login, "redirect_uri": redirect_uri, "expires": time.monotonic() + CODE_LIFETIME_S,
            "code_challenge": self.get_argument("code_challenge", ""),
        }
        query = {"code": code}
        if self.get_argument("state", None) is not None:
            query["state"] = self.get_argument("state")
        separator = "&" if "?" in redirect_uri else "?"
        self.redirect(redirect_uri + separator + urllib.parse.urlencode(query))


class AccessTokenHandler(_Base):
    def _client(self):
        header = self.request.headers.get("Authorization", "")
        if header.startswith("Basic "):
            client_id, _, secret = base64.b64decode(header[6:]).decode().partition(":")
            return client_id, secret
        return self.get_argument("client_id", ""), self.get_argument("client_secret", "")

    def error(self, code, description):
        self.json({"error": code, "error_description": description})

    def post(self):
        if self._client() != (CLIENT_ID, CLIENT_SECRET):
            return self.error("incorrect_client_credentials", "The client_id and/or client_secret are incorrect.")
        grant = self.settings["codes"].pop(self.get_argument("code", ""), None)
        if grant is None or grant["expires"] < time.monotonic():
            return self.error("bad_verification_code", "The code passed is incorrect or expired.")
        redirect_uri = self.get_argument("redirect_uri", grant["redirect_uri"])
        if redirect_uri != grant["redirect_uri"]:
            return self.error("redirect_uri_mismatch", "The redirect_uri differs from the authorize request's.")
        verifier = self.get_argument("code_verifier", "")
        if grant["code_challenge"] and not hmac.compare_digest(s256(verifier), grant["code_challenge"]):
            return self.error("invalid_grant", "The code_verifier does not match the code_challenge.")
        if verifier and not grant["code_challenge"]:
            return self.error("invalid_grant", "A code_verifier was sent but no code_challenge was given.")
        token = self.settings["signer"].issue(grant["login"])
        self.json({"access_token": token, "token_type": "bearer", "scope": SCOPES})


class ApiHandler(_Base):
    def prepare(self):
        kind, _, token = self.request.headers.get("Authorization", "").partition(" ")
        login = self.settings["signer"].login_of(token) if kind.lower() in ("bearer", "token") else None
        if login not in self.directory.users:
            self.json({"message": "Bad credentials"}, status=401)
            return
        self.login = login

    def not_found(self):
        self.json({"message": "Not Found"}, status=404)

    def no_content(self):
        self.set_status(204)
        self.finish()


class UserHandler(ApiHandler):
    def get(self):
        user = self.directory.users[self.login]
        self.json({"login": self.login, "id": user["id"], "name": user.get("name"),
                   "email": user.get("email")})


class EmailsHandler(ApiHandler):
    def get(self):
        email = self.directory.users[self.login].get("email")
        self.json([{"email": email, "primary": True, "verified": True}] if email else [])


class UserTeamsHandler(ApiHandler):
    def get(self):
        self.json([{"slug": team, "name": team, "organization": {"login": org}}
                   for org, team in self.directory.teams_of(self.login)])


class TeamMemberHandler(ApiHandler):
    def get(self, org, team, login):
        self.no_content() if self.directory.in_team(org, team, login) else self.not_found()


class OrgMemberHandler(ApiHandler):
    def get(self, org, login):
        self.no_content() if self.directory.in_org(org, login) else self.not_found()


class RootHandler(_Base):
    def get(self):
        self.json({"stand_in": "GitHub (local)", "users": sorted(self.directory.users)})


def make_app(directory, token_key):
    return web.Application([
        (r"/login/oauth/authorize", AuthorizeHandler),
        (r"/login/oauth/access_token", AccessTokenHandler),
        (r"/api/v3/user", UserHandler),
        (r"/api/v3/user/emails", EmailsHandler),
        (r"/api/v3/user/teams", UserTeamsHandler),
        (r"/api/v3/orgs/([^/]+)/teams/([^/]+)/members/([^/]+)", TeamMemberHandler),
        (r"/api/v3/orgs/([^/]+)/members/([^/]+)", OrgMemberHandler),
        (r"/", RootHandler),
    ], directory=directory, signer=TokenSigner(token_key), codes={})


def main(argv=None):
    parser = argparse.ArgumentParser(description="Local GitHub OAuth/API stand-in")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--users", type=Path, default=USERS_FILE)
    args = parser.parse_args(argv)
    key = os.environ.get("PANGEO_STANDIN_TOKEN_KEY") or secrets.token_hex(32)
    asyncio.run(_serve(make_app(load_directory(args.users), key), args.port))


async def _serve(app, port):
    server = app.listen(port, address="127.0.0.1")
    stopped = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stopped.set)
    print(f"GitHub stand-in on http://127.0.0.1:{port}", flush=True)
    await stopped.wait()
    server.stop()


if __name__ == "__main__":
    main()
