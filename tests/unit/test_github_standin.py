"""The local GitHub stand-in answers oauthenticator's calls as GitHub does (deployer/local/github_standin.py)."""

import json
import re
import secrets
import urllib.parse

from oauthenticator.github import GitHubOAuthenticator
from tornado.testing import AsyncHTTPTestCase, gen_test

from deployer.local import github_standin as standin

REDIRECT = "http://127.0.0.1:8000/hub/oauth_callback"


class StandInTest(AsyncHTTPTestCase):
    def get_app(self):
        return standin.make_app(standin.load_directory(), token_key="unit-test-key")

    def authorize(self, login, challenge=None, client_id=standin.CLIENT_ID):
        query = {"client_id": client_id, "redirect_uri": REDIRECT, "state": "s-1", "scope": "read:org"}
        if challenge:
            query.update(code_challenge=challenge, code_challenge_method="S256")
        return self.fetch("/login/oauth/authorize?" + urllib.parse.urlencode(query), method="POST",
                          body=urllib.parse.urlencode({"login": login}), follow_redirects=False)

    def code_for(self, login, challenge=None):
        response = self.authorize(login, challenge)
        self.assertEqual(response.code, 302)
        location = urllib.parse.urlsplit(response.headers["Location"])
        self.assertEqual(location._replace(query="").geturl(), REDIRECT)
        query = urllib.parse.parse_qs(location.query)
        self.assertEqual(query["state"], ["s-1"])
        return query["code"][0]

    def exchange(self, code, verifier=None, secret=standin.CLIENT_SECRET):
        form = {"client_id": standin.CLIENT_ID, "client_secret": secret, "code": code,
                "grant_type": "authorization_code", "redirect_uri": REDIRECT}
        if verifier:
            form["code_verifier"] = verifier
        response = self.fetch("/login/oauth/access_token", method="POST", body=urllib.parse.urlencode(form),
                              headers={"Accept": "application/json"})
        self.assertEqual(response.code, 200)
        return json.loads(response.body)

    def token(self, login):
        verifier = secrets.token_urlsafe(32)
        return self.exchange(self.code_for(login, standin.s256(verifier)), verifier)["access_token"]

    def api(self, path, token):
        return self.fetch("/api/v3" + path, headers={"Authorization": f"token {token}"})

    def test_authorize_page_lists_every_user_as_a_button_posting_to_the_same_url(self):
        response = self.fetch(f"/login/oauth/authorize?client_id={standin.CLIENT_ID}&redirect_uri={REDIRECT}&state=x")
        page = response.body.decode()
        self.assertEqual(response.code, 200)
        self.assertIn("Sign in to GitHub (local stand-in)", page)
        self.assertIn('<form method="post">', page)
        for login in ("alice", "bob", "ada", "eve"):
            self.assertRegex(page, rf'<button name="login" value="{login}">')

    def test_unknown_client_and_unknown_user_are_refused(self):
        self.assertEqual(self.authorize("alice", client_id="someone-else").code, 400)
        self.assertEqual(self.authorize("mallory").code, 400)

    def test_pkce_verifier_must_match_the_challenge(self):
        verifier = secrets.token_urlsafe(32)
        code = self.code_for("alice", standin.s256(verifier))
        reply = self.exchange(code, "not-the-verifier")
        self.assertEqual(reply["error"], "invalid_grant")
        self.assertNotIn("access_token", reply)

        code = self.code_for("alice", standin.s256(verifier))
        reply = self.exchange(code, verifier)
        self.assertEqual((reply["token_type"], reply["scope"]), ("bearer", "read:org"))
        self.assertEqual(self.exchange(code, verifier)["error"], "bad_verification_code")  # codes are single-use

    def test_missing_verifier_and_wrong_client_secret_are_refused(self):
        code = self.code_for("alice", standin.s256("v" * 43))
        self.assertEqual(self.exchange(code)["error"], "invalid_grant")
        self.assertEqual(self.exchange(self.code_for("alice"), secret="wrong")["error"],
                         "incorrect_client_credentials")

    def test_user_endpoint_needs_a_valid_token(self):
        user = json.loads(self.api("/user", self.token("alice")).body)
        self.assertEqual((user["login"], user["id"], user["email"]), ("alice", 1001, "alice@example.org"))
        self.assertIn("name", user)
        self.assertEqual(self.api("/user", "gho_alice.0000.forged").code, 401)
        self.assertEqual(self.fetch("/api/v3/user").code, 401)

    def test_team_membership_is_204_for_members_and_404_otherwise(self):
        token = self.token("ada")
        cases = {
            "/orgs/pangeo-data/teams/local-users/members/alice": 204,
            "/orgs/pangeo-data/teams/local-users/members/eve": 404,
            "/orgs/pangeo-data/teams/local-admins/members/ada": 204,
            "/orgs/pangeo-data/teams/local-admins/members/alice": 404,
            "/orgs/pangeo-data/teams/no-such-team/members/alice": 404,
            "/orgs/pangeo-data/members/bob": 204,
            "/orgs/pangeo-data/members/eve": 404,
            "/orgs/elsewhere/members/alice": 404,
        }
        self.assertEqual({path: self.api(path, token).code for path in cases}, cases)

    def test_user_teams_lists_slug_name_and_organization(self):
        teams = json.loads(self.api("/user/teams?per_page=100", self.token("ada")).body)
        self.assertEqual(teams, [{"slug": "local-admins", "name": "local-admins",
                                  "organization": {"login": "pangeo-data"}}])
        self.assertEqual(json.loads(self.api("/user/teams?per_page=100", self.token("eve")).body), [])

    @gen_test
    async def test_the_real_github_authenticator_reads_users_and_teams_from_it(self):
        authenticator = GitHubOAuthenticator(github_url=self.get_url(""), client_id=standin.CLIENT_ID,
                                             client_secret=standin.CLIENT_SECRET)
        self.assertEqual(authenticator.github_api, self.get_url("/api/v3"))
        token = self._app.settings["signer"].issue("alice")  # the flow itself is tested above
        user = await authenticator.token_to_user({"access_token": token, "token_type": "bearer"})
        self.assertEqual(user["login"], "alice")
        check = authenticator._check_membership_allowed_organizations
        self.assertTrue(await check("pangeo-data:local-users", "alice", token, "bearer"))
        self.assertFalse(await check("pangeo-data:local-users", "eve", token, "bearer"))
        self.assertTrue(await check("pangeo-data", "alice", token, "bearer"))


def test_the_data_file_has_a_member_an_admin_and_an_outsider():
    directory = standin.load_directory()
    roles = directory.roles
    assert {"member", "member2", "admin", "outsider"} <= set(roles)
    assert directory.in_team("pangeo-data", "local-users", roles["member"])
    assert directory.in_team("pangeo-data", "local-users", roles["member2"])
    assert directory.in_team("pangeo-data", "local-admins", roles["admin"])
    assert directory.teams_of(roles["outsider"]) == []
    assert all(re.fullmatch(r"[a-z][a-z0-9-]*", login) for login in directory.users)
