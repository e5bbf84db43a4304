"""Load a cluster's facts: its cluster file, with the common defaults filled in and the sizes it uses.

The facts are plain JSON-able data. The same dict is handed to hub_config.configure, to
gateway_config.configure, to the Helm values renderer and to the local stack, so every fact has
exactly one source: config/clusters/<name>.yaml, config/sizes.yaml, or a default in
config/cluster.schema.yaml.
"""

import copy
import difflib
from pathlib import Path

import jsonschema
import yaml

REPO = Path(__file__).resolve().parent.parent
CONFIG = REPO / "config"
CLUSTERS = CONFIG / "clusters"
SIZES_FILE = CONFIG / "sizes.yaml"


class ConfigError(Exception):
    """A bad value an operator must fix; says which file, which key, and what is allowed."""

    def __init__(self, path, key, message):
        self.path, self.key, self.message = Path(path), key, message
        super().__init__(f"{_display(self.path)}: {key or '(top level)'}: {message}")


def _display(path):
    try:
        return str(path.resolve().relative_to(REPO))
    except ValueError:
        return str(path)


def cluster_names(clusters_dir=CLUSTERS):
    return sorted(p.stem for p in clusters_dir.glob("*.yaml") if not p.stem.endswith(".secret"))


def cluster_file(name, clusters_dir=CLUSTERS):
    path = clusters_dir / f"{name}.yaml"
    if not path.is_file():
        known = ", ".join(cluster_names(clusters_dir))
        raise ConfigError(path, "CLUSTER", f"unknown cluster {name!r}; known clusters: {known}")
    return path


def read_yaml(path):
    try:
        with open(path) as f:
            # libyaml's parser where PyYAML has it: the pure-Python one took a quarter of `make validate`
            data = yaml.load(f, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError as e:
        raise ConfigError(path, None, f"not valid YAML: {e}") from None
    return {} if data is None else data


def _with_defaults(validator_class):
    validate_properties = validator_class.VALIDATORS["properties"]

    def fill_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for key, subschema in properties.items():
                if "default" in subschema:
                    instance.setdefault(key, copy.deepcopy(subschema["default"]))
        yield from validate_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": fill_defaults})


_DefaultingValidator = _with_defaults(jsonschema.Draft7Validator)


def dotted(path_parts):
    key = ""
    for part in path_parts:
        key += f"[{part}]" if isinstance(part, int) else (f".{part}" if key else str(part))
    return key


def _explain(error):
    """One schema error as (key, message) an operator can act on."""
    key = dotted(error.absolute_path)
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        unknown = sorted(set(error.instance) - set(allowed))
        name = unknown[0] if unknown else "?"
        hint = difflib.get_close_matches(name, allowed, n=1)
        did_you_mean = f" (did you mean {hint[0]!r}?)" if hint else ""
        return (f"{key}.{name}" if key else name,
                f"unknown key{did_you_mean}; allowed: {', '.join(allowed)}")
    if error.validator == "pattern":
        allowed = error.schema.get("title") or f"match {error.validator_value}"
        return key, f"{error.instance!r} is not valid here; it must be {allowed}"
    if error.validator == "enum":
        return key, f"{error.instance!r} is not allowed; allowed: {', '.join(map(str, error.validator_value))}"
    if error.validator == "required":
        missing = next(name for name in error.validator_value if name not in error.instance)
        return (f"{key}.{missing}" if key else missing), "required key is missing"
    return key, error.message


def validate_schema(data, schema, path, fill_defaults=False):
    """Validate data against schema; raise ConfigError for the first (deepest-first) problem."""
    data = copy.deepcopy(data)
    cls = _DefaultingValidator if fill_defaults else jsonschema.Draft7Validator
    # deepest first; at one depth a typo'd key first, since it also explains the "required" key it misses
    errors = sorted(cls(schema).iter_errors(data),
                    key=lambda e: (-len(e.absolute_path), e.validator != "additionalProperties", e.message))
    if errors:
        key, message = _explain(errors[0])
        raise ConfigError(path, key, message)
    return data


def load_sizes(path=SIZES_FILE):
    sizes = validate_schema(read_yaml(path), read_yaml(CONFIG / "sizes.schema.yaml"), path)
    for name, size in sizes.items():
        for resource in ("cpu", "memory_gib"):
            guarantee, limit = size[resource]["guarantee"], size[resource]["limit"]
            if guarantee > limit:
                raise ConfigError(path, f"{name}.{resource}.guarantee",
                                  f"guarantee {guarantee} is above the limit {limit}; it must be at most the limit")
    return sizes


def load(name, clusters_dir=CLUSTERS, sizes_path=SIZES_FILE):
    """The facts of cluster `name`, validated; raises ConfigError naming the file and key.

    clusters_dir and sizes_path let tests check altered copies of the real files.
    """
    path = cluster_file(name, clusters_dir)
    return resolve(name, read_yaml(path), path, load_sizes(sizes_path), sizes_path)


def resolve(name, raw, path, sizes, sizes_path=SIZES_FILE):
    facts = validate_schema(raw, read_yaml(CONFIG / "cluster.schema.yaml"), path, fill_defaults=True)
    facts["name"] = name
    pools = facts["node_pools"]
    for section in ("notebook", "dask_gateway"):
        pool = facts[section]["node_pool"]
        if pool not in pools:
            raise ConfigError(path, f"{section}.node_pool",
                              f"no node pool {pool!r}; node pools here: {', '.join(pools)}")
    for section, key in (("notebook", "sizes"), ("dask_gateway", "worker_sizes")):
        pool = pools[facts[section]["node_pool"]]
        for i, size_name in enumerate(facts[section][key]):
            where = f"{section}.{key}[{i}]"
            if size_name not in sizes:
                raise ConfigError(path, where, f"unknown size {size_name!r}; sizes in "
                                  f"{_display(Path(sizes_path))}: {', '.join(sizes)}")
            _check_fits(path, where, size_name, sizes[size_name], pool)
        _check_smallest_first(path, f"{section}.{key}", facts[section][key], sizes)
    _check_teams(path, facts["github"])
    _check_cloud(path, facts)
    idle = facts["dask_gateway"]["idle_timeout_minutes"]
    if idle["maximum"] < idle["default"]:
        raise ConfigError(path, "dask_gateway.idle_timeout_minutes.maximum",
                          f"maximum {idle['maximum']} is below the default {idle['default']}")
    _check_gateway_limits(path, facts, sizes)
    _check_scratch_credentials(path, facts)
    used = dict.fromkeys(facts["notebook"]["sizes"] + facts["dask_gateway"]["worker_sizes"])
    facts["sizes"] = {size_name: sizes[size_name] for size_name in used}
    return facts


def _check_fits(path, where, size_name, size, pool):
    for resource in ("cpu", "memory_gib"):
        guarantee, allocatable = size[resource]["guarantee"], pool["allocatable"][resource]
        if guarantee > allocatable:
            raise ConfigError(path, where, f"size {size_name!r} guarantees {resource} {guarantee}, more than "
                              f"the {allocatable} allocatable on a {pool['machine_type']} node")


def _check_smallest_first(path, key, names, sizes):
    order = [(sizes[n]["memory_gib"]["limit"], sizes[n]["cpu"]["limit"]) for n in names]
    if order != sorted(order):
        raise ConfigError(path, key, f"sizes must be listed smallest first (the first is the default); got {names}")


def _check_teams(path, github):
    orgs = {team.split(":")[0] for team in github["allowed_teams"] + github["admin_teams"]}
    if len(orgs) > 1:
        raise ConfigError(path, "github", f"all teams must be in one GitHub organization; found {sorted(orgs)}")


def _check_cloud(path, facts):
    cloud, scheme = facts["cloud"], facts["scratch"]["bucket"].split("://")[0]
    expected = {"gcp": "gs", "aws": "s3"}.get(cloud)
    if expected and scheme != expected:
        raise ConfigError(path, "scratch.bucket", f"a {cloud} cluster's scratch bucket must be {expected}://…")
    identity_key = {"gcp": "gcp_service_account", "aws": "aws_role_arn"}.get(cloud)
    if identity_key and identity_key not in facts["scratch"].get("identity", {}):
        raise ConfigError(path, f"scratch.identity.{identity_key}",
                          f"a {cloud} cluster needs the cloud identity that may write its scratch bucket")
    if cloud in ("gcp", "aws") and "https_contact_email" not in facts["hub"]:
        raise ConfigError(path, "hub.https_contact_email",
                          "a public hub is served over HTTPS; give the Let's Encrypt contact e-mail")


def _check_scratch_credentials(path, facts):
    credentials = facts["scratch"]["credentials"]
    if credentials["min_remaining_minutes"] >= credentials["lifetime_minutes"]:
        raise ConfigError(path, "scratch.credentials.min_remaining_minutes",
                          f"{credentials['min_remaining_minutes']} is not below lifetime_minutes "
                          f"{credentials['lifetime_minutes']}: every request would mint new credentials")


def _check_gateway_limits(path, facts, sizes):
    gateway = facts["dask_gateway"]
    default = sizes[gateway["worker_sizes"][0]]
    limits = gateway["limits_per_user"]
    for resource, limit_key in (("cpu", "cores"), ("memory_gib", "memory_gib")):
        if limits[limit_key] < default[resource]["limit"]:
            raise ConfigError(path, f"dask_gateway.limits_per_user.{limit_key}",
                              f"{limits[limit_key]} is below one default worker's {default[resource]['limit']}")


def load_all():
    return {name: load(name) for name in cluster_names()}
