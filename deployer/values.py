"""Turn a cluster's facts into the Helm values of the umbrella chart, and check them against the charts.

merged_values(facts) = helm/pangeo-cloud/values.yaml (common) deep-merged with what the facts decide.
That dict is exactly what `helm upgrade` gets (`make values CLUSTER=<name>` prints it).
"""

import copy
import difflib
import json
import tarfile

import jsonschema
import yaml

from .dashboards import gateway_public_address
from .facts import REPO, ConfigError, dotted, read_yaml

CHART = REPO / "helm" / "pangeo-cloud"
COMMON_VALUES = CHART / "values.yaml"
HUB_CONFIG = REPO / "hub_config.py"
# hub_config.py finds its page templates beside itself (hub_config.TEMPLATES): mounted the same way.
HUB_TEMPLATES = REPO / "hub_templates"
GATEWAY_CONFIG = REPO / "gateway_config.py"
# The scratch-credentials service (a hub service the chart runs in the hub's image); its module is read
# when the values are rendered, as hub_config.py is.
SCRATCH_CREDENTIALS = REPO / "scratch_credentials.py"
SCRATCH_SIGNING_SECRET = {"name": "pangeo-scratch-signing", "key": "key"}
HUB_CONFIG_DIR = "/usr/local/etc/jupyterhub/pangeo"
# Offline copies of the upstream charts' schemas and defaults (see its README); the charts' own files are
# preferred where `helm dependency build` has fetched them into helm/pangeo-cloud/charts/.
UPSTREAM_SCHEMAS = REPO / "helm" / "upstream-schemas"
SUBCHARTS = {"jupyterhub": "z2jh-4.4.0", "dask-gateway": "dask-gateway-2026.3.0"}
RELEASE = "pangeo"
NAMESPACE = "pangeo"
# kind maps this node port to the host (the kind cluster's config must agree)
KIND_HTTP_NODE_PORT = 30080
# Where pods on GKE reach the GKE metadata server, which hands out the Workload Identity's tokens and hides
# the node's own credentials: 169.254.169.254:80 with Dataplane V2, 169.254.169.252:988 without. Only the
# scratch-credentials service may (notebooks and Dask pods have no identity there).
GKE_METADATA_EGRESS = {
    "ports": [{"port": 80, "protocol": "TCP"}, {"port": 988, "protocol": "TCP"}],
    "to": [{"ipBlock": {"cidr": "169.254.169.254/32"}}, {"ipBlock": {"cidr": "169.254.169.252/32"}}],
}


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


def namespace(facts):
    return facts.get("kubernetes", {}).get("namespace", NAMESPACE)


def release_name(facts):
    """RELEASE, suffixed outside the default namespace: both charts name cluster-wide resources (ClusterRoles,
    PriorityClasses, the user scheduler) after the release, so two namespaces of one Kubernetes cluster
    (production and staging) need two release names."""
    ns = namespace(facts)
    return RELEASE if ns == NAMESPACE else f"{RELEASE}-{ns}"


def gateway_service(facts):
    """The gateway's traefik Service, as the dask-gateway chart names it (traefik-<release>-dask-gateway)."""
    return f"traefik-{release_name(facts)}-dask-gateway.{namespace(facts)}"


def _k8s_resources(cpu, memory_gib):
    return {
        "requests": {"cpu": cpu["guarantee"], "memory": f"{memory_gib['guarantee']}Gi"},
        "limits": {"cpu": cpu["limit"], "memory": f"{memory_gib['limit']}Gi"},
    }


def scratch_identity_annotations(facts):
    identity = facts["scratch"].get("identity", {})
    annotations = {}
    if "gcp_service_account" in identity:
        annotations["iam.gke.io/gcp-service-account"] = identity["gcp_service_account"]
    if "aws_role_arn" in identity:
        annotations["eks.amazonaws.com/role-arn"] = identity["aws_role_arn"]
    return annotations


def _proxy(facts):
    hub = facts["hub"]
    if facts["cloud"] in ("gcp", "aws"):
        service = {"type": "LoadBalancer"}
    elif facts["cloud"] == "kind":
        service = {"type": "NodePort", "nodePorts": {"http": KIND_HTTP_NODE_PORT}}
    else:
        service = {"type": "ClusterIP"}
    if "https_contact_email" not in hub:
        return {"service": service, "https": {"enabled": False}}
    https = {
        "enabled": True,
        "type": "letsencrypt",
        "hosts": [hub["host"]],
        "letsencrypt": {"contactEmail": hub["https_contact_email"]},
    }
    return {"service": service, "https": https}


def _singleuser(facts):
    https = "https_contact_email" in facts["hub"]
    # With HTTPS, proxy-public is the TLS terminator that redirects plain HTTP; proxy-http is the proxy
    # itself (daskhub does the same).
    gateway_address = ("http://proxy-http:8000/services/dask-gateway" if https
                       else "http://proxy-public/services/dask-gateway")
    singleuser = {
        "image": {"name": facts["notebook"]["image"]["name"]},
        "extraEnv": {
            "DASK_GATEWAY__ADDRESS": gateway_address,
            # KubeSpawner formats extraEnv: doubled braces reach the notebook as {JUPYTERHUB_SERVICE_PREFIX}.
            "DASK_GATEWAY__PUBLIC_ADDRESS": gateway_public_address(gateway_address).replace("{", "{{").replace("}", "}}"),
            "DASK_GATEWAY__PROXY_ADDRESS": f"gateway://{gateway_service(facts)}:80",
        },
    }
    return singleuser


def scratch_credentials_module():
    try:
        return SCRATCH_CREDENTIALS.read_text()
    except FileNotFoundError:
        raise ConfigError(SCRATCH_CREDENTIALS, None, "missing: the scratch-credentials service's module, "
                          "which the chart runs beside the hub") from None


def _scratch_credentials(facts, common, facts_json):
    """The service's pod: the hub's image (the jupyterhub chart's, unless the common values pin another)."""
    image = deep_merge(subchart_files("jupyterhub")[0]["hub"]["image"],
                       common.get("jupyterhub", {}).get("hub", {}).get("image", {}))
    return {
        "image": {"name": image["name"], "tag": str(image["tag"])},
        "module": scratch_credentials_module(),
        "facts": facts_json,
        "extraEgress": [GKE_METADATA_EGRESS] if facts["cloud"] == "gcp" else [],
    }


def cluster_values(facts, common=None):
    """The values that follow from one cluster's facts (`common`: the common values, to extend lists)."""
    common = read_yaml(COMMON_VALUES) if common is None else common
    hub = facts["hub"]
    image_tag = common["jupyterhub"]["singleuser"]["image"]["tag"]
    jupyterhub = {
        "custom": {"pangeo": facts},
        "hub": {
            "extraFiles": {
                "pangeo-hub-config": {
                    "mountPath": f"{HUB_CONFIG_DIR}/hub_config.py",
                    "stringData": HUB_CONFIG.read_text(),
                },
                **{
                    f"pangeo-hub-template-{template.name}": {
                        "mountPath": f"{HUB_CONFIG_DIR}/{HUB_TEMPLATES.name}/{template.name}",
                        "stringData": template.read_text(),
                    }
                    for template in sorted(HUB_TEMPLATES.glob("*.html"))
                },
            },
            "resources": _k8s_resources(hub["resources"]["cpu"], hub["resources"]["memory_gib"]),
            "services": {"dask-gateway": {"url": f"http://{gateway_service(facts)}"}},
            # scratch-credentials: in the common values (the chart's own Service, same name everywhere)
        },
        "proxy": _proxy(facts),
        "singleuser": _singleuser(facts),
    }
    facts_json = json.dumps(facts, sort_keys=True)
    gateway = {
        "gateway": {
            "env": [
                {"name": "PANGEO_FACTS", "value": facts_json},
                # signs the credential a cluster's owner's Dask pods present to the scratch-credentials service
                {"name": "PANGEO_SCRATCH_SIGNING_KEY", "valueFrom": {"secretKeyRef": SCRATCH_SIGNING_SECRET}},
            ],
            "extraConfig": {"00-gateway-config": GATEWAY_CONFIG.read_text()},
            "backend": {"image": {"name": facts["notebook"]["image"]["name"], "tag": image_tag}},
        },
    }
    return {
        "scratchServiceAccount": {
            "name": facts["scratch"]["service_account"],
            "annotations": scratch_identity_annotations(facts),
        },
        "scratchCredentials": _scratch_credentials(facts, common, facts_json),
        "jupyterhub": jupyterhub,
        "dask-gateway": gateway,
    }


def merged_values(facts, common_path=COMMON_VALUES):
    common = read_yaml(common_path)
    return deep_merge(common, cluster_values(facts, common))


class _BlockStyleDumper(yaml.SafeDumper):
    """Prints multi-line strings (the config snippets) as YAML blocks, so `make values` stays readable."""

    def ignore_aliases(self, data):
        # values.yaml's anchors name a value once; the printed values spell each place out
        return True


def _represent_str(dumper, text):
    style = "|" if "\n" in text else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)


_BlockStyleDumper.add_representer(str, _represent_str)


def dump_yaml(values, stream=None):
    return yaml.dump(values, stream, Dumper=_BlockStyleDumper, sort_keys=False, allow_unicode=True, width=120)


def subchart_files(subchart):
    """(defaults, schema) of a subchart: the fetched chart's own, else the offline copy."""
    charts = CHART / "charts"
    fetched = sorted(charts.glob(f"{subchart}-*.tgz")) if charts.is_dir() else []
    if fetched:
        with tarfile.open(fetched[-1]) as tar:
            defaults = yaml.safe_load(tar.extractfile(f"{subchart}/values.yaml"))
            schema = json.load(tar.extractfile(f"{subchart}/values.schema.json"))
        return defaults, schema
    stem = SUBCHARTS[subchart]
    schema = json.loads((UPSTREAM_SCHEMAS / f"{stem}.values.schema.json").read_text())
    return read_yaml(UPSTREAM_SCHEMAS / f"{stem}.values.yaml"), schema


def _has_key(data, parts):
    for part in parts:
        if not isinstance(data, (dict, list)):
            return False
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return False
    return True


def validate_values(values, cluster_path, common_path=COMMON_VALUES):
    """Check each subchart's part of the values, merged over its defaults as helm does, against its schema.

    An error names the common values file when the offending key is written there, else the cluster file
    (whose facts the deployer turned into that value).
    """
    common = read_yaml(common_path)
    for subchart in SUBCHARTS:
        defaults, schema = subchart_files(subchart)
        merged = deep_merge(defaults, values.get(subchart, {}))
        errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(merged),
                        key=lambda e: (-len(e.absolute_path), e.message))
        if not errors:
            continue
        error = errors[0]
        parts = [subchart, *error.absolute_path]
        message = f"chart {subchart} rejects this value: {error.message}"
        if error.validator == "additionalProperties":
            allowed = sorted(error.schema.get("properties", {}))
            unknown = sorted(set(error.instance) - set(allowed))
            if unknown:
                parts.append(unknown[0])
                hint = difflib.get_close_matches(unknown[0], allowed, n=1)
                did_you_mean = f" (did you mean {hint[0]!r}?)" if hint else ""
                message = f"unknown key for chart {subchart}{did_you_mean}; allowed: {', '.join(allowed)}"
        source = common_path if _has_key(common, parts) else cluster_path
        raise ConfigError(source, dotted(parts), message)
    return values
