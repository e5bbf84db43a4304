"""The merged Helm values of every cluster: valid for both charts, with each fact where the charts read it."""

import ast
import hashlib
import json
import re
import sys
import time
import types

import pytest
import yaml

from deployer import facts, values

CLUSTERS = facts.cluster_names()
# Names the dask-gateway chart defines in the dask_gateway_config.py it writes, into which gateway.extraConfig
# is inlined: gateway_config.py must not rebind them.
GATEWAY_CHART_NAMES = {"_PROPERTIES", "get_property", "image_name", "image_tag", "field", "prop_name", "value",
                       "auth_type", "password", "keytab", "api_url", "auth_cls", "auth_cls_name", "auth_config"}


@pytest.fixture(scope="module")
def merged(all_facts):
    return {name: values.merged_values(cluster) for name, cluster in all_facts.items()}


@pytest.mark.parametrize("name", CLUSTERS)
def test_merged_values_pass_both_charts_schemas(merged, name):
    assert values.validate_values(merged[name], facts.cluster_file(name)) is merged[name]


def test_validation_merges_over_the_chart_defaults(tmp_path):
    """As helm does: an override alone lacks the schemas' required keys, merged over the defaults it passes."""
    override = {"jupyterhub": {"hub": {"resources": {"requests": {"cpu": 1}}}},
                "dask-gateway": {"gateway": {"prefix": "/services/dask-gateway"}}}
    for subchart in values.SUBCHARTS:
        defaults, schema = values.subchart_files(subchart)
        assert not set(schema["required"]) <= set(override[subchart])
        assert set(schema["required"]) <= set(values.deep_merge(defaults, override[subchart]))
    empty = tmp_path / "values.yaml"
    empty.write_text("{}")
    assert values.validate_values(override, facts.cluster_file("kind"), empty) is override


def test_deep_merge_is_helms():
    base = {"a": {"b": 1, "c": [1, 2]}, "d": 1, "e": {"f": 1}}
    assert values.deep_merge(base, {"a": {"c": [3]}, "d": None, "e": 2}) == {"a": {"b": 1, "c": [3]}, "e": 2}
    assert base == {"a": {"b": 1, "c": [1, 2]}, "d": 1, "e": {"f": 1}}


@pytest.mark.parametrize("name", CLUSTERS)
def test_facts_land_where_the_charts_read_them(merged, all_facts, name):
    cluster, hub_values = all_facts[name], merged[name]["jupyterhub"]
    gateway = merged[name]["dask-gateway"]["gateway"]
    assert hub_values["custom"]["pangeo"] == cluster
    hub_file = hub_values["hub"]["extraFiles"]["pangeo-hub-config"]
    assert hub_file["stringData"] == values.HUB_CONFIG.read_text()
    assert hub_file["mountPath"] == f"{values.HUB_CONFIG_DIR}/hub_config.py"
    assert gateway["extraConfig"]["00-gateway-config"] == values.GATEWAY_CONFIG.read_text()
    env = {item["name"]: item["value"] for item in gateway["env"]}
    assert json.loads(env["PANGEO_FACTS"]) == cluster

    resources = hub_values["hub"]["resources"]
    hub_resources = cluster["hub"]["resources"]
    assert resources["requests"]["cpu"] == hub_resources["cpu"]["guarantee"]
    assert resources["limits"]["memory"] == f"{hub_resources['memory_gib']['limit']}Gi"

    image = hub_values["singleuser"]["image"]
    assert image["name"] == cluster["notebook"]["image"]["name"]
    assert image["tag"] == yaml.safe_load(values.COMMON_VALUES.read_text())["jupyterhub"]["singleuser"]["image"]["tag"]
    assert gateway["backend"]["image"] == {"name": image["name"], "tag": image["tag"]}

    account = merged[name]["scratchServiceAccount"]
    assert account["name"] == cluster["scratch"]["service_account"]
    identity = cluster["scratch"].get("identity", {})
    expected = {"gcp": {"iam.gke.io/gcp-service-account": identity.get("gcp_service_account")},
                "aws": {"eks.amazonaws.com/role-arn": identity.get("aws_role_arn")}}.get(cluster["cloud"], {})
    assert account["annotations"] == expected


@pytest.mark.parametrize("name", CLUSTERS)
def test_https_and_proxy_service_follow_the_cloud(merged, all_facts, name):
    cluster, proxy = all_facts[name], merged[name]["jupyterhub"]["proxy"]
    env = merged[name]["jupyterhub"]["singleuser"]["extraEnv"]
    if cluster["cloud"] in ("gcp", "aws"):
        assert proxy["https"] == {"enabled": True, "type": "letsencrypt", "hosts": [cluster["hub"]["host"]],
                                  "letsencrypt": {"contactEmail": cluster["hub"]["https_contact_email"]}}
        assert proxy["service"]["type"] == "LoadBalancer"
        # behind autohttps, proxy-public redirects plain HTTP: notebooks use the proxy's own service
        assert env["DASK_GATEWAY__ADDRESS"] == "http://proxy-http:8000/services/dask-gateway"
    else:
        assert proxy["https"] == {"enabled": False}
        assert proxy["service"]["type"] in ("NodePort", "ClusterIP")
        assert env["DASK_GATEWAY__ADDRESS"] == "http://proxy-public/services/dask-gateway"
    if cluster["cloud"] == "kind":
        assert proxy["service"]["nodePorts"]["http"] == values.KIND_HTTP_NODE_PORT


@pytest.mark.parametrize("name", CLUSTERS)
def test_chart_defaults_that_protect_users_stay_on(merged, all_facts, name):
    hub_values = merged[name]["jupyterhub"]
    singleuser = hub_values["singleuser"]
    for section in (singleuser, hub_values.get("hub", {}), hub_values.get("proxy", {}).get("chp", {})):
        assert section.get("networkPolicy", {}).get("enabled", True) is True
        assert section.get("networkPolicy", {}).get("egressAllowRules", {}).get("cloudMetadataServer") in (None, False)
    if all_facts[name]["cloud"] == "gcp":
        # Workload Identity needs the GKE metadata server; the policy opens only its two ports
        assert singleuser["cloudMetadata"] == {"blockWithIptables": False}
        assert values.GKE_METADATA_EGRESS in singleuser["networkPolicy"]["egress"]
    else:
        assert "cloudMetadata" not in singleuser
    assert hub_values["scheduling"]["userScheduler"]["enabled"] is True
    assert hub_values["prePuller"]["continuous"]["enabled"] is True
    assert singleuser["defaultUrl"] == "/lab"


@pytest.mark.parametrize("name", CLUSTERS)
def test_gateway_wiring_follows_the_namespace(merged, all_facts, name):
    ns = values.namespace(all_facts[name])
    release = values.release_name(all_facts[name])
    traefik = f"traefik-{release}-dask-gateway.{ns}"
    hub_values, gateway_values = merged[name]["jupyterhub"], merged[name]["dask-gateway"]
    assert hub_values["hub"]["services"]["dask-gateway"]["url"] == f"http://{traefik}"
    assert hub_values["singleuser"]["extraEnv"]["DASK_GATEWAY__PROXY_ADDRESS"] == f"gateway://{traefik}:80"
    assert gateway_values["gateway"]["prefix"] == "/services/dask-gateway"
    assert gateway_values["gateway"]["auth"]["type"] == "jupyterhub"
    assert gateway_values["gateway"]["auth"]["jupyterhub"]["apiTokenFromSecretKey"] == "hub.services.dask-gateway.apiToken"
    assert gateway_values["traefik"]["service"]["type"] == "ClusterIP"


def test_a_second_namespace_gets_its_own_release_and_addresses(all_facts):
    staging = dict(all_facts["kind"], kubernetes={"context": None, "namespace": "staging"})
    merged = values.merged_values(staging)
    assert values.release_name(staging) == "pangeo-staging"
    assert values.release_name(all_facts["kind"]) == values.RELEASE
    assert merged["jupyterhub"]["hub"]["services"]["dask-gateway"]["url"] == \
        "http://traefik-pangeo-staging-dask-gateway.staging"


def test_hub_snippet_calls_configure_with_the_facts(merged, monkeypatch):
    hub_values = merged["kind"]["jupyterhub"]
    snippet = hub_values["hub"]["extraConfig"]["zz-pangeo"]
    assert f'sys.path.insert(0, "{values.HUB_CONFIG_DIR}")' in snippet
    calls = []
    monkeypatch.setitem(sys.modules, "hub_config",
                        types.SimpleNamespace(configure=lambda c, f: calls.append((c, f))))
    monkeypatch.setattr(sys, "path", list(sys.path))

    def get_config(key):
        # z2jh's get_config reads dotted keys of the chart's values
        node = hub_values
        for part in key.split("."):
            node = node[part]
        return node

    c = object()
    exec(compile(snippet, "zz-pangeo", "exec"), {"c": c, "get_config": get_config})
    assert calls == [(c, hub_values["custom"]["pangeo"])]


def test_gateway_snippets_define_then_call_configure(merged, monkeypatch):
    gateway = merged["kind"]["dask-gateway"]["gateway"]
    extra = gateway["extraConfig"]
    # the chart inlines the snippets sorted by key: the module first, then the call
    assert sorted(extra) == ["00-gateway-config", "zz-pangeo"]
    for item in gateway["env"]:
        monkeypatch.setenv(item["name"], item["value"])
    calls = []
    c = object()
    namespace = {"c": c, "configure": lambda config, f: calls.append((config, f))}
    exec(compile(extra["zz-pangeo"], "zz-pangeo", "exec"), namespace)
    assert calls == [(c, merged["kind"]["jupyterhub"]["custom"]["pangeo"])]


@pytest.mark.parametrize("module, entry", [(values.HUB_CONFIG, "configure"), (values.GATEWAY_CONFIG, "configure")])
def test_config_modules_have_the_entry_point_the_snippets_call(module, entry):
    tree = ast.parse(module.read_text())
    functions = {node.name: node for node in tree.body if isinstance(node, ast.FunctionDef)}
    assert entry in functions, f"{module.name} defines no top-level {entry}(c, facts)"
    assert [arg.arg for arg in functions[entry].args.args][:2] == ["c", "facts"]


def test_gateway_config_does_not_rebind_the_charts_names():
    bound = set()
    for node in ast.parse(values.GATEWAY_CONFIG.read_text()).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            bound |= {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            bound |= {(alias.asname or alias.name).split(".")[0] for alias in node.names}
    assert not bound & GATEWAY_CHART_NAMES


def test_make_values_prints_readable_yaml(merged):
    text = values.dump_yaml(merged["aws-uswest2"])
    assert yaml.safe_load(text) == merged["aws-uswest2"]
    # config snippets as YAML blocks, not one quoted line full of \n
    assert re.search(r"zz-pangeo: \|-?\n +import", text)
    assert "\\n" not in text.split("PANGEO_FACTS")[0]


def test_upstream_schema_copies_match_their_readme():
    readme = (values.UPSTREAM_SCHEMAS / "README.md").read_text()
    listed = dict(re.findall(r"^\| `([^`]+)` \|.*\| `([0-9a-f]{64})` \|$", readme, re.MULTILINE))
    files = {p.name for p in values.UPSTREAM_SCHEMAS.iterdir() if p.name != "README.md"}
    assert set(listed) == files == {f"{stem}.{kind}" for stem in values.SUBCHARTS.values()
                                    for kind in ("values.schema.json", "values.yaml")}
    for name, digest in listed.items():
        assert hashlib.sha256((values.UPSTREAM_SCHEMAS / name).read_bytes()).hexdigest() == digest, name


def test_validate_and_render_all_clusters_timed(capsys):
    """`make validate`'s work, timed (printed, not asserted: the machine is shared)."""
    start = time.perf_counter()
    for name in CLUSTERS:
        values.validate_values(values.merged_values(facts.load(name)), facts.cluster_file(name))
    elapsed = time.perf_counter() - start
    with capsys.disabled():
        print(f"\nvalidate + render {len(CLUSTERS)} clusters: {elapsed:.2f} s")
