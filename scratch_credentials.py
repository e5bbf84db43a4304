"""The scratch-credentials service: short-lived cloud credentials that reach only the caller's scratch prefix.

Run as `python scratch_credentials.py` (a JupyterHub service named `scratch-credentials`). It is the only
workload holding the cloud identity that may write the cluster's scratch bucket; every caller gets
credentials narrowed to `<bucket>/<their name>/`:

- AWS: STS AssumeRoleWithWebIdentity (the service's own IRSA token; locally SeaweedFS's STS with the
  stack's token) with an inline session policy. The call is unsigned, so no botocore is needed here.
  Served at `<prefix>aws/<user>` in the shape botocore's container provider reads
  (AWS_CONTAINER_CREDENTIALS_FULL_URI + AWS_CONTAINER_AUTHORIZATION_TOKEN).
- GCP: a Credential Access Boundary token (google-auth `downscoped`) from the service's Google service
  account, served at `<prefix>gcp/<user>/<credential>/computeMetadata/v1/...` in the shape of the Compute
  Engine metadata server that google-auth asks when GCE_METADATA_HOST points here (google-auth sends no
  Authorization header to a metadata server, so the credential is in the path).

Callers are notebooks (their JupyterHub token, which must carry access:services!service=scratch-credentials)
and Dask schedulers and workers (a credential the gateway signs with PANGEO_SCRATCH_SIGNING_KEY that names
the user and expires; see gateway_config.scratch_worker_credential). Rotating that key revokes them all.

Environment: PANGEO_FACTS (the cluster's facts as JSON), JUPYTERHUB_API_TOKEN / JUPYTERHUB_API_URL /
JUPYTERHUB_SERVICE_PREFIX (set by the hub or the chart), PANGEO_SCRATCH_SIGNING_KEY, SCRATCH_CREDENTIALS_PORT
(default 8080); on AWS the IRSA variables AWS_ROLE_ARN and AWS_WEB_IDENTITY_TOKEN_FILE, and optionally
AWS_ENDPOINT_URL_STS (the local stack's SeaweedFS). Imports only what the chart's hub image ships.
"""

import asyncio
import datetime
import hashlib
import hmac
import json
import logging
import os
import re
import sys
import time
import xml.etree.ElementTree as ET
from urllib.parse import urlencode, urlsplit

from tornado import httpclient, web

SERVICE_NAME = "scratch-credentials"
DASK_CREDENTIAL_PREFIX = "pangeo-scratch-v1"
# What can stand in an IAM resource, an s3:prefix condition and a CEL string literal as it is, and is the
# same after URL quoting (the prefix is hub_config.scratch_url's). JupyterHub lowercases names.
SAFE_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]{0,62}")
STS_NS = {"sts": "https://sts.amazonaws.com/doc/2011-06-15/"}
STS_MIN_DURATION_S = 900  # AWS STS (and SeaweedFS) refuse shorter sessions
GCP_SCOPE = "https://www.googleapis.com/auth/cloud-platform"
LOG = logging.getLogger(SERVICE_NAME)


class Refused(web.HTTPError):
    """A refusal whose message the caller sees (botocore and google-auth print the body)."""

    def __init__(self, status, message):
        super().__init__(status, reason=None)
        self.message = message

    def __str__(self):
        return self.message


# ---- the rules --------------------------------------------------------------------------------------------

def check_name(username):
    """The name itself, or Refused: a name that cannot be written safely into a policy is never escaped."""
    if not SAFE_NAME.fullmatch(username) or ".." in username:
        raise Refused(403, f"Your user name {username!r} cannot be written safely into a storage access policy "
                           "(only a-z, 0-9, '.', '_' and '-', starting with a letter or digit, at most 63), so no "
                           "scratch credentials are issued for it. Ask the hub's operators for help.")
    return username


def bucket_name(facts):
    return urlsplit(facts["scratch"]["bucket"]).netloc


def aws_session_policy(bucket, username):
    """Object actions under `<user>/` (and the bare key `<user>`, which s3fs HEADs), listing only those."""
    name = check_name(username)
    return {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow",
         "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload",
                    "s3:ListMultipartUploadParts"],
         "Resource": [f"arn:aws:s3:::{bucket}/{name}/*", f"arn:aws:s3:::{bucket}/{name}"]},
        {"Effect": "Allow", "Action": ["s3:ListBucket"], "Resource": [f"arn:aws:s3:::{bucket}"],
         "Condition": {"StringLike": {"s3:prefix": [name, f"{name}/*"]}}},
    ]}


def gcp_boundary_condition(bucket, username):
    """The CEL availability condition of the user's Credential Access Boundary (the slash keeps `al` out of
    `alice/`)."""
    name = check_name(username)
    objects = f"projects/_/buckets/{bucket}/objects/{name}"
    list_prefix = "api.getAttribute('storage.googleapis.com/objectListPrefix', '')"
    return (f"resource.name.startsWith('{objects}/') || resource.name == '{objects}' || "
            f"{list_prefix}.startsWith('{name}/') || {list_prefix} == '{name}'")


def gcp_boundary(bucket, username):
    from google.auth import downscoped
    rule = downscoped.AccessBoundaryRule(
        available_resource=f"//storage.googleapis.com/projects/_/buckets/{bucket}",
        available_permissions=["inRole:roles/storage.objectAdmin"],
        availability_condition=downscoped.AvailabilityCondition(
            gcp_boundary_condition(bucket, username), title=f"scratch prefix of {username}"))
    return downscoped.CredentialAccessBoundary(rules=[rule])


def sign_worker_credential(key, username, expires_at):
    """The credential a Dask pod presents; minted by gateway_config.scratch_worker_credential."""
    mac = hmac.new(key.encode(), f"{username}.{int(expires_at)}".encode(), hashlib.sha256).hexdigest()
    return f"{DASK_CREDENTIAL_PREFIX}.{username}.{int(expires_at)}.{mac}"


def worker_credential_user(key, credential, now=None):
    """The user a worker credential names, or Refused (forged, altered or expired)."""
    body = credential[len(DASK_CREDENTIAL_PREFIX) + 1:]
    try:
        username, expires_at, _ = body.rsplit(".", 2)
        expires_at = int(expires_at)
    except ValueError:
        raise Refused(401, "The Dask credential is malformed; start a new Dask cluster.") from None
    if not key or not hmac.compare_digest(sign_worker_credential(key, username, expires_at), credential):
        raise Refused(401, "The Dask credential is not valid here (not signed by this hub's gateway, or the "
                           "signing key was rotated); start a new Dask cluster.")
    if expires_at <= (now or time.time()):
        raise Refused(401, "The Dask credential has expired; start a new Dask cluster.")
    return username


class Settings:
    """What the facts say about credentials: scratch.credentials.* (config/cluster.schema.yaml)."""

    def __init__(self, facts):
        creds = facts["scratch"].get("credentials", {})
        self.lifetime_s = float(creds.get("lifetime_minutes", 60)) * 60
        self.min_remaining_s = float(creds.get("min_remaining_minutes", 20)) * 60
        if self.min_remaining_s >= self.lifetime_s:
            raise ValueError(f"config/clusters/{facts['name']}.yaml: scratch.credentials.min_remaining_minutes "
                             f"must be below lifetime_minutes, or every request would mint new credentials")


# ---- minting ----------------------------------------------------------------------------------------------

class AwsMinter:
    """STS AssumeRoleWithWebIdentity with the user's session policy; the same call on EKS and locally."""

    def __init__(self, facts, settings, env=os.environ):
        self.bucket = bucket_name(facts)
        self.settings = settings
        self.role_arn = env.get("AWS_ROLE_ARN") or facts["scratch"].get("identity", {}).get("aws_role_arn")
        self.token_file = env.get("AWS_WEB_IDENTITY_TOKEN_FILE")
        region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1"
        self.sts_url = env.get("AWS_ENDPOINT_URL_STS") or f"https://sts.{region}.amazonaws.com/"
        if not (self.role_arn and self.token_file):
            raise ValueError("scratch-credentials on AWS needs AWS_ROLE_ARN and AWS_WEB_IDENTITY_TOKEN_FILE (the "
                             "IRSA variables of its ServiceAccount, annotated with scratch.identity.aws_role_arn)")

    async def mint(self, username):
        with open(self.token_file) as f:  # re-read: the kubelet rotates it
            token = f.read().strip()
        body = urlencode({
            "Action": "AssumeRoleWithWebIdentity", "Version": "2011-06-15", "RoleArn": self.role_arn,
            "RoleSessionName": f"scratch-{username}"[:64], "WebIdentityToken": token,
            "DurationSeconds": str(max(STS_MIN_DURATION_S, round(self.settings.lifetime_s))),
            "Policy": json.dumps(aws_session_policy(self.bucket, username), separators=(",", ":")),
        })
        try:
            response = await httpclient.AsyncHTTPClient().fetch(
                self.sts_url, method="POST", body=body, raise_error=False, request_timeout=20,
                headers={"Content-Type": "application/x-www-form-urlencoded"})
        except OSError as e:
            raise Refused(503, f"The cloud's token service ({self.sts_url}) cannot be reached: {e}") from None
        text = response.body.decode(errors="replace") if response.body else str(response.error)
        if response.code != 200:
            LOG.error("STS refused %s: %s %s", username, response.code, text[:500])
            raise Refused(502, "The cloud's token service refused to issue scratch credentials; the hub's "
                               "operators can see why in the scratch-credentials log.")
        creds = ET.fromstring(text).find(".//sts:Credentials", STS_NS)
        expires = _parse_time(creds.findtext("sts:Expiration", namespaces=STS_NS))
        return {"AccessKeyId": creds.findtext("sts:AccessKeyId", namespaces=STS_NS),
                "SecretAccessKey": creds.findtext("sts:SecretAccessKey", namespaces=STS_NS),
                "Token": creds.findtext("sts:SessionToken", namespaces=STS_NS)}, expires


class GcpMinter:
    """A downscoped token from the service's own Google credentials (Workload Identity on GKE)."""

    def __init__(self, facts, settings, source=None):
        self.bucket = bucket_name(facts)
        self.settings = settings
        self.email = facts["scratch"].get("identity", {}).get("gcp_service_account", "default")
        self.project = self.email.split("@")[1].split(".")[0] if "@" in self.email else ""
        if source is None:
            import google.auth
            source, project = google.auth.default(scopes=[GCP_SCOPE])
            self.project = self.project or project or ""
        self.source = source

    async def mint(self, username):
        from google.auth import downscoped
        from google.auth.transport.requests import Request
        boundary = gcp_boundary(self.bucket, username)

        def refresh():  # google-auth is synchronous: off the event loop
            creds = downscoped.Credentials(source_credentials=self.source, credential_access_boundary=boundary)
            creds.refresh(Request())
            return creds

        try:
            creds = await asyncio.get_running_loop().run_in_executor(None, refresh)
        except Exception as e:  # google.auth.exceptions.* and transport errors
            LOG.error("downscoping for %s failed: %s", username, e)
            raise Refused(502, "Google's token service refused to issue scratch credentials; the hub's operators "
                               "can see why in the scratch-credentials log.") from None
        expires = creds.expiry.replace(tzinfo=datetime.timezone.utc).timestamp()
        return {"access_token": creds.token, "token_type": "Bearer"}, expires


class CredentialCache:
    """Per user and cloud: mint once, hand out while at least min_remaining is left (clients refresh early:
    botocore from 15 minutes before expiry), and never mint twice at once for one user."""

    def __init__(self, minter, settings, clock=time.time):
        self.minter, self.settings, self.clock = minter, settings, clock
        self.entries = {}
        self.locks = {}
        self.minted = {}

    async def get(self, username):
        lock = self.locks.setdefault(username, asyncio.Lock())
        async with lock:
            entry = self.entries.get(username)
            if entry is None or entry[1] - self.clock() < self.settings.min_remaining_s:
                now = self.clock()
                creds, expires = await self.minter.mint(username)
                # The lifetime may be set below what the cloud allows (tests): then the caller is told so,
                # and asks again sooner.
                entry = self.entries[username] = (creds, min(expires, now + self.settings.lifetime_s))
                self.minted[username] = self.minted.get(username, 0) + 1
                LOG.info("minted scratch credentials for %s (%d so far), valid until %s", username,
                         self.minted[username], _format_time(entry[1]))
            return entry


# ---- HTTP -------------------------------------------------------------------------------------------------

class BaseHandler(web.RequestHandler):
    def write_error(self, status_code, **kwargs):
        error = kwargs.get("exc_info", (None, None))[1]
        message = getattr(error, "message", None) or getattr(error, "log_message", None) or self._reason
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"message": f"Scratch credentials refused: {message}"}))

    async def caller(self, credential):
        """The user `credential` (a JupyterHub token, or a Dask credential) belongs to."""
        if not credential:
            raise Refused(401, "no credential was sent (AWS_CONTAINER_AUTHORIZATION_TOKEN or the metadata "
                               "address in GCE_METADATA_HOST is missing from this environment).")
        if credential.startswith(DASK_CREDENTIAL_PREFIX + "."):
            return worker_credential_user(self.settings["signing_key"], credential)
        hub_auth = self.settings["hub_auth"]
        # No cache: a revoked token must stop working at once.
        model = await hub_auth.user_for_token(credential, use_cache=False, sync=False)
        if model is None or model.get("kind", "user") != "user":
            raise Refused(403, "the hub does not know this token (wrong, expired or revoked). Restart your "
                               "server from the hub's home page to get a new one.")
        if not hub_auth.check_scopes(hub_auth.access_scopes, model):
            raise Refused(403, f"this token may not use the {SERVICE_NAME} service "
                               f"(it lacks access:services!service={SERVICE_NAME}).")
        return model["name"]

    async def authorized(self, asked_user, credential):
        user = await self.caller(credential)
        if user != asked_user:
            raise Refused(403, f"this credential belongs to {user!r}; it cannot get {asked_user!r}'s scratch "
                               "credentials. Each user may reach only their own scratch prefix.")
        return check_name(user)


class HealthHandler(BaseHandler):
    """A plain request (no authentication, no minting): the benchmarks' baseline."""

    def get(self):
        self.finish({"status": "ok"})


class AwsHandler(BaseHandler):
    async def get(self, asked_user):
        token = self.request.headers.get("Authorization", "")
        user = await self.authorized(asked_user, re.sub(r"^(token|bearer)\s+", "", token, flags=re.I))
        creds, expires = await self.settings["caches"]["aws"].get(user)
        self.finish({**creds, "Expiration": _format_time(expires)})


class GcpMetadataHandler(BaseHandler):
    """The part of the Compute Engine metadata server google-auth and gcsfs use."""

    def set_default_headers(self):
        self.set_header("Metadata-Flavor", "Google")

    async def get(self, asked_user, credential, path):
        path = (path or "").strip("/")
        if path == "":  # google-auth's "is there a metadata server" ping
            self.finish("")
            return
        user = await self.authorized(asked_user, credential)
        minter = self.settings["caches"]["gcp"].minter
        if path == "computeMetadata/v1/project/project-id":
            self.finish(minter.project)
        elif re.fullmatch(r"computeMetadata/v1/instance/service-accounts/[^/]+", path):
            self.finish({"email": minter.email, "aliases": ["default"], "scopes": [GCP_SCOPE]})
        elif re.fullmatch(r"computeMetadata/v1/instance/service-accounts/[^/]+/token", path):
            creds, expires = await self.settings["caches"]["gcp"].get(user)
            self.finish({**creds, "expires_in": max(0, int(expires - time.time()))})
        else:
            raise Refused(404, f"this metadata server answers only for credentials, not {path!r}.")


class UnconfiguredMinter:
    """Refuses every request: this cluster's file names no scratch identity (e.g. kind)."""

    def __init__(self, facts):
        self.message = (f"cluster {facts['name']} has no scratch bucket identity (its cluster file sets no "
                        "scratch.identity), so no one gets scratch credentials here.")
        self.project = self.email = ""

    async def mint(self, username):
        raise Refused(503, self.message)


def make_app(facts, signing_key, hub_auth, prefix=f"/services/{SERVICE_NAME}/", minters=None, clock=time.time):
    """The tornado application. `minters` ({"aws": ..., "gcp": ...}) replaces the cloud's own (tests)."""
    settings = Settings(facts)
    if minters is None:
        cloud, minter_class = (("aws", AwsMinter) if facts["scratch"]["bucket"].startswith("s3://")
                               else ("gcp", GcpMinter))
        try:
            minters = {cloud: minter_class(facts, settings)}
        except ValueError:
            # gcp and aws cluster files must name an identity (deployer.facts), so a missing one there is a
            # broken deployment and the service must not start. A cluster without one (kind) still runs the
            # service, so that the chart is the same everywhere, and every caller is told why not.
            if "identity" in facts["scratch"]:
                raise
            minters = {cloud: UnconfiguredMinter(facts)}
    caches = {cloud: CredentialCache(minter, settings, clock) for cloud, minter in minters.items()}
    prefix = "/" + prefix.strip("/") + "/"
    return web.Application([
        (prefix + r"(?:health)?", HealthHandler),
        (prefix + r"aws/([^/]+)", AwsHandler),
        (prefix + r"gcp/([^/]+)/([^/]+)(/.*)?", GcpMetadataHandler),
    ], signing_key=signing_key, hub_auth=hub_auth, caches=caches, facts=facts)


def _parse_time(text):
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _format_time(timestamp):
    return datetime.datetime.fromtimestamp(timestamp, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def main():
    logging.basicConfig(level=logging.INFO, format="[%(levelname)1.1s %(asctime)s %(name)s] %(message)s")
    from jupyterhub.services.auth import HubAuth
    from tornado.ioloop import IOLoop
    facts = json.loads(os.environ["PANGEO_FACTS"])
    signing_key = os.environ.get("PANGEO_SCRATCH_SIGNING_KEY", "")
    if not signing_key:
        LOG.warning("PANGEO_SCRATCH_SIGNING_KEY is not set: Dask schedulers and workers will be refused")
    hub_auth = HubAuth(access_scopes={f"access:services!service={SERVICE_NAME}"})
    try:
        app = make_app(facts, signing_key, hub_auth, prefix=os.environ.get("JUPYTERHUB_SERVICE_PREFIX",
                                                                           f"/services/{SERVICE_NAME}/"))
    except ValueError as e:
        sys.exit(f"scratch-credentials: {e}")
    port = int(os.environ.get("SCRATCH_CREDENTIALS_PORT", "8080"))
    app.listen(port, address=os.environ.get("SCRATCH_CREDENTIALS_IP", ""))
    LOG.info("scratch-credentials for %s on port %d", facts["scratch"]["bucket"], port)
    try:
        IOLoop.current().start()
    except KeyboardInterrupt:  # the hub stops its services with SIGINT
        LOG.info("stopped")


if __name__ == "__main__":
    main()
