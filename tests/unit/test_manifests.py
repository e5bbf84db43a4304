"""For every cluster and profile: the pod and PVC KubeSpawner 7.0.0 builds from hub_config.py, without a cluster.

The manifests are checked field by field and validated with kubernetes-validate against the API of
Kubernetes 1.28, the oldest the jupyterhub chart 4.4.0 supports.
"""

import asyncio
import re
import types

import kubernetes_asyncio.config.kube_config as kube_config
import kubernetes_validate
import kubernetes_validate.utils
import pytest
from kubernetes_asyncio.client import ApiClient
from kubespawner import KubeSpawner
from traitlets.config import Config

import hub_config
from deployer import facts, values

KUBERNETES = "1.28.0"  # jupyterhub chart 4.4.0: kubeVersion >=1.28.0-0
ODD_USER = "Éva.o'Brien+1"
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
# The client's serializer (camelCase, as sent to the API server) needs no connection; skipping __init__ skips
# building an SSL context per manifest, which is most of the time a manifest takes.
SERIALIZER = ApiClient.__new__(ApiClient)
# (cluster, profile) pairs, read from the cluster files at collection (the tests use the loaded facts)
CASES = [(name, slug) for name in facts.cluster_names()
         for slug in facts.read_yaml(facts.cluster_file(name))["notebook"]["sizes"]]


@pytest.fixture(autouse=True)
def dummy_kubeconfig(tmp_path, monkeypatch):
    """KubeSpawner loads a kube config when built; give it one that points nowhere (nothing is called)."""
    path = tmp_path / "kubeconfig"
    path.write_text("""apiVersion: v1
kind: Config
clusters: [{name: none, cluster: {server: "https://127.0.0.1:9"}}]
users: [{name: none, user: {token: none}}]
contexts: [{name: none, context: {cluster: none, user: none, namespace: pangeo}}]
current-context: none
""")
    monkeypatch.setattr(kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(path))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("JUPYTERHUB_CRYPT_KEY", "0" * 64)


def user(name):
    return types.SimpleNamespace(name=name, id=42, url=f"/user/{name}/", escaped_name=name)


def build(cluster, slug, username=ODD_USER, c=None):
    """(pod, pvc, spawner) for `username` starting the `slug` profile, serialized as the API gets them."""
    c = Config() if c is None else c
    hub_config.configure(c, cluster)

    async def manifests():
        spawner = KubeSpawner(config=c, user=user(username), _mock=True)
        spawner.api_token = "the-servers-token"  # what the hub sets before it starts a server
        spawner.user_options = {} if slug is None else {"profile": slug}
        await spawner.load_user_options()
        pod = await spawner.get_pod_manifest()
        pvc = spawner.get_pvc_manifest()
        return SERIALIZER.sanitize_for_serialization(pod), SERIALIZER.sanitize_for_serialization(pvc), spawner

    return asyncio.run(manifests())


@pytest.fixture(scope="module")
def built(all_facts):
    """Every (cluster, profile) built once; the tests below only read them."""
    cache = {}

    def get(name, slug):
        if (name, slug) not in cache:
            cache[name, slug] = build(all_facts[name], slug)
        return cache[name, slug]

    return get


def container(pod):
    (notebook,) = [c for c in pod["spec"]["containers"] if c["name"] == "notebook"]
    return notebook


@pytest.mark.parametrize("name, slug", CASES)
def test_pod_gets_the_profile_resources_and_node_pool(all_facts, built, name, slug):
    cluster = all_facts[name]
    pod, _, _ = built(name, slug)
    size = cluster["sizes"][slug]
    resources = container(pod)["resources"]
    assert float(resources["requests"]["cpu"]) == size["cpu"]["guarantee"]
    assert float(resources["limits"]["cpu"]) == size["cpu"]["limit"]
    assert int(resources["requests"]["memory"]) == size["memory_gib"]["guarantee"] * 1024**3
    assert int(resources["limits"]["memory"]) == size["memory_gib"]["limit"] * 1024**3
    selector = cluster["node_pools"][cluster["notebook"]["node_pool"]]["node_selector"]
    assert (pod["spec"].get("nodeSelector") or {}) == selector
    env = {e["name"]: e.get("value") for e in container(pod)["env"]}
    assert env["PANGEO_SIZE"] == slug


@pytest.mark.parametrize("name, slug", CASES)
def test_pod_has_no_scratch_identity_but_home_and_variables(all_facts, built, name, slug):
    cluster = all_facts[name]
    pod, pvc, spawner = built(name, slug)
    spec = pod["spec"]
    # The bucket's identity belongs to the scratch-credentials service only.
    assert spec.get("serviceAccountName") != cluster["scratch"]["service_account"]
    assert spec["securityContext"]["fsGroup"] == 100
    assert container(pod)["securityContext"]["runAsUser"] == 1000

    (home,) = [v for v in spec["volumes"] if v["name"] == "home"]
    assert home["persistentVolumeClaim"]["claimName"] == pvc["metadata"]["name"]
    assert {"name": "home", "mountPath": "/home/jovyan"} in container(pod)["volumeMounts"]

    env = {e["name"]: e.get("value") for e in container(pod)["env"]}
    bucket = cluster["scratch"]["bucket"]
    assert env["PANGEO_SCRATCH"] == env["SCRATCH_BUCKET"] == f"{bucket}/%C3%89va.o%27Brien%2B1"
    assert env["PANGEO_CLUSTER"] == name
    assert env.get("AWS_ENDPOINT_URL") == cluster["scratch"].get("endpoint_url")
    assert env["JUPYTERHUB_USER"] == ODD_USER
    access = hub_config.scratch_access_environment(cluster, ODD_USER, spawner.api_token)
    assert {k: env[k] for k in access} == access
    assert not {"AWS_ACCESS_KEY_ID", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE", "GOOGLE_APPLICATION_CREDENTIALS"} & set(env)
    assert DNS_LABEL.match(pod["metadata"]["name"]) and DNS_LABEL.match(pvc["metadata"]["name"])


@pytest.mark.parametrize("name", facts.cluster_names())
def test_home_is_a_10gib_claim_of_the_cluster_storage_class(all_facts, built, name):
    cluster = all_facts[name]
    _, pvc, _ = built(name, cluster["notebook"]["sizes"][0])
    home = cluster["notebook"]["home"]
    assert home["size_gib"] == 10
    assert pvc["spec"]["resources"]["requests"]["storage"] == "10Gi"
    assert pvc["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert pvc["spec"].get("storageClassName") == home["storage_class"]


@pytest.mark.parametrize("name", facts.cluster_names())
def test_the_chart_notebook_environment_reaches_the_pod(all_facts, name):
    """z2jh's config sets KubeSpawner.environment from singleuser.extraEnv and the image before ours runs;
    KubeSpawner then formats every value, so a literal brace must be doubled in the values."""
    singleuser = values.merged_values(all_facts[name])["jupyterhub"]["singleuser"]
    c = Config()
    c.KubeSpawner.environment = dict(singleuser["extraEnv"])
    c.KubeSpawner.image = f"{singleuser['image']['name']}:{singleuser['image']['tag']}"
    pod, _, _ = build(all_facts[name], None, username="alice", c=c)
    env = {e["name"]: e.get("value") for e in container(pod)["env"]}
    for key, value in singleuser["extraEnv"].items():
        assert env[key] == value.replace("{{", "{").replace("}}", "}")
    assert env["DASK_GATEWAY__CLUSTER__OPTIONS__IMAGE"].format(**env) == env["JUPYTER_IMAGE_SPEC"] == c.KubeSpawner.image
    assert env["PANGEO_SCRATCH"] == hub_config.scratch_url(all_facts[name], "alice")


def test_no_profile_chosen_means_the_smallest(all_facts):
    cluster = all_facts["gcp-us-central1b"]
    pod, _, _ = build(cluster, None, username="alice")
    smallest = cluster["sizes"][cluster["notebook"]["sizes"][0]]
    assert int(container(pod)["resources"]["limits"]["memory"]) == smallest["memory_gib"]["limit"] * 1024**3
    env = {e["name"]: e.get("value") for e in container(pod)["env"]}
    assert env["PANGEO_SIZE"] == cluster["notebook"]["sizes"][0]


def test_an_unknown_profile_is_refused(all_facts):
    with pytest.raises(ValueError, match="huge-plus"):
        build(all_facts["kind"], "huge-plus")


def test_the_options_form_lists_the_profiles_in_order(all_facts):
    cluster = all_facts["aws-uswest2"]
    _, _, spawner = build(cluster, cluster["notebook"]["sizes"][0])
    assert [p["slug"] for p in spawner.profile_list] == cluster["notebook"]["sizes"]
    form = spawner._render_options_form(spawner.profile_list)
    positions = [form.index(p["display_name"]) for p in hub_config.profiles(cluster)]
    assert positions == sorted(positions)


@pytest.mark.parametrize("name, slug", CASES)
def test_manifests_are_valid_for_the_oldest_supported_kubernetes(built, name, slug):
    pod, pvc, _ = built(name, slug)
    for manifest in (pod, pvc):
        kubernetes_validate.validate(manifest, KUBERNETES, strict=True)


def test_the_validator_rejects_a_broken_pod(built):
    pod, _, _ = built("kind", "tiny")
    broken = {**pod, "spec": {**pod["spec"], "containers": [{**container(pod), "resources": {"limits": {"memory": []}}}]}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES, strict=True)
    assert KUBERNETES in kubernetes_validate.utils.all_versions()
