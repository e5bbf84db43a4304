"""Private scratch on the local stack, at the store: each client is a separate process holding only what a pod
holds (hub_config.scratch_access_environment: the service's address and the caller's own credential), using
s3fs/botocore from the notebook environment. The store's state is read back with the admin identity, because
s3fs's bulk delete hides per-key errors: a refusal is proven by the objects, not by an exception.

Named to run after test_smoke.py: run between tests/local/test_guide.py and the smoke suite, its two minutes
left the smoke suite's member2 kernel connection closed (cause not established; the suite's kernels are
created in the guide tests and reused)."""

import json
import subprocess
import time
import uuid
from pathlib import Path

import pytest
import requests

import gateway_config
import hub_config
from deployer.local import scratch
from deployer.local import hub_layer
from deployer.values import deep_merge
from tests.smoke import guide

pytestmark = pytest.mark.local

REPO = Path(__file__).resolve().parents[2]
USER_PYTHON = REPO / ".venv" / "user" / "bin" / "python"
SCOPE = "access:services!service=scratch-credentials"

ATTEMPTS = r"""
import json, sys
import s3fs
theirs, mine = sys.argv[1], sys.argv[2]
fs = s3fs.S3FileSystem(skip_instance_cache=True)
attempts = {
    "read": lambda: fs.cat_file(theirs + "/a.txt"),
    "write": lambda: fs.pipe_file(theirs + "/intruder.txt", b"x"),
    "overwrite": lambda: fs.pipe_file(theirs + "/a.txt", b"overwritten"),
    "delete": lambda: fs.rm(theirs + "/b.txt"),
    "copy-from": lambda: fs.copy(theirs + "/a.txt", mine + "/stolen.txt"),
    "list": lambda: fs.ls(theirs, refresh=True),
    "list-root": lambda: fs.ls(theirs.split("/")[0], refresh=True),
}
outcome = {}
for name, attempt in attempts.items():
    try:
        attempt()
        outcome[name] = "no error"
    except Exception as e:
        outcome[name] = f"{type(e).__name__}: {e}"
print(json.dumps(outcome))
"""

OWN = r"""
import json, sys
import s3fs
mine = sys.argv[1]
fs = s3fs.S3FileSystem(skip_instance_cache=True)
fs.pipe_file(mine + "/a.txt", b"mine")
print(json.dumps({"read": fs.cat_file(mine + "/a.txt").decode(), "listed": fs.ls(mine, refresh=True)}))
fs.rm(mine + "/a.txt")
"""


def make_user(stack, name):
    """An API-made user (a `smoke_` name: see hub_config.refresh_api_created_user) and a token of theirs."""
    headers = {"Authorization": f"token {stack.api_token}"}
    requests.post(f"{stack.hub_url}/hub/api/users/{name}", headers=headers, timeout=10)
    response = requests.post(f"{stack.hub_url}/hub/api/users/{name}/tokens", headers=headers, timeout=10,
                             json={"scopes": [SCOPE], "note": "tests/local/test_storage_private.py"})
    assert response.status_code == 201, response.text
    return response.json()


def pod_env(stack, name, credential):
    facts = stack.facts
    env = {"PATH": "/usr/bin:/bin", "HOME": "/nonexistent", "PANGEO_SCRATCH": hub_config.scratch_url(facts, name),
           "AWS_ENDPOINT_URL": facts["scratch"]["endpoint_url"], "FSSPEC_S3_ENDPOINT_URL": facts["scratch"]["endpoint_url"]}
    env.update(hub_config.scratch_access_environment(facts, name, credential))
    return env


def run(env, code, *args, timeout=120):
    return subprocess.run([USER_PYTHON, "-c", code, *map(str, args)], env=env, capture_output=True, text=True,
                          timeout=timeout)


def store(stack):
    """The admin's view of the store: {key: content} under a prefix."""
    code = r"""
import json, sys, botocore.session
s3 = botocore.session.get_session().create_client("s3", endpoint_url=sys.argv[1], region_name="us-east-1",
    aws_access_key_id=sys.argv[2], aws_secret_access_key=sys.argv[3])
bucket, prefix = sys.argv[4], sys.argv[5]
if sys.argv[6] == "put":
    for key, body in json.loads(sys.argv[7]).items():
        s3.put_object(Bucket=bucket, Key=key, Body=body.encode())
keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])]
print(json.dumps({k: s3.get_object(Bucket=bucket, Key=k)["Body"].read().decode() for k in keys}))
"""
    bucket = scratch.bucket_and_prefix(stack.facts["scratch"]["bucket"] + "/x")[0]

    def state(prefix, put=None):
        result = run({"PATH": "/usr/bin:/bin", "HOME": "/nonexistent"}, code, stack.s3_url, scratch.ADMIN_ACCESS_KEY,
                     stack._secrets["scratch_admin"], bucket, prefix, "put" if put else "get", json.dumps(put or {}))
        assert result.returncode == 0, result.stderr[-2000:]
        return json.loads(result.stdout)

    return bucket, state


@pytest.fixture(scope="module")
def scratch_users(local_stack):
    if not USER_PYTHON.is_file():
        pytest.skip(f"needs the notebook environment {USER_PYTHON}: `make setup` builds it")
    suffix = uuid.uuid4().hex[:6]
    return {role: (f"smoke_{role}{suffix}", make_user(local_stack, f"smoke_{role}{suffix}"))
            for role in ("a", "ab", "owner", "intruder")}


def test_a_user_writes_reads_and_lists_their_prefix_with_no_arguments(local_stack, scratch_users):
    name, token = scratch_users["owner"]
    result = run(pod_env(local_stack, name, token["token"]), OWN, hub_config.scratch_url(local_stack.facts, name))
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout)
    assert out["read"] == "mine" and out["listed"] == [f"pangeo-scratch/{name}/a.txt"]


def test_another_users_prefix_is_refused_and_their_objects_stay_unchanged(local_stack, scratch_users):
    owner, _ = scratch_users["owner"]
    intruder, token = scratch_users["intruder"]
    bucket, state = store(local_stack)
    before = state(f"{owner}/", put={f"{owner}/a.txt": "original a", f"{owner}/b.txt": "original b"})
    result = run(pod_env(local_stack, intruder, token["token"]), ATTEMPTS, f"{bucket}/{owner}", f"{bucket}/{intruder}")
    assert result.returncode == 0, result.stderr[-3000:]
    outcome = json.loads(result.stdout)
    for action in ("read", "write", "overwrite", "copy-from", "list", "list-root"):
        assert outcome[action].startswith("PermissionError"), f"{intruder} {action}: {outcome[action]}"
    for action in ("write", "overwrite", "list", "list-root"):  # what the guide shows
        assert outcome[action] == guide.error("scratch-other-prefix").text.strip(), (action, outcome[action])
    # s3fs's rm reports nothing either way: the store decides.
    assert state(f"{owner}/") == before == {f"{owner}/a.txt": "original a", f"{owner}/b.txt": "original b"}
    assert state(f"{intruder}/") == {}


def test_a_name_that_is_a_prefix_of_another_gets_neither_way(local_stack, scratch_users):
    (short, short_token), (long, long_token) = scratch_users["a"], scratch_users["ab"]
    bucket, state = store(local_stack)
    state(f"{long}/", put={f"{long}/a.txt": "long's", f"{long}/b.txt": "long's b"})
    state(f"{short}/", put={f"{short}/a.txt": "short's", f"{short}/b.txt": "short's b"})
    for me, token, other in ((short, short_token, long), (long, long_token, short)):
        outcome = json.loads(run(pod_env(local_stack, me, token["token"]), ATTEMPTS, f"{bucket}/{other}",
                                 f"{bucket}/{me}").stdout)
        assert all(v.startswith("PermissionError") for k, v in outcome.items() if k != "delete"), (me, outcome)
    assert state(f"{long}/") == {f"{long}/a.txt": "long's", f"{long}/b.txt": "long's b"}
    assert state(f"{short}/") == {f"{short}/a.txt": "short's", f"{short}/b.txt": "short's b"}


def test_a_users_server_sees_none_of_the_stacks_state(local_stack, member_server):
    """`~/../..` is the stack's data directory: its secrets, database, logs and raw store are hidden, and no
    process outside the server's own is visible (their environments hold the stack's keys)."""
    data = local_stack.data_dir
    seen = member_server.run_json(f"""
import json, os, pathlib
data = pathlib.Path(os.path.expanduser("~")).parent.parent
assert data == pathlib.Path({str(data)!r}), data
seen = {{"secrets": (data / "secrets.json").read_text(),
         "private": sorted(str(p) for d in ("run", "hub", "gateway", "scratch", "logs") for p in (data / d).rglob("*")),
         "environments": []}}
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        environ = open(f"/proc/{{pid}}/environ", "rb").read()
    except OSError:
        continue
    if b"JUPYTERHUB_CRYPT_KEY" in environ or b"PANGEO_SCRATCH_SIGNING_KEY" in environ:
        seen["environments"].append(pid)
print(json.dumps(seen))
""")
    assert seen == {"secrets": "", "private": [], "environments": []}
    assert (data / "secrets.json").read_text() and list((data / "run").iterdir())  # they are there, outside


# ---- refusals a researcher sees -----------------------------------------------------------------------------

FETCH = r"""
import sys, s3fs
fs = s3fs.S3FileSystem(skip_instance_cache=True)
try:
    fs.pipe_file(sys.argv[1] + "/x.txt", b"x")
    print("WROTE")
except Exception as e:
    print(f"{type(e).__name__}: {e}")
"""


def refusal(local_stack, name, credential, url=None):
    env = pod_env(local_stack, name, credential)
    env["AWS_METADATA_SERVICE_NUM_ATTEMPTS"] = "1"  # botocore would ask thrice: the same refusal, slower
    if url:
        env["AWS_CONTAINER_CREDENTIALS_FULL_URI"] = url
    result = run(env, FETCH, hub_config.scratch_url(local_stack.facts, name))
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout.strip()


def test_no_token(local_stack, scratch_users):
    name, _ = scratch_users["owner"]
    out = refusal(local_stack, name, "")
    assert "Scratch credentials refused: no credential was sent" in out and "WROTE" not in out


def test_a_wrong_or_revoked_token(local_stack, scratch_users):
    name, _ = scratch_users["owner"]
    assert refusal(local_stack, name, "wrong") == guide.error("scratch-credentials-refused").text.strip()
    token = make_user(local_stack, name)
    assert refusal(local_stack, name, token["token"]) == "WROTE"
    requests.delete(f"{local_stack.hub_url}/hub/api/users/{name}/tokens/{token['id']}", timeout=10,
                    headers={"Authorization": f"token {local_stack.api_token}"}).raise_for_status()
    assert "Scratch credentials refused: the hub does not know this token" in refusal(local_stack, name, token["token"])


def test_a_token_asking_for_another_users_credentials(local_stack, scratch_users):
    owner, _ = scratch_users["owner"]
    intruder, token = scratch_users["intruder"]
    url = hub_config.scratch_access_environment(local_stack.facts, owner, "")["AWS_CONTAINER_CREDENTIALS_FULL_URI"]
    out = refusal(local_stack, intruder, token["token"], url=url)
    assert f"belongs to '{intruder}'; it cannot get '{owner}'" in out


def test_a_dask_credential_signed_elsewhere(local_stack, scratch_users):
    name, _ = scratch_users["owner"]
    forged = gateway_config.scratch_worker_credential(name, "not the hub's key", hours=1)
    assert "Scratch credentials refused: The Dask credential is not valid here" in refusal(local_stack, name, forged)


def test_an_unsafe_user_name(local_stack):
    name = "smoke_a*b"
    token = make_user(local_stack, name)
    out = refusal(local_stack, name, token["token"])
    assert "cannot be written safely into a storage access policy" in out


def test_the_service_down_is_an_error_not_anonymous_access(local_stack, scratch_users):
    name, token = scratch_users["owner"]
    closed = f"http://127.0.0.1:{_closed_port()}/services/scratch-credentials/aws/{name}"
    out = refusal(local_stack, name, token["token"], url=closed)
    assert "WROTE" not in out and ("Connection refused" in out or "Could not connect" in out
                                   or "Error retrieving metadata" in out), out


def _closed_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---- refresh ------------------------------------------------------------------------------------------------

REFRESH = r"""
import json, sys, time
import s3fs
fs = s3fs.S3FileSystem(skip_instance_cache=True)
mine, seconds = sys.argv[1], float(sys.argv[2])
done, t0 = 0, time.monotonic()
while time.monotonic() - t0 < seconds:
    fs.pipe_file(f"{mine}/r{done}.txt", b"x")
    done += 1
    time.sleep(1)
print(json.dumps({"writes": done}))
"""


@pytest.fixture
def short_lived_service(local_stack):
    """A second scratch-credentials process beside the stack's (same hub, same store, same role), whose
    credentials are said to last 9 s and are handed out while 3 s are left."""
    runtime = json.loads((local_stack.data_dir / "run" / "runtime.json").read_text())
    runtime["facts"] = deep_merge(runtime["facts"], {"scratch": {"credentials": {
        "lifetime_minutes": 0.15, "min_remaining_minutes": 0.05}}})
    port = _closed_port()
    service = hub_layer.scratch_service(runtime, {**runtime["ports"], "scratch_credentials": port}, runtime["paths"])
    log = local_stack.data_dir / "logs" / f"short-lived-{port}.log"
    env = {**service["environment"], "PATH": "/usr/bin:/bin",
           "JUPYTERHUB_API_URL": f"http://127.0.0.1:{runtime['ports']['hub_api']}/hub/api"}
    with open(log, "w") as out:
        process = subprocess.Popen(service["command"], env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/services/scratch-credentials/"
    try:
        deadline = time.monotonic() + 30
        while not _answers(url + "health"):
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()[-2000:]
            time.sleep(0.2)
        yield url, log
    finally:
        process.terminate()
        process.wait(10)


def _answers(url):
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.ConnectionError:
        return False


def test_a_session_outliving_several_lifetimes_keeps_working_and_asks_again(local_stack, short_lived_service, scratch_users):
    url, log = short_lived_service
    name, token = scratch_users["owner"]
    env = pod_env(local_stack, name, token["token"])
    env["AWS_CONTAINER_CREDENTIALS_FULL_URI"] = f"{url}aws/{name}"
    result = run(env, REFRESH, hub_config.scratch_url(local_stack.facts, name), 25, timeout=180)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout)["writes"] >= 8
    minted = log.read_text().count(f"minted scratch credentials for {name} ")
    # 25 s of writes with credentials said to last 9 s (re-minted once 6 s old): several mints, not one.
    assert minted >= 3, f"{minted} mints"
