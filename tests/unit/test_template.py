"""The umbrella chart rendered by helm v4, and the manifests checked with kubernetes-validate.

Our own templates render offline (a copy of the chart without its two dependencies); the whole release
needs the two charts, fetched by `helm dependency build` from the chart repositories.
"""

import hashlib
import json
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


@pytest.fixture
def own_chart(tmp_path):
    """The umbrella chart without its two dependencies: what our own templates render to, offline."""
    copy = tmp_path / "pangeo-cloud"
    copy.mkdir()
    for name in ("templates", "values.yaml", "values.schema.json"):
        source = values.CHART / name
        (shutil.copytree if source.is_dir() else shutil.copy)(source, copy / name)
    metadata = yaml.safe_load((values.CHART / "Chart.yaml").read_text())
    del metadata["dependencies"]
    (copy / "Chart.yaml").write_text(yaml.safe_dump(metadata))
    return copy


@pytest.mark.parametrize("name", CLUSTERS)
def test_own_templates_render_valid_manifests(helm_available, own_chart, all_facts, name):
    cluster = all_facts[name]
    docs = manifests(chart.template(cluster, values.merged_values(cluster), chart_dir=own_chart))
    for doc in docs:
        validate(doc)
    account = find(docs, "ServiceAccount", cluster["scratch"]["service_account"])
    assert account["metadata"].get("annotations", {}) == values.scratch_identity_annotations(cluster)
    assert account["automountServiceAccountToken"] is False
    assert [d["kind"] for d in docs] == ["ServiceAccount"]


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
    if chart.fetched():
        assert result.returncode == 0, result.stderr
        find(manifests(result.stdout), "ServiceAccount", "pangeo-scratch")
    else:
        assert result.returncode == 2
        assert "error: cannot reach https://" in result.stderr
