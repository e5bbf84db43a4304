"""The umbrella chart rendered by helm v4, and the manifests checked with kubernetes-validate.

Our own templates render offline (a copy of the chart without its two dependencies); the whole release
needs the two charts, fetched by `helm dependency build` from the chart repositories.
"""

import base64
import hashlib
import json
import re
import shutil
import subprocess
import sys
import tempfile

import kubernetes_validate
import pytest
import yaml

from deployer import chart, facts, values

CLUSTERS = facts.cluster_names()
# the oldest Kubernetes the chart supports (Chart.yaml kubeVersion, the jupyterhub chart's minimum)
KUBERNETES_VERSION = "1.28.0"


def manifests(text):
    return [doc for doc in yaml.safe_load_all(text) if doc]


def find(docs, kind, name):
    matches = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(matches) == 1, f"{kind}/{name}: {len(matches)} found"
    return matches[0]


def validate(doc, strict=True):
    kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=strict)


@pytest.fixture(scope="module")
def helm_available():
    if not chart.HELM.is_file():
        pytest.skip(f"needs helm ({chart.HELM}): `make setup` installs it")


def helm_lock_digest(requirements, locked):
    """helm's HashReq: sha256 over the Go JSON of [Chart.yaml's dependencies, Chart.lock's], fields in Go
    struct order (name, version, repository, then the optional ones, left out when empty)."""
    order = ("name", "version", "repository", "condition", "tags", "enabled", "import-values", "alias")

    def as_go(dep):
        return {key: dep[key] for key in order if dep.get(key) not in (None, "", [], False)}

    data = json.dumps([[as_go(d) for d in requirements], [as_go(d) for d in locked]], separators=(",", ":"))
    return "sha256:" + hashlib.sha256(data.encode()).hexdigest()


def test_chart_lock_matches_chart_yaml():
    requirements = yaml.safe_load((values.CHART / "Chart.yaml").read_text())["dependencies"]
    lock = yaml.safe_load((values.CHART / "Chart.lock").read_text())
    assert [(d["name"], d["repository"], d["version"]) for d in lock["dependencies"]] == \
        [(d["name"], d["repository"], d["version"]) for d in requirements]
    assert lock["digest"] == helm_lock_digest(requirements, lock["dependencies"])
    assert {d["name"]: d["version"] for d in requirements} == {"jupyterhub": "4.4.0", "dask-gateway": "2026.3.0"}


@pytest.mark.parametrize("tampered", [False, True])
def test_helm_accepts_the_lock_digest(helm_available, tmp_path, tampered):
    """helm itself compares Chart.lock's digest with Chart.yaml before it needs any chart repository."""
    copy = tmp_path / "pangeo-cloud"
    copy.mkdir()
    shutil.copy(values.CHART / "Chart.yaml", copy / "Chart.yaml")
    lock = (values.CHART / "Chart.lock").read_text()
    digest = yaml.safe_load(lock)["digest"]
    (copy / "Chart.lock").write_text(lock.replace(digest, "sha256:" + "0" * 64) if tampered else lock)
    env = {**chart.helm_env(), "HELM_REPOSITORY_CONFIG": str(tmp_path / "no-repositories.yaml"),
           "HELM_REPOSITORY_CACHE": str(tmp_path / "cache")}
    result = subprocess.run([str(chart.HELM), "dependency", "build", str(copy)],
                            capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode != 0  # no repository is known here, on purpose: nothing is downloaded
    assert ("out of sync" in result.stderr) == tampered, result.stderr


def own_chart_copy(directory):
    """The umbrella chart without its two dependencies, in `directory`: what our own templates render to, offline."""
    copy = directory / "pangeo-cloud"
    copy.mkdir()
    for name in ("templates", "values.yaml", "values.schema.json"):
        source = values.CHART / name
        (shutil.copytree if source.is_dir() else shutil.copy)(source, copy / name)
    metadata = yaml.safe_load((values.CHART / "Chart.yaml").read_text())
    del metadata["dependencies"]
    (copy / "Chart.yaml").write_text(yaml.safe_dump(metadata))
    return copy


@pytest.fixture
def own_chart(tmp_path):
    return own_chart_copy(tmp_path)


@pytest.mark.parametrize("name", CLUSTERS)
def test_own_templates_render_valid_manifests(rendered, all_facts, name):
    cluster = all_facts[name]
    docs = rendered[name]
    for doc in docs:
        validate(doc)
    account = find(docs, "ServiceAccount", cluster["scratch"]["service_account"])
    assert account["metadata"].get("annotations", {}) == values.scratch_identity_annotations(cluster)
    assert account["automountServiceAccountToken"] is False
    assert sorted((d["kind"], d["metadata"]["name"]) for d in docs) == sorted([
        ("ServiceAccount", cluster["scratch"]["service_account"]), ("ServiceAccount", "pangeo-user"),
        ("Secret", "pangeo-scratch-signing"), ("ConfigMap", "scratch-credentials"),
        ("Service", "scratch-credentials"), ("Deployment", "scratch-credentials"),
        ("NetworkPolicy", "scratch-credentials"), ("NetworkPolicy", "dask-pods-no-node-metadata")])


IDENTITY_ANNOTATIONS = ("iam.gke.io/gcp-service-account", "eks.amazonaws.com/role-arn")


@pytest.fixture(scope="module")
def rendered(helm_available, all_facts, tmp_path_factory):
    """{cluster: our own templates' manifests}, rendered once (helm takes a moment per cluster)."""
    copy = own_chart_copy(tmp_path_factory.mktemp("chart"))
    return {name: manifests(chart.template(cluster, values.merged_values(cluster), chart_dir=copy))
            for name, cluster in all_facts.items()}


@pytest.mark.parametrize("name", CLUSTERS)
def test_only_the_scratch_service_holds_the_bucket_identity(rendered, all_facts, name):
    cluster, docs = all_facts[name], rendered[name]
    merged = values.merged_values(cluster)
    service_account = cluster["scratch"]["service_account"]
    pod = find(docs, "Deployment", "scratch-credentials")["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == service_account
    annotated = {d["metadata"]["name"] for d in docs if d["kind"] == "ServiceAccount"
                 and set(d["metadata"].get("annotations", {})) & set(IDENTITY_ANNOTATIONS)}
    assert annotated == ({service_account} if cluster["cloud"] in ("gcp", "aws") else set())

    user_account = merged["userServiceAccount"]["name"]
    assert user_account != service_account
    user = find(docs, "ServiceAccount", user_account)
    assert "annotations" not in user["metadata"] and user["automountServiceAccountToken"] is False
    jupyterhub, gateway = merged["jupyterhub"], merged["dask-gateway"]["gateway"]
    assert jupyterhub["singleuser"]["serviceAccountName"] == user_account
    assert jupyterhub["hub"]["config"]["KubeSpawner"]["automount_service_account_token"] is False
    for role in ("scheduler", "worker"):
        assert gateway["backend"][role]["extraPodConfig"] == {
            "serviceAccountName": user_account, "automountServiceAccountToken": False}
    # values.yaml names the account once (a YAML anchor); the printed values spell it out everywhere
    assert not re.search(r"[&*]id\d{3}", values.dump_yaml(merged))
    # node metadata is blocked for notebooks on every cloud (they no longer need a node or pod identity)
    assert jupyterhub["singleuser"]["cloudMetadata"]["blockWithIptables"] is True


@pytest.mark.parametrize("name", CLUSTERS)
def test_the_scratch_service_runs_the_repositorys_module_in_the_hub_image(rendered, all_facts, name):
    cluster, docs = all_facts[name], rendered[name]
    merged = values.merged_values(cluster)
    hub_defaults = values.subchart_files("jupyterhub")[0]["hub"]["image"]
    deployment = find(docs, "Deployment", "scratch-credentials")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["image"] == f"{hub_defaults['name']}:{hub_defaults['tag']}" == "quay.io/jupyterhub/k8s-hub:4.4.0"
    assert container["command"] == ["python", "/usr/local/etc/pangeo-scratch/scratch_credentials.py"]
    assert container["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    config_map = find(docs, "ConfigMap", "scratch-credentials")
    assert config_map["data"] == {"scratch_credentials.py": values.SCRATCH_CREDENTIALS.read_text()}
    env = {e["name"]: e for e in container["env"]}
    assert json.loads(env["PANGEO_FACTS"]["value"]) == cluster
    assert env["PANGEO_FACTS"]["value"] == next(e["value"] for e in merged["dask-gateway"]["gateway"]["env"]
                                                if e["name"] == "PANGEO_FACTS")
    assert env["SCRATCH_CREDENTIALS_PORT"]["value"] == "8080"
    assert env["JUPYTERHUB_SERVICE_PREFIX"]["value"] == "/services/scratch-credentials/"
    assert env["JUPYTERHUB_API_URL"]["value"] == "http://hub:8081/hub/api"
    assert env["JUPYTERHUB_API_TOKEN"]["valueFrom"] == {
        "secretKeyRef": {"name": "hub", "key": "hub.services.scratch-credentials.apiToken"}}
    signing = {"secretKeyRef": {"name": "pangeo-scratch-signing", "key": "key"}}
    assert env["PANGEO_SCRATCH_SIGNING_KEY"]["valueFrom"] == signing
    assert {"name": "PANGEO_SCRATCH_SIGNING_KEY", "valueFrom": signing} in merged["dask-gateway"]["gateway"]["env"]
    secret = find(docs, "Secret", "pangeo-scratch-signing")
    assert len(base64.b64decode(secret["data"]["key"])) == 64

    service = find(docs, "Service", "scratch-credentials")
    assert service["spec"]["ports"] == [{"name": "http", "port": 8080, "targetPort": "http", "protocol": "TCP"}]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    assert labels["app.kubernetes.io/component"] == "scratch-credentials"
    assert labels["hub.jupyter.org/network-access-hub"] == "true"
    assert merged["jupyterhub"]["hub"]["services"]["scratch-credentials"] == {
        "url": "http://scratch-credentials:8080", "display": False}


def _selects(selector, labels):
    expressions = selector.get("matchExpressions", [])
    return (selector.get("matchLabels", {}).items() <= labels.items()
            and all(labels.get(e["key"]) in e["values"] for e in expressions))


USER_POD = {"app": "jupyterhub", "component": "singleuser-server"}
WORKER_POD = {"app.kubernetes.io/name": "dask-gateway", "app.kubernetes.io/component": "dask-worker",
              "gateway.dask.org/instance": "x"}
SCHEDULER_POD = {**WORKER_POD, "app.kubernetes.io/component": "dask-scheduler"}
PROXY_POD = {"app": "jupyterhub", "component": "proxy", "release": "pangeo"}
METADATA = ("169.254.169.254/32", "169.254.169.252/32")


@pytest.mark.parametrize("name", CLUSTERS)
def test_network_policies_let_pods_reach_the_service_on_8080_and_nothing_new(rendered, all_facts, name):
    cluster, docs = all_facts[name], rendered[name]
    merged = values.merged_values(cluster)
    service_pod = find(docs, "Deployment", "scratch-credentials")["spec"]["template"]["metadata"]["labels"]
    policy = find(docs, "NetworkPolicy", "scratch-credentials")["spec"]
    assert _selects(policy["podSelector"], service_pod) and policy["policyTypes"] == ["Ingress", "Egress"]
    (ingress,) = policy["ingress"]
    assert ingress["ports"] == [{"port": "http", "protocol": "TCP"}]  # the container's port 8080
    for caller in (USER_POD, WORKER_POD, SCHEDULER_POD, PROXY_POD):
        assert any(_selects(peer["podSelector"], caller) for peer in ingress["from"])
    assert not any(_selects(peer["podSelector"], {"app": "jupyterhub", "component": "user-placeholder"})
                   for peer in ingress["from"])
    # the service's own egress: no private address but the hub; GKE's metadata server only on gcp
    blocks = [to["ipBlock"] for rule in policy["egress"] for to in rule.get("to", []) if "ipBlock" in to]
    metadata_rules = [b for b in blocks if b["cidr"] in METADATA]
    assert bool(metadata_rules) == (cluster["cloud"] == "gcp")
    assert all("10.0.0.0/8" in b["except"] for b in blocks if b["cidr"] == "0.0.0.0/0")

    # notebooks: exactly one rule more than before, to the service's pods on 8080
    egress = merged["jupyterhub"]["singleuser"]["networkPolicy"]["egress"]
    new = [rule for rule in egress if any(_selects(to.get("podSelector", {"matchLabels": {"x": "y"}}), service_pod)
                                          for to in rule["to"])]
    assert new == [{"ports": [{"port": 8080, "protocol": "TCP"}], "to": [{"podSelector": {"matchLabels": {
        "app.kubernetes.io/name": "pangeo-cloud", "app.kubernetes.io/component": "scratch-credentials"}}}]}]
    assert len(egress) == 2 and not any("ipBlock" in to for rule in egress for to in rule["to"])
    assert merged["jupyterhub"]["singleuser"]["networkPolicy"].keys() == {"egress"}

    # Dask pods: anything in the cluster and outside it, except the node metadata addresses
    dask = find(docs, "NetworkPolicy", "dask-pods-no-node-metadata")["spec"]
    assert _selects(dask["podSelector"], WORKER_POD) and _selects(dask["podSelector"], SCHEDULER_POD)
    assert not _selects(dask["podSelector"], {"app.kubernetes.io/name": "dask-gateway",
                                              "app.kubernetes.io/component": "gateway"})
    assert dask["policyTypes"] == ["Egress"]
    (outside,) = [to["ipBlock"] for rule in dask["egress"] for to in rule["to"] if "ipBlock" in to]
    assert outside["cidr"] == "0.0.0.0/0" and set(METADATA) <= set(outside["except"])


def test_a_new_module_restarts_the_service(helm_available, own_chart, all_facts, tmp_path, monkeypatch):
    def annotations():
        docs = manifests(chart.template(all_facts["kind"], values.merged_values(all_facts["kind"]),
                                        chart_dir=own_chart))
        return find(docs, "Deployment", "scratch-credentials")["spec"]["template"]["metadata"]["annotations"]

    before = annotations()
    changed = tmp_path / "scratch_credentials.py"
    changed.write_text(values.SCRATCH_CREDENTIALS.read_text() + "\n# changed\n")
    monkeypatch.setattr(values, "SCRATCH_CREDENTIALS", changed)
    after = annotations()
    assert after["checksum/module"] != before["checksum/module"]
    assert after["checksum/facts"] == before["checksum/facts"]


def test_a_missing_module_is_named(monkeypatch, tmp_path, all_facts):
    monkeypatch.setattr(values, "SCRATCH_CREDENTIALS", tmp_path / "scratch_credentials.py")
    with pytest.raises(facts.ConfigError, match=r"scratch_credentials\.py: \(top level\): missing"):
        values.merged_values(all_facts["kind"])


def test_own_templates_refuse_a_missing_service_account_name(helm_available, own_chart, all_facts):
    merged = values.merged_values(all_facts["kind"])
    merged["scratchServiceAccount"]["name"] = ""
    with pytest.raises(chart.HelmError, match=r"scratch\.service_account"):
        chart.template(all_facts["kind"], merged, chart_dir=own_chart)


@pytest.fixture(scope="module")
def fetched_charts(helm_available):
    try:
        chart.build_dependencies()
    except chart.HelmError as e:
        pytest.skip(f"needs the chart repositories (helm dependency build): {e}")


@pytest.mark.parametrize("name", CLUSTERS)
def test_release_renders_valid_manifests(fetched_charts, all_facts, name):
    cluster = all_facts[name]
    merged = values.merged_values(cluster)
    docs = manifests(chart.template(cluster, merged))
    for doc in docs:
        try:
            validate(doc, strict=False)
        except kubernetes_validate.SchemaNotFoundError:
            # custom resources (traefik's IngressRoute, Middleware) have no schema in kubernetes-validate
            assert "." in doc["apiVersion"].split("/")[0] and ".k8s.io" not in doc["apiVersion"], doc["kind"]

    account = find(docs, "ServiceAccount", cluster["scratch"]["service_account"])
    assert account["metadata"].get("annotations", {}) == values.scratch_identity_annotations(cluster)

    hub = find(docs, "Deployment", "hub")["spec"]["template"]["spec"]
    hub_container = next(c for c in hub["containers"] if c["name"] == "hub")
    assert hub_container["resources"] == merged["jupyterhub"]["hub"]["resources"]

    https = "https_contact_email" in cluster["hub"]
    autohttps = [d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "autohttps"]
    assert bool(autohttps) == https
    if https:
        find(docs, "Service", "proxy-http")

    gateway_config = find(docs, "ConfigMap", f"api-{values.release_name(cluster)}-dask-gateway")
    text = gateway_config["data"]["dask_gateway_config.py"]
    assert 'configure(c, json.loads(os.environ["PANGEO_FACTS"]))' in text
    assert text.index("# From gateway.extraConfig.00-gateway-config") < text.index("# From gateway.extraConfig.zz-pangeo")


def test_template_leaves_no_values_file_behind(helm_available, own_chart, all_facts, tmp_path, monkeypatch):
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    chart.template(all_facts["kind"], values.merged_values(all_facts["kind"]), chart_dir=own_chart)
    with pytest.raises(chart.HelmError):
        chart.template(all_facts["kind"], {"scratchServiceAccount": {"name": ""}}, chart_dir=own_chart)
    assert list(scratch.iterdir()) == []


def test_make_template_end_to_end(helm_available):
    """`make template`: the manifests when the charts can be had, else exit 2 naming the unreachable repository."""
    result = subprocess.run([sys.executable, "-m", "deployer", "template", "kind"],
                            capture_output=True, text=True, cwd=facts.REPO, timeout=300)
    assert "Traceback" not in result.stderr
    if not (facts.REPO / "scratch_credentials.py").is_file():  # until the service's module is written (10A)
        assert result.returncode == 2 and "scratch_credentials.py: (top level): missing" in result.stderr
    elif chart.fetched():
        assert result.returncode == 0, result.stderr
        find(manifests(result.stdout), "ServiceAccount", "pangeo-scratch")
    else:
        assert result.returncode == 2
        assert "error: cannot reach https://" in result.stderr
