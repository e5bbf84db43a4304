"""Turn a cluster's facts into the Helm values of the umbrella chart, and check them against the charts.

merged_values(facts) = helm/pangeo-cloud/values.yaml (common) deep-merged with what the facts decide.
That dict is exactly what `helm upgrade` gets (`make values CLUSTER=<name>` prints it).
"""

import copy
import json
from pathlib import Path

import jsonschema
import yaml

from .facts import REPO, ConfigError, dotted, read_yaml

CHART = REPO / "helm" / "pangeo-cloud"
COMMON_VALUES = CHART / "values.yaml"
HUB_CONFIG = REPO / "hub_config.py"
GATEWAY_CONFIG = REPO / "gateway_config.py"
HUB_CONFIG_DIR = "/usr/local/etc/jupyterhub/pangeo"
# Offline copies of the upstream charts' schemas and defaults; the charts' own files are preferred
# where `helm dependency build` has fetched them into helm/pangeo-cloud/charts/.
SHARED_SCHEMAS = REPO.parent / "shared" / "schemas"
SUBCHARTS = {"jupyterhub": "z2jh-4.4.0", "dask-gateway": "dask-gateway-2026.3.0"}
RELEASE = "pangeo"
NAMESPACE = "pangeo"

GIB = 1024**3


def deep_merge(base, override):
    """Merge as helm merges values: maps merge, lists and scalars replace, None deletes the key."""
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _k8s_resources(guarantee_limit_cpu, guarantee_limit_mem):
    return {
        "requests": {"cpu": guarantee_limit_cpu["guarantee"], "memory": f"{guarantee_limit_mem['guarantee']}Gi"},
        "limits": {"cpu": guarantee_limit_cpu["limit"], "memory": f"{guarantee_limit_mem['limit']}Gi"},
    }


def scratch_identity_annotations(facts):
    identity = facts["scratch"].get("identity", {})
    annotations = {}
    if "gcp_service_account" in identity:
        annotations["iam.gke.io/gcp-service-account"] = identity["gcp_service_account"]
    if "aws_role_arn" in identity:
        annotations["eks.amazonaws.com/role-arn"] = identity["aws_role_arn"]
    return annotations


def cluster_values(facts):
    """The values that follow from one cluster's facts."""
    hub = facts["hub"]
    https = "https_contact_email" in hub
    jupyterhub = {
        "custom": {"pangeo": facts},
        "hub": {
            "extraFiles": {
                "pangeo-hub-config": {
                    "mountPath": f"{HUB_CONFIG_DIR}/hub_config.py",
                    "stringData": HUB_CONFIG.read_text(),
                },
            },
            "resources": _k8s_resources(hub["resources"]["cpu"], hub["resources"]["memory_gib"]),
        },
        "proxy": {
            "https": {
                "enabled": https,
                "hosts": [hub["host"]] if https else [],
                "letsencrypt": {"contactEmail": hub.get("https_contact_email")},
            },
        },
        "singleuser": {"image": {"name": facts["notebook"]["image"]["name"]}},
    }
    gateway = {
        "gateway": {
            "env": [{"name": "PANGEO_FACTS", "value": json.dumps(facts, sort_keys=True)}],
            "extraConfig": {"00-gateway-config": GATEWAY_CONFIG.read_text()},
        },
    }
    return {
        "scratchServiceAccount": {
            "name": facts["scratch"]["service_account"],
            "annotations": scratch_identity_annotations(facts),
        },
        "jupyterhub": jupyterhub,
        "dask-gateway": gateway,
    }


def merged_values(facts):
    return deep_merge(read_yaml(COMMON_VALUES), cluster_values(facts))


def _subchart_files(subchart):
    """(defaults, schema) of a subchart: the fetched chart's own, else the offline copy."""
    fetched = sorted((CHART / "charts").glob(f"{subchart}-*.tgz")) if (CHART / "charts").is_dir() else []
    if fetched:
        import tarfile

        with tarfile.open(fetched[-1]) as tar:
            defaults = yaml.safe_load(tar.extractfile(f"{subchart}/values.yaml"))
            schema = json.load(tar.extractfile(f"{subchart}/values.schema.json"))
        return defaults, schema
    stem = SUBCHARTS[subchart]
    return read_yaml(SHARED_SCHEMAS / f"{stem}.values.yaml"), json.loads((SHARED_SCHEMAS / f"{stem}.values.schema.json").read_text())


def validate_values(values, source):
    """Check each subchart's part of the values, merged over its defaults as helm does, against its schema."""
    for subchart in SUBCHARTS:
        defaults, schema = _subchart_files(subchart)
        merged = deep_merge(defaults, values.get(subchart, {}))
        errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(merged),
                        key=lambda e: (-len(e.absolute_path), e.message))
        if errors:
            error = errors[0]
            key = dotted([subchart, *error.absolute_path])
            if error.validator == "additionalProperties":
                allowed = sorted(error.schema.get("properties", {}))
                unknown = sorted(set(error.instance) - set(allowed))
                raise ConfigError(source, f"{key}.{unknown[0]}" if unknown else key,
                                  f"unknown key for chart {subchart}; allowed: {', '.join(allowed)}")
            raise ConfigError(source, key, f"chart {subchart} rejects this value: {error.message}")
    return values
