"""The GCP path end to end on one machine: google-auth and gcsfs from the notebook environment (real code, in
a process with only a pod's environment) ask the service's metadata endpoint; the service downscopes its
source credentials through a fake Google STS that records the boundary; a fake storage API records the bearer
token it is shown. Plus an opt-in test against a real project."""

import copy
import datetime
import json
import os
import subprocess
import urllib.parse
from pathlib import Path

import google.auth.credentials
import google.auth.downscoped
import pytest

import hub_config
import scratch_credentials as sc
from deployer import facts as facts_module
from tests.unit.scratch_harness import Harness

REPO = Path(__file__).resolve().parents[2]
USER_PYTHON = REPO / ".venv" / "user" / "bin" / "python"

CLIENT = r"""
import json, sys, time
import gcsfs
fs = gcsfs.GCSFileSystem()
out = {"method": fs.credentials.method}
for i in range(int(sys.argv[1])):
    fs.ls(sys.argv[2], refresh=True)
    time.sleep(float(sys.argv[3]))
print(json.dumps(out))
"""


class FakeSource(google.auth.credentials.Credentials):
    """The service's own Google credentials (Workload Identity on GKE)."""

    def __init__(self):
        super().__init__()
        self.refreshed = 0

    def refresh(self, request):
        self.refreshed += 1
        self.token = f"source-{self.refreshed}"
        self.expiry = datetime.datetime.utcnow() + datetime.timedelta(hours=1)


@pytest.fixture
def gcp(monkeypatch):
    if not USER_PYTHON.is_file():
        pytest.skip(f"needs the notebook environment {USER_PYTHON} (google-auth, gcsfs): `make setup` builds it")
    facts = copy.deepcopy(facts_module.load("gcp-us-central1b"))
    # Every token is told to last 12 s: google-auth refreshes 3m45s before expiry, so each call asks again.
    facts["scratch"]["credentials"].update(lifetime_minutes=0.2, min_remaining_minutes=0.1)
    source = FakeSource()
    harness = Harness(facts, lambda h: {"gcp": sc.GcpMinter(facts, sc.Settings(facts), source=source)})
    harness.start()
    # google-auth's downscoped credentials post to https://sts.<universe>/v1/token: here, the fake.
    monkeypatch.setattr(google.auth.downscoped, "_STS_TOKEN_URL_PATTERN", harness.fake_url + "/google-sts/{}")
    harness.add_user("alice", "alices-token")
    harness.source = source
    yield harness
    harness.stop()


def pod_environment(harness, user, credential, tmp_path):
    """Only what a notebook pod has: the service's address from hub_config, no Google credentials."""
    access = hub_config.scratch_access_environment(harness.facts, user, credential)
    address = f"127.0.0.1:{harness.port}/services/scratch-credentials/gcp/{user}/{credential}"
    assert access["GCE_METADATA_HOST"].endswith(address.split(":", 1)[1].split("/", 1)[1])
    return {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "GCE_METADATA_HOST": address, "GCE_METADATA_IP": address,
            "STORAGE_EMULATOR_HOST": harness.fake_url + "/storage", "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT": "false"}


def run_client(env, calls, bucket_path, pause_s):
    result = subprocess.run([USER_PYTHON, "-c", CLIENT, str(calls), bucket_path, str(pause_s)], env=env,
                            capture_output=True, text=True, timeout=120)
    return result


def test_gcsfs_uses_the_services_downscoped_token_and_refreshes(gcp, tmp_path):
    bucket = sc.bucket_name(gcp.facts)
    result = run_client(pod_environment(gcp, "alice", "alices-token", tmp_path), 5, f"{bucket}/alice", 2)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout)["method"] == "google_default"  # not a silent anonymous fallback
    # Each storage call carried a token the fake STS issued, never the service's own source token.
    assert gcp.fakes.storage and all(h.startswith("Bearer downscoped-") for h in gcp.fakes.storage)
    assert len(set(gcp.fakes.storage)) >= 2, "the client never refreshed its token"
    exchange = gcp.fakes.google_sts[0]
    assert exchange["subject_token"].startswith("source-")
    assert exchange["grant_type"] == "urn:ietf:params:oauth:grant-type:token-exchange"
    boundary = json.loads(urllib.parse.unquote(exchange["options"]))  # google-auth quotes it once more
    assert boundary == sc.gcp_boundary(bucket, "alice").to_json()
    (rule,) = boundary["accessBoundary"]["accessBoundaryRules"]
    assert rule["availabilityCondition"]["expression"] == sc.gcp_boundary_condition(bucket, "alice")
    assert gcp.minted("gcp", "alice") >= 2


def test_a_wrong_token_gets_no_google_credentials_and_no_anonymous_access(gcp, tmp_path):
    bucket = sc.bucket_name(gcp.facts)
    result = run_client(pod_environment(gcp, "alice", "not-a-token", tmp_path), 1, f"{bucket}/alice", 0)
    assert result.returncode != 0
    assert gcp.fakes.storage == [] and gcp.fakes.google_sts == []


def test_a_real_project():
    """Opt-in: PANGEO_GCP_TEST_BUCKET (a bucket the machine's application-default credentials may write)."""
    bucket = os.environ.get("PANGEO_GCP_TEST_BUCKET")
    if not bucket:
        pytest.skip("needs a Google Cloud project: set PANGEO_GCP_TEST_BUCKET to a bucket that the "
                    "application-default credentials (gcloud auth application-default login) may write")
    import google.auth
    from google.auth.transport.requests import AuthorizedSession
    source, _ = google.auth.default(scopes=[sc.GCP_SCOPE])
    creds = google.auth.downscoped.Credentials(source_credentials=source,
                                               credential_access_boundary=sc.gcp_boundary(bucket, "alice"))
    session = AuthorizedSession(creds)
    api = f"https://storage.googleapis.com/upload/storage/v1/b/{bucket}/o?uploadType=media&name="
    assert session.post(api + "alice/probe", data=b"x").status_code == 200
    assert session.post(api + "bob/probe", data=b"x").status_code == 403
    assert session.post(api + "alice2/probe", data=b"x").status_code == 403
