"""What only a real Kubernetes cluster shows, read with the kubernetes client: the member's pod has its
profile's resources, its home is a Bound PVC of the configured size mounted at /home/jovyan, PANGEO_SCRATCH
is in its environment, and a Dask Gateway cluster runs as scheduler and worker pods that compute."""

import time

import pytest
from kubernetes.utils import parse_quantity

import hub_config
from deployer.facts import REPO, read_yaml

pytestmark = pytest.mark.kind

GIB = 1024**3
HOME = "/home/jovyan"
USER_SERVICE_ACCOUNT = read_yaml(REPO / "helm" / "pangeo-cloud" / "values.yaml")["userServiceAccount"]["name"]


def user_pod(core_v1, namespace, username):
    pods = core_v1.list_namespaced_pod(namespace, label_selector="component=singleuser-server").items
    mine = [p for p in pods if (p.metadata.annotations or {}).get("hub.jupyter.org/username") == username]
    assert len(mine) == 1, f"expected one server pod of {username}, found {[p.metadata.name for p in mine]}"
    return mine[0]


def notebook_container(pod):
    return next(c for c in pod.spec.containers if c.name == "notebook")


@pytest.fixture(scope="module")
def member_pod(core_v1, kind_deployment, member_server):
    return user_pod(core_v1, kind_deployment["namespace"], member_server.name)


def test_user_pod_has_the_profiles_resources(member_pod, member_server, facts):
    size_name = facts["notebook"]["sizes"][member_server.profile_index]
    size = facts["sizes"][size_name]
    resources = notebook_container(member_pod).resources
    assert parse_quantity(resources.requests["cpu"]) == parse_quantity(str(size["cpu"]["guarantee"]))
    assert parse_quantity(resources.limits["cpu"]) == parse_quantity(str(size["cpu"]["limit"]))
    assert parse_quantity(resources.requests["memory"]) == int(size["memory_gib"]["guarantee"] * GIB)
    assert parse_quantity(resources.limits["memory"]) == int(size["memory_gib"]["limit"] * GIB)
    assert member_pod.status.phase == "Running"


def test_home_is_a_bound_pvc_of_the_configured_size_at_home_jovyan(core_v1, kind_deployment, member_pod, facts):
    mount = next((m for m in notebook_container(member_pod).volume_mounts if m.mount_path == HOME), None)
    assert mount is not None, f"nothing is mounted at {HOME}"
    volume = next(v for v in member_pod.spec.volumes if v.name == mount.name)
    assert volume.persistent_volume_claim, f"{HOME} is not a PersistentVolumeClaim: {volume}"
    claim = core_v1.read_namespaced_persistent_volume_claim(volume.persistent_volume_claim.claim_name,
                                                            kind_deployment["namespace"])
    assert claim.status.phase == "Bound"
    size = facts["notebook"]["home"]["size_gib"]
    assert parse_quantity(claim.spec.resources.requests["storage"]) == size * GIB
    assert parse_quantity(claim.status.capacity["storage"]) >= size * GIB


def test_the_users_pod_holds_no_bucket_identity(member_pod, facts):
    assert member_pod.spec.service_account_name == USER_SERVICE_ACCOUNT != facts["scratch"]["service_account"]
    assert member_pod.spec.automount_service_account_token is False


def test_pangeo_scratch_is_in_the_pods_environment(member_pod, member_server, facts):
    env = {e.name: e.value for e in notebook_container(member_pod).env or []}
    assert env.get("PANGEO_SCRATCH") == hub_config.scratch_url(facts, member_server.name)


def test_a_dask_gateway_cluster_runs_as_pods_and_computes(core_v1, kind_deployment, member_server, facts):
    namespace = kind_deployment["namespace"]
    member_server.run("""
from dask_gateway import Gateway
kind_gateway = Gateway()
kind_cluster = kind_gateway.new_cluster()
kind_cluster.scale(1)
kind_client = kind_cluster.get_client()
kind_client.wait_for_workers(1, timeout=300)
""", timeout=400)
    try:
        result = member_server.run_json("""
import json
print(json.dumps(kind_client.submit(sum, range(100)).result()))
""")
        assert result == 4950
        deadline = time.monotonic() + 60
        while True:
            pods = core_v1.list_namespaced_pod(namespace, label_selector="app.kubernetes.io/name=dask-gateway").items
            roles = {(p.metadata.labels or {}).get("app.kubernetes.io/component") for p in pods
                     if p.status.phase == "Running"}
            if {"dask-scheduler", "dask-worker"} <= roles or time.monotonic() > deadline:
                break
            time.sleep(2)
        assert {"dask-scheduler", "dask-worker"} <= roles, f"running dask-gateway pods: {roles}"
        for pod in pods:
            if (pod.metadata.labels or {}).get("app.kubernetes.io/component") in ("dask-scheduler", "dask-worker"):
                # No bucket identity on Dask pods: they run as the chart's identity-less account.
                assert pod.spec.service_account_name == USER_SERVICE_ACCOUNT != facts["scratch"]["service_account"]
    finally:
        member_server.run("kind_client.close()\nkind_cluster.shutdown()", timeout=120)
