"""Every bad input an operator can write gets a ConfigError that names the file and the key.

Each row alters a copy of a real cluster file or of the sizes table (never the real files), then loads it.
"""

import hashlib
import subprocess
import sys

import pytest
import yaml

from deployer import facts, values


def _parent(data, dotted_key):
    *parents, last = dotted_key.split(".")
    for part in parents:
        data = data[part]
    return data, last


def set_key(dotted_key, value):
    def mutate(data):
        parent, last = _parent(data, dotted_key)
        parent[last] = value
    return mutate


def del_key(dotted_key):
    def mutate(data):
        parent, last = _parent(data, dotted_key)
        del parent[last]
    return mutate


def rename_key(dotted_key, new_name):
    def mutate(data):
        parent, last = _parent(data, dotted_key)
        parent[new_name] = parent.pop(last)
    return mutate


# (id, file altered: a cluster name or "sizes", mutation, file named, key named, words in the message)
CASES = [
    ("typo at top level", "aws-uswest2", rename_key("stage", "stgae"),
     "aws-uswest2.yaml", "stgae", ["unknown key", "did you mean 'stage'"]),
    ("typo nested", "gcp-us-central1b", rename_key("hub.https_contact_email", "https_contact_emial"),
     "gcp-us-central1b.yaml", "hub.https_contact_emial", ["unknown key", "did you mean 'https_contact_email'"]),
    ("typo in a node pool", "kind", set_key("node_pools.kind.machine_typ", "x"),
     "kind.yaml", "node_pools.kind.machine_typ", ["did you mean 'machine_type'"]),
    ("typo in the sizes table", "sizes", rename_key("small.memory_gib", "memory_gb"),
     "sizes.yaml", "small.memory_gb", ["did you mean 'memory_gib'"]),
    ("guarantee above limit", "sizes", set_key("small.cpu.guarantee", 3),
     "sizes.yaml", "small.cpu.guarantee", ["above the limit 2"]),
    ("size does not fit its node", "kind", set_key("node_pools.kind.allocatable.memory_gib", 4),
     "kind.yaml", "notebook.sizes[1]", ["'small'", "memory_gib 7", "4 allocatable"]),
    ("team not org:team", "aws-uswest2", set_key("github.allowed_teams", ["pangeo-data"]),
     "aws-uswest2.yaml", "github.allowed_teams[0]", ["'pangeo-data'", "org:team"]),
    ("teams of two organizations", "kind", set_key("github.admin_teams", ["other-org:admins"]),
     "kind.yaml", "github", ["one GitHub organization"]),
    ("missing scratch bucket", "kind", del_key("scratch.bucket"),
     "kind.yaml", "scratch.bucket", ["required"]),
    ("bad hostname", "gcp-us-central1b", set_key("hub.host", "https://hub.example.org/"),
     "gcp-us-central1b.yaml", "hub.host", ["hostname"]),
    ("bad e-mail", "aws-uswest2", set_key("hub.https_contact_email", "ops at pangeo.io"),
     "aws-uswest2.yaml", "hub.https_contact_email", ["e-mail address"]),
    ("gateway maximum below default", "kind", set_key("dask_gateway.idle_timeout_minutes.maximum", 3),
     "kind.yaml", "dask_gateway.idle_timeout_minutes.maximum", ["below the default 5"]),
    ("sizes not smallest first", "gcp-us-central1b", set_key("notebook.sizes", ["medium", "small"]),
     "gcp-us-central1b.yaml", "notebook.sizes", ["smallest first"]),
    ("unknown node pool", "aws-uswest2", set_key("dask_gateway.node_pool", "gpu"),
     "aws-uswest2.yaml", "dask_gateway.node_pool", ["no node pool 'gpu'", "notebook, dask"]),
    ("unknown size name", "aws-uswest2", set_key("notebook.sizes", ["small", "medum"]),
     "aws-uswest2.yaml", "notebook.sizes[1]", ["unknown size 'medum'", "sizes.yaml"]),
    ("wrong bucket scheme for the cloud", "gcp-us-central1b", set_key("scratch.bucket", "s3://pangeo-scratch"),
     "gcp-us-central1b.yaml", "scratch.bucket", ["gs://"]),
    ("bucket that is not a bucket URL", "kind", set_key("scratch.bucket", "s3://pangeo-scratch/"),
     "kind.yaml", "scratch.bucket", ["no trailing slash"]),
    ("missing cloud identity", "aws-uswest2", del_key("scratch.identity"),
     "aws-uswest2.yaml", "scratch.identity.aws_role_arn", ["cloud identity"]),
    ("missing HTTPS contact on a cloud", "aws-uswest2", del_key("hub.https_contact_email"),
     "aws-uswest2.yaml", "hub.https_contact_email", ["HTTPS"]),
    ("worker limit below one worker", "kind", set_key("dask_gateway.limits_per_user.cores", 0.5),
     "kind.yaml", "dask_gateway.limits_per_user.cores", ["below one default worker's 1"]),
    ("unknown cloud", "kind", set_key("cloud", "azure"),
     "kind.yaml", "cloud", ["'azure'", "gcp, aws, kind, local"]),
]


def _digest(directory):
    return hashlib.sha256(b"".join(p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file())).hexdigest()


@pytest.mark.parametrize("target, mutate, file, key, words",
                         [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_bad_input_names_file_and_key(config_copy, target, mutate, file, key, words):
    altered = config_copy / ("sizes.yaml" if target == "sizes" else f"clusters/{target}.yaml")
    data = yaml.safe_load(altered.read_text())
    mutate(data)
    altered.write_text(yaml.safe_dump(data, sort_keys=False))
    cluster = "kind" if target == "sizes" else target
    before = _digest(config_copy)

    with pytest.raises(facts.ConfigError) as raised:
        facts.load(cluster, clusters_dir=config_copy / "clusters", sizes_path=config_copy / "sizes.yaml")

    error = raised.value
    assert error.path.name == file
    assert error.key == key
    for word in words:
        assert word in error.message
    assert str(error) == f"{error.path}: {key}: {error.message}"
    assert _digest(config_copy) == before


def test_unknown_cluster_name(config_copy):
    with pytest.raises(facts.ConfigError) as raised:
        facts.load("nope", clusters_dir=config_copy / "clusters")
    assert raised.value.path.name == "nope.yaml"
    assert raised.value.key == "CLUSTER"
    assert "unknown cluster 'nope'" in raised.value.message
    assert f"known clusters: {', '.join(facts.cluster_names())}" in raised.value.message


def test_broken_yaml_names_the_file_and_line(config_copy):
    path = config_copy / "clusters" / "kind.yaml"
    path.write_text(path.read_text().replace("hub:\n", "hub: [\n", 1))
    with pytest.raises(facts.ConfigError) as raised:
        facts.load("kind", clusters_dir=config_copy / "clusters")
    assert raised.value.path == path
    assert "not valid YAML" in raised.value.message
    assert "line " in raised.value.message


def test_the_unaltered_copies_load(config_copy, all_facts):
    """The rows above fail because of their one change, not because of the copying."""
    for name, expected in all_facts.items():
        assert facts.load(name, clusters_dir=config_copy / "clusters",
                          sizes_path=config_copy / "sizes.yaml") == expected


# A cluster file cannot reach a chart's keys; the common values can. (altered key, value, key named, words)
VALUES_CASES = [
    ("typo under a strict section", "jupyterhub.hub.extraConfg", {"x": "pass"},
     "jupyterhub.hub.extraConfg", ["unknown key for chart jupyterhub", "did you mean 'extraConfig'"]),
    ("typo in the gateway's section", "dask-gateway.gateway.extraConfg", {"x": "pass"},
     "dask-gateway.gateway.extraConfg", ["unknown key for chart dask-gateway", "did you mean 'extraConfig'"]),
    ("wrong type", "jupyterhub.prePuller.continuous.enabled", "yes",
     "jupyterhub.prePuller.continuous.enabled", ["chart jupyterhub rejects", "'yes'", "boolean"]),
]


@pytest.mark.parametrize("dotted_key, value, key, words",
                         [case[1:] for case in VALUES_CASES], ids=[case[0] for case in VALUES_CASES])
def test_bad_common_values_name_file_and_key(tmp_path, all_facts, dotted_key, value, key, words):
    common = yaml.safe_load(values.COMMON_VALUES.read_text())
    set_key(dotted_key, value)(common)
    common_path = tmp_path / "values.yaml"
    common_path.write_text(yaml.safe_dump(common, sort_keys=False))
    merged = values.merged_values(all_facts["kind"], common_path)

    with pytest.raises(facts.ConfigError) as raised:
        values.validate_values(merged, facts.cluster_file("kind"), common_path)

    assert raised.value.path == common_path
    assert raised.value.key == key
    for word in words:
        assert word in raised.value.message


def test_cli_reports_bad_input_with_exit_code_2():
    result = subprocess.run([sys.executable, "-m", "deployer", "validate", "nope"],
                            capture_output=True, text=True, cwd=facts.REPO, timeout=60)
    assert result.returncode == 2
    assert "config/clusters/nope.yaml: CLUSTER: unknown cluster 'nope'" in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
