"""The scratch-credentials service (scratch_credentials.py): its policies, its callers, its cache, its refusals,
served over HTTP in-process against fakes of the hub API and of AWS STS (tests/unit/scratch_harness.py)."""

import concurrent.futures
import copy
import json
import time

import pytest
import requests

import gateway_config
import hub_config
import scratch_credentials as sc
from deployer import facts as facts_module
from tests.unit.scratch_harness import Harness, aws_env, json_of

UNSAFE_NAMES = ["a*b", "a'b", "a\"b", "a\\b", "a/b", "a?b", "a$b", "a b", "Alice", "éva", "-x", ".x", "a..b",
                "x" * 64, "", "a%2Fb", "a,b"]


def aws_facts(**credentials):
    facts = copy.deepcopy(facts_module.load("aws-uswest2"))
    facts["scratch"]["credentials"].update(credentials)
    return facts


@pytest.fixture
def aws(tmp_path):
    harnesses = []

    def start(**credentials):
        facts = aws_facts(**credentials)
        harness = Harness(facts, lambda h: {"aws": sc.AwsMinter(facts, sc.Settings(facts), env=aws_env(h, tmp_path))})
        harnesses.append(harness.start())
        harness.add_user("alice", "alices-token")
        harness.add_user("al", "als-token")
        harness.add_user("bob", "bobs-token")
        return harness

    yield start
    for harness in harnesses:
        harness.stop()


def get_aws(harness, user, token):
    return requests.get(harness.url(f"aws/{user}"), headers={"Authorization": token} if token else {}, timeout=10)


# ---- what is granted ----------------------------------------------------------------------------------------

def test_aws_session_policy_reaches_only_the_users_prefix():
    assert sc.aws_session_policy("pangeo-scratch", "alice") == {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow",
         "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload",
                    "s3:ListMultipartUploadParts"],
         "Resource": ["arn:aws:s3:::pangeo-scratch/alice/*", "arn:aws:s3:::pangeo-scratch/alice"]},
        {"Effect": "Allow", "Action": ["s3:ListBucket"], "Resource": ["arn:aws:s3:::pangeo-scratch"],
         "Condition": {"StringLike": {"s3:prefix": ["alice", "alice/*"]}}},
    ]}
    # STS's limit on a session policy, for the longest name allowed.
    assert len(json.dumps(sc.aws_session_policy("pangeo-scratch-uswest2", "x" * 63), separators=(",", ":"))) < 2048


def test_gcp_boundary_keeps_the_slash_so_al_is_not_alice():
    condition = sc.gcp_boundary_condition("pangeo-scratch", "al")
    assert condition == (
        "resource.name.startsWith('projects/_/buckets/pangeo-scratch/objects/al/') || "
        "resource.name == 'projects/_/buckets/pangeo-scratch/objects/al' || "
        "api.getAttribute('storage.googleapis.com/objectListPrefix', '').startsWith('al/') || "
        "api.getAttribute('storage.googleapis.com/objectListPrefix', '') == 'al'")
    boundary = sc.gcp_boundary("pangeo-scratch", "al").to_json()
    (rule,) = boundary["accessBoundary"]["accessBoundaryRules"]
    assert rule["availablePermissions"] == ["inRole:roles/storage.objectAdmin"]
    assert rule["availableResource"] == "//storage.googleapis.com/projects/_/buckets/pangeo-scratch"
    assert rule["availabilityCondition"]["expression"] == condition


@pytest.mark.parametrize("name", UNSAFE_NAMES)
def test_names_that_cannot_be_written_safely_are_refused_not_escaped(name):
    with pytest.raises(sc.Refused, match="cannot be written safely"):
        sc.aws_session_policy("b", name)
    with pytest.raises(sc.Refused, match="cannot be written safely"):
        sc.gcp_boundary_condition("b", name)


@pytest.mark.parametrize("name", ["alice", "al", "smoke_1a2b", "a.b-c_d", "0day", "x" * 63])
def test_the_prefix_is_the_hubs_and_the_gateways(all_facts, name):
    for facts in all_facts.values():
        prefix = hub_config.scratch_url(facts, name)
        assert prefix == gateway_config.scratch_url(facts, name)
        # What the service grants is exactly that prefix: the object resource of the session policy (AWS)
        # and the object name of the access boundary (GCP) are the bucket and the name, unescaped.
        bucket, path = prefix.split("://", 1)[1].split("/", 1)
        assert (bucket, path) == (sc.bucket_name(facts), sc.check_name(name))
        policy_objects = sc.aws_session_policy(bucket, name)["Statement"][0]["Resource"]
        assert f"arn:aws:s3:::{bucket}/{path}/*" in policy_objects
        assert f"projects/_/buckets/{bucket}/objects/{path}/" in sc.gcp_boundary_condition(bucket, name)


def test_pods_reach_the_service_the_same_way_from_notebooks_and_dask(all_facts):
    for facts in all_facts.values():
        assert hub_config.scratch_access_environment(facts, "alice", "T") == \
            gateway_config.scratch_access_environment(facts, "alice", "T")
    aws = hub_config.scratch_access_environment(all_facts["aws-uswest2"], "alice", "T")
    assert aws == {"AWS_CONTAINER_CREDENTIALS_FULL_URI":
                   "https://aws-uswest2.pangeo.io/services/scratch-credentials/aws/alice",
                   "AWS_CONTAINER_AUTHORIZATION_TOKEN": "T"}
    gcp = hub_config.scratch_access_environment(all_facts["gcp-us-central1b"], "alice", "T")
    namespace = all_facts["gcp-us-central1b"]["kubernetes"]["namespace"]
    address = f"scratch-credentials.{namespace}.svc.cluster.local:8080/services/scratch-credentials/gcp/alice/T"
    assert gcp == {"GCE_METADATA_HOST": address, "GCE_METADATA_IP": address}


# ---- the Dask credential ------------------------------------------------------------------------------------

def test_a_credential_the_gateway_signs_names_the_user_and_nothing_else():
    credential = gateway_config.scratch_worker_credential("alice", "key", hours=1)
    assert sc.worker_credential_user("key", credential) == "alice"
    with pytest.raises(sc.Refused, match="not signed by this hub"):
        sc.worker_credential_user("another key", credential)
    with pytest.raises(sc.Refused, match="not signed by this hub"):
        sc.worker_credential_user("key", credential.replace(".alice.", ".bob."))
    with pytest.raises(sc.Refused, match="expired"):
        sc.worker_credential_user("key", gateway_config.scratch_worker_credential("alice", "key", 1, now=time.time()
                                                                                  - 7200))
    with pytest.raises(sc.Refused, match="malformed"):
        sc.worker_credential_user("key", "pangeo-scratch-v1.garbage")


def test_the_gateway_gives_workers_a_credential_from_the_signing_key(monkeypatch, all_facts):
    facts = all_facts["aws-uswest2"]
    monkeypatch.setenv("PANGEO_SCRATCH_SIGNING_KEY", "the-key")
    env = gateway_config.cluster_environment(facts, "alice")
    assert sc.worker_credential_user("the-key", env["AWS_CONTAINER_AUTHORIZATION_TOKEN"]) == "alice"
    hours = facts["scratch"]["credentials"]["worker_credential_hours"]
    expires = int(env["AWS_CONTAINER_AUTHORIZATION_TOKEN"].split(".")[-2])
    assert abs(expires - (time.time() + hours * 3600)) < 60
    monkeypatch.delenv("PANGEO_SCRATCH_SIGNING_KEY")
    assert gateway_config.cluster_environment(facts, "alice")["AWS_CONTAINER_AUTHORIZATION_TOKEN"] == ""


# ---- the AWS endpoint ---------------------------------------------------------------------------------------

def test_a_notebook_gets_credentials_for_its_own_prefix_in_botocores_shape(aws):
    harness = aws()
    response = get_aws(harness, "alice", "alices-token")
    assert response.status_code == 200, response.text
    body = json_of(response)
    assert set(body) == {"AccessKeyId", "SecretAccessKey", "Token", "Expiration"}
    (call,) = harness.fakes.aws_sts
    assert call["Action"] == "AssumeRoleWithWebIdentity"
    assert call["WebIdentityToken"] == "the-service-accounts-projected-token"
    assert call["RoleArn"] == "arn:aws:iam::123456789012:role/scratch"
    assert json.loads(call["Policy"]) == sc.aws_session_policy("pangeo-scratch-uswest2", "alice")
    assert call["DurationSeconds"] == "3600"
    left = sc._parse_time(body["Expiration"]) - time.time()
    assert 55 * 60 < left <= 3600


def test_a_dask_worker_gets_credentials_with_the_gateways_credential(aws):
    harness = aws()
    credential = gateway_config.scratch_worker_credential("bob", harness.signing_key, hours=1)
    response = get_aws(harness, "bob", credential)
    assert response.status_code == 200, response.text
    assert json.loads(harness.fakes.aws_sts[0]["Policy"]) == sc.aws_session_policy("pangeo-scratch-uswest2", "bob")


def test_cached_per_user_and_never_handed_out_with_less_than_min_remaining(aws):
    harness = aws()
    first = json_of(get_aws(harness, "alice", "alices-token"))
    assert json_of(get_aws(harness, "alice", "alices-token")) == first
    assert harness.minted("aws", "alice") == 1
    json_of(get_aws(harness, "al", "als-token"))
    assert harness.minted("aws", "al") == 1 and len(harness.fakes.aws_sts) == 2
    harness.clock.offset = 39 * 60  # 21 minutes left: still handed out
    assert json_of(get_aws(harness, "alice", "alices-token")) == first
    harness.clock.offset = 41 * 60  # 19 minutes left: a new one
    renewed = json_of(get_aws(harness, "alice", "alices-token"))
    assert renewed != first and harness.minted("aws", "alice") == 2
    assert sc._parse_time(renewed["Expiration"]) - harness.clock() >= 20 * 60


def test_fifty_users_at_once_each_mint_once(aws):
    harness = aws()
    names = [f"user{i}" for i in range(50)]
    for name in names:
        harness.add_user(name, f"{name}-token")
    with concurrent.futures.ThreadPoolExecutor(50) as pool:
        responses = list(pool.map(lambda n: get_aws(harness, n, f"{n}-token"), names * 2))
    assert [r.status_code for r in responses] == [200] * 100
    assert all(harness.minted("aws", n) == 1 for n in names)


def test_a_short_lifetime_is_told_to_the_caller_while_sts_gets_its_minimum(aws):
    harness = aws(lifetime_minutes=0.2, min_remaining_minutes=0.1)
    body = json_of(get_aws(harness, "alice", "alices-token"))
    assert harness.fakes.aws_sts[0]["DurationSeconds"] == "900"
    assert sc._parse_time(body["Expiration"]) - time.time() <= 13


@pytest.mark.parametrize("token, status, words", [
    (None, 401, "no credential was sent"),
    ("not-a-token", 403, "does not know this token"),
    ("bobs-token", 403, "belongs to 'bob'; it cannot get 'alice'"),
    ("no-scope-token", 403, "lacks access:services!service=scratch-credentials"),
    ("pangeo-scratch-v1.alice.9999999999.deadbeef", 401, "not signed by this hub"),
])
def test_bad_callers_are_refused_with_a_reason_and_nothing_is_minted(aws, token, status, words):
    harness = aws()
    harness.add_user("alice", "no-scope-token", scopes=["self"])
    response = get_aws(harness, "alice", token)
    assert response.status_code == status
    assert words in json_of(response)["message"]
    assert json_of(response)["message"].startswith("Scratch credentials refused: ")
    assert harness.fakes.aws_sts == []


def test_a_revoked_token_stops_working_at_once(aws):
    harness = aws()
    assert get_aws(harness, "alice", "alices-token").status_code == 200
    del harness.fakes.tokens["alices-token"]
    assert get_aws(harness, "alice", "alices-token").status_code == 403


def test_an_unsafe_user_name_is_refused(aws):
    harness = aws()
    harness.add_user("a*b", "star-token")
    response = get_aws(harness, "a%2Ab", "star-token")
    assert response.status_code == 403 and "cannot be written safely" in json_of(response)["message"]
    assert harness.fakes.aws_sts == []


def test_sts_failure_is_a_clear_error(aws):
    harness = aws()
    harness.fakes.sts_down = True
    response = get_aws(harness, "alice", "alices-token")
    assert response.status_code == 502 and "refused to issue" in json_of(response)["message"]


def test_health_answers_without_authentication(aws):
    harness = aws()
    assert requests.get(harness.url("health"), timeout=5).json() == {"status": "ok"}


def test_settings_refuse_a_floor_above_the_lifetime():
    with pytest.raises(ValueError, match="min_remaining_minutes must be below lifetime_minutes"):
        sc.Settings(aws_facts(lifetime_minutes=20, min_remaining_minutes=20))


def test_the_service_imports_only_what_the_hub_image_ships():
    import ast
    from pathlib import Path
    repo = Path(__file__).resolve().parents[2]
    image = (repo / "requirements" / "hub-image.txt").read_text().lower()
    tree = ast.parse((repo / "scratch_credentials.py").read_text())
    modules = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    modules |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    import sys
    third_party = modules - set(sys.stdlib_module_names)
    distributions = {"google": "google-auth", "tornado": "tornado", "jupyterhub": "jupyterhub"}
    assert third_party <= set(distributions), third_party
    for module in third_party:
        assert f"\n{distributions[module]}==" in image, module


def test_a_cluster_without_a_scratch_identity_runs_the_service_and_tells_callers_why(monkeypatch):
    # kind has no bucket identity, yet the chart (and the deploy's rollout wait) runs the service there too.
    for variable in ("AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE"):
        monkeypatch.delenv(variable, raising=False)
    harness = Harness(facts_module.load("kind"), lambda h: None).start()
    try:
        harness.add_user("alice", "alices-token")
        response = get_aws(harness, "alice", "alices-token")
        assert response.status_code == 503
        assert json_of(response)["message"] == (
            "Scratch credentials refused: cluster kind has no scratch bucket identity (its cluster file sets no "
            "scratch.identity), so no one gets scratch credentials here.")
        assert requests.get(harness.url("health"), timeout=5).json() == {"status": "ok"}
    finally:
        harness.stop()


def test_a_cloud_cluster_whose_service_lacks_its_identity_does_not_start(monkeypatch):
    for variable in ("AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE"):
        monkeypatch.delenv(variable, raising=False)
    with pytest.raises(ValueError, match="AWS_WEB_IDENTITY_TOKEN_FILE"):
        sc.make_app(aws_facts(), "k" * 32, hub_auth=None)
