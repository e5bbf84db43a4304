"""gateway_config.py loaded into a real traitlets config and exercised through the real dask-gateway-server
2026.3.0 classes: the backend turns a user's request into a ClusterConfig exactly as the gateway does on
`gateway.new_cluster(...)` (Backend.process_cluster_options), and the Kubernetes controller builds the pods.
"""

import ast
import asyncio
import json
import re
import subprocess
import sys
import urllib.parse
from collections import defaultdict

import kubernetes_validate
import pytest
from dask_gateway_server.backends.base import PublicException
from dask_gateway_server.backends.kubernetes.controller import KubeController
from dask_gateway_server.models import Cluster, ClusterStatus, User
from dask_gateway_server.utils import FrozenAttrDict
from traitlets.config import Config

import gateway_config
from deployer import facts as facts_module
from deployer import values

REPO = facts_module.REPO
CLUSTERS = facts_module.cluster_names()
GIB = 2**30
CHART_TAG = "0123abcd"


def chart_image(facts):
    """What deployer.values gives the chart as the Dask image: the notebook image of the cluster."""
    return f"{facts['notebook']['image']['name']}:{CHART_TAG}"
# A user name that needs escaping in a URL path (space, slash, non-ASCII, @).
ODD_USER = "Jöhn Doe/@x"
# The server image's frozen requirements (requirements/gateway-image.txt: upstream's list, less the server itself).
SERVER_REQUIREMENTS = REPO / "requirements" / "gateway-image.txt"
USER_PYTHON = REPO / ".venv" / "user" / "bin" / "python"
KUBERNETES_VERSION = "1.28.0"
# Names the dask-gateway chart 2026.3.0 defines at the top level of the dask_gateway_config.py into which it
# inlines gateway.extraConfig (templates/gateway/configmap.yaml).
CHART_NAMES = {"os", "json", "sys", "c", "_PROPERTIES", "get_property", "image_name", "image_tag", "field",
               "prop_name", "value", "auth_type", "password", "keytab", "api_url", "auth_cls", "auth_cls_name",
               "auth_config", "get_config", "load_subconfig", "__file__"}


def load(name):
    return facts_module.load(name)


def is_kube(facts):
    return facts["cloud"] != gateway_config.PROCESS_CLOUD


def configured(facts, user_environment=None):
    """A config as the gateway has it: what the chart sets before extraConfig (on Kubernetes), then ours."""
    c = Config()
    if is_kube(facts):
        c.DaskGateway.backend_class = "dask_gateway_server.backends.kubernetes.KubeBackend"
        c.KubeBackend.gateway_instance = "pangeo-dask-gateway"
        c.KubeClusterConfig.image = chart_image(facts)
    gateway_config.configure(c, facts, user_environment=user_environment)
    return c


def backend_for(facts, **kwargs):
    c = configured(facts, **kwargs)
    return c.DaskGateway.backend_class(config=c)


def new_cluster_config(backend, request, username="alice"):
    """What the gateway does with `gateway.new_cluster(**request)` before creating anything."""
    options, config = asyncio.run(backend.process_cluster_options(User(username), request))
    return options, config


def refusal(backend, request):
    with pytest.raises(PublicException) as info:
        new_cluster_config(backend, request)
    return str(info.value)


def sizes(facts, key="worker_sizes"):
    return [facts["sizes"][n] for n in facts["dask_gateway"][key]]


@pytest.mark.parametrize("name", CLUSTERS)
def test_options_come_from_the_sizes_table(name):
    facts = load(name)
    backend = backend_for(facts)
    spec = {f["field"]: f for f in asyncio.run(backend.get_cluster_options(User("alice"))).get_specification()}
    assert list(spec) == ["worker_cores", "worker_memory", "image", "idle_timeout_minutes", "environment"]
    first, largest = sizes(facts)[0], sizes(facts)[-1]
    assert spec["worker_cores"]["default"] == first["cpu"]["limit"]
    assert spec["worker_memory"]["default"] == first["memory_gib"]["limit"]
    assert spec["idle_timeout_minutes"]["default"] == facts["dask_gateway"]["idle_timeout_minutes"]["default"]
    assert spec["image"]["default"] == (chart_image(facts) if is_kube(facts) else "")
    assert f"up to {largest['memory_gib']['limit']:g}" in spec["worker_memory"]["label"]
    assert f"up to {largest['cpu']['limit']:g}" in spec["worker_cores"]["label"]
    # The largest size is admitted, a hair more is not.
    new_cluster_config(backend, {"worker_memory": largest["memory_gib"]["limit"] / 2})
    assert "at most" in refusal(backend, {"worker_memory": largest["memory_gib"]["limit"] + 0.5})
    assert "at most" in refusal(backend, {"worker_cores": largest["cpu"]["limit"] + 0.5})


def test_the_client_refuses_a_value_past_the_maximum_before_any_request():
    """The published spec carries the maximum, so the notebook's dask_gateway client refuses it on assignment
    (repeated refusals by the server hang the 2026.3.0 client's event loop)."""
    if not USER_PYTHON.is_file():
        pytest.skip(f"needs the notebook environment {USER_PYTHON} (make setup)")
    facts = load("gcp-us-central1b")
    spec = asyncio.run(backend_for(facts).get_cluster_options(User("alice"))).get_specification()
    largest = sizes(facts)[-1]["memory_gib"]["limit"]
    script = (
        "import json, sys\nfrom dask_gateway.options import Options\n"
        "options = Options._from_spec(json.loads(sys.stdin.read()))\n"
        f"options.worker_memory = {largest}\n"
        "try:\n    options.worker_memory = 1000\nexcept ValueError as e:\n    print(e)\n"
    )
    result = subprocess.run([str(USER_PYTHON), "-c", script], input=json.dumps(spec), capture_output=True,
                            text=True, check=True, timeout=60)
    assert result.stdout.strip() == f"worker_memory must be <= {largest:f}, got 1000.0"


@pytest.mark.parametrize("name", CLUSTERS)
def test_default_cluster_maps_to_the_first_worker_size(name):
    facts = load(name)
    first = sizes(facts)[0]
    backend = backend_for(facts)
    _, config = new_cluster_config(backend, {})
    assert config.worker_memory == int(first["memory_gib"]["limit"] * GIB)
    # Also without the options handler (a cluster config straight from the gateway's config).
    plain = backend.cluster_config_class(parent=backend)
    assert plain.idle_timeout == facts["dask_gateway"]["idle_timeout_minutes"]["default"] * 60
    assert plain.scheduler_cmd == ["dask", "scheduler"] and plain.worker_cmd == ["dask", "worker"]
    assert config.idle_timeout == facts["dask_gateway"]["idle_timeout_minutes"]["default"] * 60
    assert config.scheduler_cmd == ["dask", "scheduler"] and config.worker_cmd == ["dask", "worker"]
    if is_kube(facts):
        ratio = first["cpu"]["guarantee"] / first["cpu"]["limit"]
        assert config.worker_cores == pytest.approx(first["cpu"]["limit"] * ratio)
        assert config.worker_cores_limit == first["cpu"]["limit"]
        assert config.worker_memory_limit == config.worker_memory  # memory request = limit
        assert config.image == chart_image(facts)
    else:
        assert config.worker_cores == max(1, int(first["cpu"]["limit"]))
    assert config.worker_threads == max(1, int(first["cpu"]["limit"]))


@pytest.mark.parametrize("name", CLUSTERS)
def test_researchers_documented_calls_are_admitted_or_refused_clearly(name):
    """`new_cluster()` + `adapt(minimum=2, maximum=10)`, and `options.worker_memory = 10` (issue 7)."""
    facts = load(name)
    backend = backend_for(facts)
    _, default = new_cluster_config(backend, {})
    # adapt/scale past cluster_max_workers are lowered to it by the gateway (a warning), never refused;
    # minimum=2 must still be honoured.
    assert default.cluster_max_workers >= 2
    largest = sizes(facts)[-1]["memory_gib"]["limit"]
    if largest >= 10:
        options, ten = new_cluster_config(backend, {"worker_memory": 10})
        assert options["worker_memory"] == 10.0 and ten.worker_memory == 10 * GIB
        assert ten.cluster_max_workers >= 1
    else:
        message = refusal(backend, {"worker_memory": 10})
        assert message.startswith("worker_memory=10 is not allowed") and f"at most {largest:g} GiB" in message


@pytest.mark.parametrize("name", CLUSTERS)
def test_per_user_limits_cap_every_cluster(name):
    facts = load(name)
    limits = facts["dask_gateway"]["limits_per_user"]
    c = configured(facts)
    assert c.ClusterConfig.cluster_max_cores * limits["clusters"] == pytest.approx(limits["cores"])
    assert c.ClusterConfig.cluster_max_memory * limits["clusters"] == pytest.approx(limits["memory_gib"] * GIB, abs=8)
    _, config = new_cluster_config(c.DaskGateway.backend_class(config=c), {})
    workers = config.cluster_max_workers
    # The cap counts the scheduler plus every worker the cluster may ever have.
    assert config.scheduler_cores + workers * config.worker_cores <= config.cluster_max_cores
    assert config.scheduler_memory + workers * config.worker_memory <= config.cluster_max_memory


@pytest.mark.parametrize("name", CLUSTERS)
def test_scratch_and_endpoint_reach_scheduler_and_workers(name):
    facts = load(name)
    keys = lambda username: {"AWS_ACCESS_KEY_ID": f"key-of-{username}", "PANGEO_SCRATCH": "s3://elsewhere"}
    backend = backend_for(facts, user_environment=keys if not is_kube(facts) else None)
    _, config = new_cluster_config(
        backend, {"environment": {"MY_VAR": "1", "PANGEO_SCRATCH": "s3://not-mine"}}, username=ODD_USER)
    env = config.environment
    assert env["PANGEO_SCRATCH"] == f"{facts['scratch']['bucket']}/J%C3%B6hn%20Doe%2F%40x"
    assert env["PANGEO_SCRATCH"] == gateway_config.scratch_url(facts, ODD_USER)
    assert urllib.parse.unquote(env["PANGEO_SCRATCH"].rsplit("/", 1)[1]) == ODD_USER
    assert env["MY_VAR"] == "1"  # the user's own variables pass through
    endpoint = facts["scratch"].get("endpoint_url")
    if endpoint:
        assert env["AWS_ENDPOINT_URL"] == env["FSSPEC_S3_ENDPOINT_URL"] == endpoint
    else:
        assert "AWS_ENDPOINT_URL" not in env
    if not is_kube(facts):
        assert env["AWS_ACCESS_KEY_ID"] == f"key-of-{ODD_USER}"


def test_environment_configured_elsewhere_is_kept():
    facts = load("kind")
    c = Config()
    c.DaskGateway.backend_class = "dask_gateway_server.backends.kubernetes.KubeBackend"
    c.KubeClusterConfig.environment = {"FROM_CHART": "yes"}
    gateway_config.configure(c, facts)
    _, config = new_cluster_config(c.DaskGateway.backend_class(config=c), {})
    assert config.environment["FROM_CHART"] == "yes" and "PANGEO_SCRATCH" in config.environment


def test_notebook_image_is_used_when_sent():
    facts = load("gcp-us-central1b")
    older = f"{facts['notebook']['image']['name']}:an-older-tag"  # a server started before an upgrade
    _, config = new_cluster_config(backend_for(facts), {"image": older})
    assert config.image == older


@pytest.mark.parametrize("image", ["no-such-image:latest", "us.gcr.io/x/notebook:abc", "pangeo/pangeo-notebook",
                                   "us-central1-docker.pkg.dev/pangeo-181919/pangeo/pangeo-notebook-evil:1"])
def test_another_image_is_refused_at_once_naming_it(image):
    facts = load("gcp-us-central1b")
    assert refusal(backend_for(facts), {"image": image}) == (
        f"image={image!r} is not allowed on this hub: Dask schedulers and workers run the notebook's image, "
        "us-central1-docker.pkg.dev/pangeo-181919/pangeo/pangeo-notebook:<tag>; leave image empty to use your "
        "notebook's own")


@pytest.mark.parametrize("image, repository", [
    ("registry.example:5000/org/name:tag", "registry.example:5000/org/name"),
    ("registry.example:5000/org/name", "registry.example:5000/org/name"),
    ("org/name@sha256:abc", "org/name"), ("name:1:2", "name")])
def test_image_repository(image, repository):
    assert gateway_config.image_repository(image) == repository


REFUSALS = [
    # request, what the message must say
    ({"worker_memory": 1000}, r"^worker_memory=1000 is not allowed on this hub: choose more than 0 and at most \d+ GiB$"),
    ({"worker_memory": 0}, r"^worker_memory=0 is not allowed on this hub: choose more than 0 and at most"),
    ({"worker_cores": -1}, r"^worker_cores=-1 is not allowed on this hub: choose more than 0 and at most \d+ cores"),
    ({"idle_timeout_minutes": 0}, r"^idle_timeout_minutes=0 is not allowed on this hub: .* at most \d+ minutes$"),
    ({"idle_timeout_minutes": -5}, r"^idle_timeout_minutes=-5 is not allowed"),
    ({"idle_timeout_minutes": 100000}, r"^idle_timeout_minutes=100000 is not allowed on this hub: .* at most \d+ minutes"),
    ({"idle_timeout_minutes": float("nan")}, r"^idle_timeout_minutes=nan is not allowed"),
    ({"worker_memroy": 10}, r"^unknown cluster option\(s\) 'worker_memroy'; the options on this hub are "
                            r"worker_cores, worker_memory, image, idle_timeout_minutes, environment$"),
    ({"worker_memory": "10"}, r"^worker_memory must be a float, got '10'$"),
    ({"environment": {"N": 1}}, r"^environment: names and values must be strings; not so for N$"),
]
# Only where clusters are processes (the local stack): no image can be honoured there.
PROCESS_REFUSALS = [
    ({"image": "no-such-image:latest"}, r"^image='no-such-image:latest' cannot be used on this hub: its Dask "
                                        r"schedulers and workers are processes"),
]


@pytest.mark.parametrize("name", ["gcp-us-central1b", "local"])
@pytest.mark.parametrize(("request_", "message"), REFUSALS, ids=[str(r) for r, _ in REFUSALS])
def test_bad_options_are_refused_with_a_clear_message(name, request_, message):
    said = refusal(backend_for(load(name)), request_)
    assert re.search(message, said), said


@pytest.mark.parametrize(("request_", "message"), PROCESS_REFUSALS, ids=[str(r) for r, _ in PROCESS_REFUSALS])
def test_an_image_is_refused_where_clusters_are_processes(request_, message):
    said = refusal(backend_for(load("local")), request_)
    assert re.search(message, said), said


def test_idle_timeout_may_be_shortened_not_raised():
    facts = load("gcp-us-central1b")
    maximum = facts["dask_gateway"]["idle_timeout_minutes"]["maximum"]
    backend = backend_for(facts)
    assert new_cluster_config(backend, {"idle_timeout_minutes": 5})[1].idle_timeout == 300
    assert new_cluster_config(backend, {"idle_timeout_minutes": maximum})[1].idle_timeout == maximum * 60
    assert f"at most {maximum:g} minutes" in refusal(backend, {"idle_timeout_minutes": maximum + 1})


def test_a_worker_too_big_for_the_users_share_is_refused():
    """8 cores shared by 2 clusters: a 4-core worker (the largest local size) leaves no room for the scheduler."""
    facts = load("local")
    limits = facts["dask_gateway"]["limits_per_user"]
    limits["cores"] = 8
    share = limits["cores"] / limits["clusters"]
    message = refusal(backend_for(facts), {"worker_cores": share})
    assert message.startswith(f"worker_cores={share:g} cores does not fit in one cluster: each of your clusters may "
                              f"use {share:g} cores (your limit of {limits['cores']:g} cores shared by up to "
                              f"{limits['clusters']} clusters)")


def test_limits_that_cannot_hold_one_worker_are_an_operator_error():
    facts = load("kind")
    facts["dask_gateway"]["limits_per_user"]["clusters"] = 50
    with pytest.raises(ValueError, match=r"^config/clusters/kind.yaml: dask_gateway.limits_per_user: 4 cores and 8 "
                                         r"GiB shared by 50 clusters leave each cluster"):
        gateway_config.configure(Config(), facts)


class FakeCustomObjects:
    """Stands in for the Kubernetes API: keeps the DaskCluster objects the backend creates."""

    def __init__(self):
        self.created = []

    async def create_namespaced_custom_object(self, group, version, namespace, plural, body):
        self.created.append(body)


def offline_kube_backend(facts):
    """The real (wrapped) KubeBackend with the state its setup() would make, and no Kubernetes API."""
    backend = backend_for(facts)
    backend.custom_client = FakeCustomObjects()
    backend.clusters = {}
    backend.username_to_clusters = defaultdict(dict)
    return backend


def add_cluster(backend, name, username, status):
    cluster = Cluster(name=name, username=username, token="", options={}, config={}, status=status)
    backend.clusters[name] = backend.username_to_clusters[username][name] = cluster


def test_clusters_per_user_are_limited_with_a_clear_message():
    facts = load("kind")
    limit = facts["dask_gateway"]["limits_per_user"]["clusters"]
    backend = offline_kube_backend(facts)
    # Finished clusters and other users' clusters do not count.
    add_cluster(backend, "pangeo.old", "alice", ClusterStatus.STOPPED)
    add_cluster(backend, "pangeo.broken", "alice", ClusterStatus.FAILED)
    for i in range(limit):
        add_cluster(backend, f"pangeo.bob{i}", "bob", ClusterStatus.RUNNING)
    asyncio.run(backend.start_cluster(User("alice"), {}))
    add_cluster(backend, "pangeo.c0", "alice", ClusterStatus.RUNNING)
    asyncio.run(backend.start_cluster(User("alice"), {}))
    add_cluster(backend, "pangeo.c1", "alice", ClusterStatus.PENDING)
    assert len(backend.custom_client.created) == limit == 2
    with pytest.raises(PublicException) as info:
        asyncio.run(backend.start_cluster(User("alice"), {}))
    assert str(info.value) == (
        f"You already have {limit} Dask clusters running or starting (pangeo.c0, pangeo.c1); each user may have at "
        f"most {limit} at once on kind. Close one first: cluster.close(), or gateway.stop_cluster(name) "
        "(gateway.list_clusters() lists yours).")
    assert len(backend.custom_client.created) == limit


def test_clusters_per_user_are_limited_on_the_local_backend_too():
    backend = backend_for(load("local"))
    assert type(backend).__mro__[1].__name__ == "UnsafeLocalBackend"

    async def two_running(username=None, statuses=None):
        return [FrozenAttrDict({"name": "a"}), FrozenAttrDict({"name": "b"})]

    backend.list_clusters = two_running
    with pytest.raises(PublicException, match="at most 2 at once on local"):
        asyncio.run(backend.start_cluster(User("alice"), {}))


def test_configure_twice_wraps_the_backend_once():
    facts = load("kind")
    c = configured(facts)
    gateway_config.configure(c, facts)
    assert [k.__name__ for k in c.DaskGateway.backend_class.__mro__[:2]] == ["PangeoKubeBackend", "KubeBackend"]


@pytest.mark.parametrize("name", [n for n in CLUSTERS if load(n)["cloud"] != "local"])
def test_scheduler_and_worker_pods_land_on_the_dask_pool(name):
    """The DaskCluster the backend writes, turned into pods by the real controller, then validated."""
    facts = load(name)
    first = sizes(facts)[0]
    cores, memory = first["cpu"]["limit"], int(first["memory_gib"]["limit"] * GIB)
    backend = offline_kube_backend(facts)
    asyncio.run(backend.start_cluster(User(ODD_USER), {"worker_memory": memory / GIB, "worker_cores": cores}))
    (crd,) = backend.custom_client.created
    config = FrozenAttrDict(json.loads(json.dumps(crd["spec"]["config"])))
    controller = KubeController(gateway_instance="pangeo-dask-gateway", api_url="http://api-pangeo:8000/api")
    pool = facts["node_pools"][facts["dask_gateway"]["node_pool"]]
    for is_worker, command in ((True, ["dask", "worker"]), (False, ["dask", "scheduler"])):
        pod = controller.make_pod("pangeo", "abc", config, is_worker=is_worker)
        kubernetes_validate.validate(pod, KUBERNETES_VERSION, strict=True)
        spec, container = pod["spec"], pod["spec"]["containers"][0]
        assert container["args"][:2] == command
        assert spec.get("serviceAccountName") != facts["scratch"]["service_account"]
        assert spec.get("nodeSelector", {}) == pool["node_selector"]
        assert [(t["key"], t["value"], t["effect"]) for t in spec.get("tolerations", [])] == [
            (t["key"], t["value"], t["effect"]) for t in pool["taints"]]
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env["PANGEO_SCRATCH"] == gateway_config.scratch_url(facts, ODD_USER)
        access = gateway_config.scratch_access_environment(facts, ODD_USER, "CREDENTIAL")
        assert set(access) <= set(env) and not {"AWS_ROLE_ARN", "AWS_ACCESS_KEY_ID"} & set(env)
        if is_worker:
            assert container["resources"]["limits"] == {"cpu": f"{cores:.3f}", "memory": str(memory)}
            request = f"{first['cpu']['guarantee']:.3f}"
            assert container["resources"]["requests"] == {"cpu": request, "memory": str(memory)}
            assert container["args"][container["args"].index("--memory-limit") + 1] == str(memory)


def test_commands_exist_in_the_notebook_environment():
    """`dask scheduler`/`dask worker` exist in the pinned distributed; the gateway's defaults do not."""
    if not USER_PYTHON.is_file():
        pytest.skip(f"needs the notebook environment {USER_PYTHON}: `make setup` builds it")
    probe = (
        "import importlib.metadata as m, importlib.util as u, json, os, sys\n"
        "bin_dir = os.path.dirname(sys.executable)\n"
        "print(json.dumps({'distributed': m.version('distributed'),"
        " 'dask_cli': sorted(e.name for e in m.entry_points(group='dask_cli')),"
        " 'bin': sorted(os.listdir(bin_dir)),"
        " 'preload': u.find_spec('dask_gateway.scheduler_preload') is not None}))\n"
    )
    found = json.loads(subprocess.run([str(USER_PYTHON), "-c", probe], capture_output=True, text=True,
                                      check=True, timeout=60).stdout)
    pinned = re.search(r"^\s*-\s*distributed=(\S+)", (REPO / "images/pangeo-notebook/environment.yml").read_text(),
                       re.M).group(1)
    assert found["distributed"] == pinned
    for command in (gateway_config.SCHEDULER_CMD, gateway_config.WORKER_CMD):
        assert command[0] in found["bin"] and command[1] in found["dask_cli"]
    assert "dask-scheduler" not in found["bin"] and "dask-worker" not in found["bin"]
    assert found["preload"]  # the gateway starts schedulers with --preload dask_gateway.scheduler_preload


def chart_preamble(values_gateway):
    """What the dask-gateway chart's generated dask_gateway_config.py does before the extraConfig snippets,
    reduced to what matters here: its top-level names and the settings ours build on."""
    props = {"gateway": {k: v for k, v in values_gateway.items() if k != "extraConfig"}}
    return "\n".join([
        "import os, json, sys",
        f"_PROPERTIES = json.loads({json.dumps(json.dumps(props))})",
        "def get_property(key, default=None):",
        "    value = _PROPERTIES",
        "    for part in key.split('.'):",
        "        if not isinstance(value, dict) or part not in value:",
        "            return default",
        "        value = value[part]",
        "    return value",
        "c.DaskGateway.backend_class = 'dask_gateway_server.backends.kubernetes.KubeBackend'",
        "image_name = get_property('gateway.backend.image.name')",
        "image_tag = get_property('gateway.backend.image.tag')",
        "c.KubeClusterConfig.image = '%s:%s' % (image_name, image_tag) if image_tag else image_name",
        "for field, prop_name in [('environment', 'environment'), ('namespace', 'namespace'),",
        "                         ('scheduler_extra_pod_config', 'scheduler.extraPodConfig'),",
        "                         ('worker_extra_pod_config', 'worker.extraPodConfig')]:",
        "    value = get_property('gateway.backend.' + prop_name)",
        "    if value is not None:",
        "        setattr(c.KubeClusterConfig, field, value)",
        "auth_type = get_property('gateway.auth.type')",
        "api_url = 'http://hub:8081/hub/api'",
        "",
    ])


@pytest.mark.parametrize("name", [n for n in CLUSTERS if load(n)["cloud"] != "local"])
def test_works_inlined_into_the_charts_config_file(name, monkeypatch):
    facts = load(name)
    gateway = values.merged_values(facts)["dask-gateway"]["gateway"]
    text = chart_preamble(gateway)
    for key in sorted(gateway["extraConfig"]):
        text += f"\n# From gateway.extraConfig.{key}\n{gateway['extraConfig'][key]}\n"
    for item in gateway["env"]:  # a Secret's value (valueFrom) is what Kubernetes would put there
        monkeypatch.setenv(item["name"], item.get("value", "from-a-secret"))
    namespace = {"c": Config(), "__file__": "/etc/dask-gateway/dask_gateway_config.py"}
    exec(compile(text, "dask_gateway_config.py", "exec"), namespace)
    c = namespace["c"]
    image = f"{gateway['backend']['image']['name']}:{gateway['backend']['image']['tag']}"
    assert namespace["image_name"] == gateway["backend"]["image"]["name"]  # the chart's names are untouched
    assert namespace["get_property"]("gateway.backend.image.tag") == gateway["backend"]["image"]["tag"]
    backend = c.DaskGateway.backend_class(config=c)
    _, config = new_cluster_config(backend, {"worker_memory": 1})
    assert config.image == image and config.worker_memory == GIB
    assert config.environment["PANGEO_SCRATCH"] == gateway_config.scratch_url(facts, "alice")
    chart_pod = gateway["backend"]["worker"]["extraPodConfig"]
    assert config.worker_extra_pod_config == {**chart_pod, **gateway_config.pod_placement(facts)}
    assert chart_pod["automountServiceAccountToken"] is False


def test_module_top_level_is_safe_to_inline():
    tree = ast.parse((REPO / "gateway_config.py").read_text())
    names = []
    for node in tree.body:
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            continue  # the docstring
        if isinstance(node, ast.ImportFrom):
            assert node.module != "__future__", "a __future__ import cannot follow the chart's own code"
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names += [(a.asname or a.name).split(".")[0] for a in node.names]
        elif isinstance(node, ast.FunctionDef):
            names.append(node.name)
        elif isinstance(node, ast.Assign):
            targets = [t.id for t in node.targets]
            assert all(t.isupper() for t in targets), f"top-level variable {targets} is not an UPPER_CASE constant"
            names += targets
        else:
            pytest.fail(f"line {node.lineno}: only imports, functions and constants belong at the top level")
    assert not set(names) & CHART_NAMES


def test_imports_only_what_the_gateway_server_image_has():
    pinned = {re.split(r"[=@ ]", line)[0].strip().lower().replace("-", "_")
              for line in SERVER_REQUIREMENTS.read_text().splitlines() if line and not line.startswith((" ", "#"))}
    assert "traitlets" in pinned
    pinned.add("dask_gateway_server")  # the image's own package
    tree = ast.parse((REPO / "gateway_config.py").read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add(node.module.split(".")[0])
    outside = sorted(m for m in imported if m not in sys.stdlib_module_names and m not in pinned)
    assert not outside, f"gateway_config.py imports {outside}, which the gateway server image does not have"


@pytest.mark.parametrize("name", CLUSTERS)
def test_workers_and_notebooks_get_the_same_scratch_prefix(name):
    """The rule is written in both modules (each runs in its own image and cannot import the other)."""
    import hub_config

    facts = load(name)
    for username in ("alice", ODD_USER, "a%b", "Éva.o'Brien+1", "x/../y"):
        assert gateway_config.scratch_url(facts, username) == hub_config.scratch_url(facts, username), username
