"""The scratch-credentials service in-process, beside fakes of what it calls: the hub's API, AWS STS,
Google STS, and a storage API that records the bearer token it is shown. Each fake records its requests."""

import asyncio
import datetime
import json
import threading
import time
import urllib.parse

from jupyterhub.services.auth import HubAuth
from tornado import web
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets

import scratch_credentials

SERVICE_TOKEN = "the-services-own-hub-token"
SCRATCH_SCOPE = "access:services!service=scratch-credentials"


class Clock:
    def __init__(self):
        self.offset = 0.0

    def __call__(self):
        return time.time() + self.offset


class Fakes:
    def __init__(self, clock):
        self.clock = clock
        self.tokens = {}  # hub token -> user model
        self.aws_sts = []  # form fields of each AssumeRoleWithWebIdentity
        self.google_sts = []  # form fields of each token exchange
        self.storage = []  # Authorization headers the storage API saw
        self.sts_down = False


class FakeHubUser(web.RequestHandler):
    def get(self):
        fakes = self.settings["fakes"]
        token = self.request.headers.get("Authorization", "").removeprefix("token ")
        if token not in fakes.tokens:
            self.set_status(403)
            self.finish({"status": 403, "message": "Missing or invalid credentials"})
            return
        self.finish(fakes.tokens[token])


class FakeAwsSts(web.RequestHandler):
    def post(self):
        fakes = self.settings["fakes"]
        form = {k: v[0].decode() for k, v in self.request.body_arguments.items()}
        fakes.aws_sts.append(form)
        if fakes.sts_down:
            raise web.HTTPError(500)
        expires = datetime.datetime.fromtimestamp(fakes.clock() + int(form["DurationSeconds"]), datetime.timezone.utc)
        n = len(fakes.aws_sts)
        self.set_header("Content-Type", "text/xml")
        self.finish(
            '<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">'
            "<AssumeRoleWithWebIdentityResult><Credentials>"
            f"<AccessKeyId>ASIA{n}</AccessKeyId><SecretAccessKey>secret{n}</SecretAccessKey>"
            f"<SessionToken>session{n}</SessionToken><Expiration>{expires:%Y-%m-%dT%H:%M:%SZ}</Expiration>"
            "</Credentials></AssumeRoleWithWebIdentityResult></AssumeRoleWithWebIdentityResponse>")


class FakeGoogleSts(web.RequestHandler):
    def post(self, _):
        fakes = self.settings["fakes"]
        form = dict(urllib.parse.parse_qsl(self.request.body.decode()))
        fakes.google_sts.append(form)
        self.finish({"access_token": f"downscoped-{len(fakes.google_sts)}",
                     "issued_token_type": "urn:ietf:params:oauth:token-type:access_token",
                     "token_type": "Bearer", "expires_in": 3600})


class FakeStorage(web.RequestHandler):
    """Every listing holds one object, `<prefix>x`."""

    def get(self, path):
        self.settings["fakes"].storage.append(self.request.headers.get("Authorization"))
        bucket = path.split("/b/", 1)[1].split("/", 1)[0]
        prefix = self.get_argument("prefix", "")
        item = {"kind": "storage#object", "bucket": bucket, "name": prefix + "x", "size": "1",
                "updated": "2026-12-01T00:00:00Z", "generation": "1"}
        self.finish({"kind": "storage#objects", "items": [item]} if path.endswith("/o") else item)


class Harness:
    """start() -> self; .url(path), .fakes, .app (the service), .facts; stop()."""

    def __init__(self, facts, minters_for, signing_key="k" * 32):
        self.facts, self.minters_for, self.signing_key = facts, minters_for, signing_key
        self.clock = Clock()
        self.fakes = Fakes(self.clock)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def start(self):
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)
        return self

    async def _start(self):
        fake_socket = bind_sockets(0, "127.0.0.1")
        self.fake_url = f"http://127.0.0.1:{fake_socket[0].getsockname()[1]}"
        fakes_app = web.Application([
            (r"/hub/api/user", FakeHubUser), (r"/aws-sts/", FakeAwsSts), (r"/google-sts/(.*)", FakeGoogleSts),
            (r"/storage/(.*)", FakeStorage)], fakes=self.fakes)
        self.fake_server = HTTPServer(fakes_app)
        self.fake_server.add_sockets(fake_socket)
        hub_auth = HubAuth(api_url=f"{self.fake_url}/hub/api", api_token=SERVICE_TOKEN,
                           access_scopes={SCRATCH_SCOPE})
        self.app = scratch_credentials.make_app(self.facts, self.signing_key, hub_auth,
                                                minters=self.minters_for(self), clock=self.clock)
        service_socket = bind_sockets(0, "127.0.0.1")
        self.port = service_socket[0].getsockname()[1]
        self.server = HTTPServer(self.app)
        self.server.add_sockets(service_socket)

    def url(self, path):
        return f"http://127.0.0.1:{self.port}/services/scratch-credentials/{path}"

    def add_user(self, name, token, scopes=(SCRATCH_SCOPE,), kind="user"):
        self.fakes.tokens[token] = {"kind": kind, "name": name, "scopes": list(scopes)}

    def minted(self, cloud, user):
        return self.app.settings["caches"][cloud].minted.get(user, 0)

    def stop(self):
        async def close():
            self.server.stop()
            self.fake_server.stop()
        asyncio.run_coroutine_threadsafe(close(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def aws_env(harness, tmp_path):
    token = tmp_path / "irsa-token"
    token.write_text("the-service-accounts-projected-token")
    return {"AWS_ROLE_ARN": "arn:aws:iam::123456789012:role/scratch", "AWS_WEB_IDENTITY_TOKEN_FILE": str(token),
            "AWS_ENDPOINT_URL_STS": f"{harness.fake_url}/aws-sts/"}


def json_of(response):
    return json.loads(response.text)
