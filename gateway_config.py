"""Dask Gateway configuration of a Pangeo Cloud cluster, built from the cluster's facts only.

Entry point: configure(c, facts, user_environment=None). Two callers:
- the dask-gateway chart, which INLINES this whole text into its own dask_gateway_config.py
  (gateway.extraConfig "00-gateway-config"; "zz-pangeo" then calls configure with PANGEO_FACTS). So the top
  level holds only imports, functions and UPPER_CASE constants (names that cannot clash with the chart's
  get_property, image_name, field, value...), and there is no `from __future__` (it would not be first).
- the local stack (deployer/local), which imports it (and may pass `user_environment(username) -> dict`).
Schedulers and workers hold no bucket identity: they fetch prefix-scoped credentials from the
scratch-credentials service (scratch_credentials.py) with a credential signed here for the cluster's owner.

dask-gateway-server 2026.3.0 has no per-user limits of its own (no UserLimits; only per-cluster caps), so:
- each cluster is capped (cluster_max_cores/memory) at the user's limit divided by the clusters a user may
  have, so a user's clusters together never exceed their cores and memory limits; scale/adapt requests
  past a cluster's cap are lowered to it by the gateway, which tells the client (a GatewayWarning);
- the number of a user's clusters is enforced by wrapping the configured backend class (see
  limit_clusters_per_user): set c.DaskGateway.backend_class BEFORE calling configure.
"""

import functools
import hashlib
import hmac
import math
import time
import urllib.parse

from dask_gateway_server import options as gateway_options
from dask_gateway_server.backends.base import PublicException
from traitlets.utils.importstring import import_item

GIB = 2**30
# The cloud whose Dask clusters are local processes (integer cores, no image, no pod specs).
PROCESS_CLOUD = "local"
PROCESS_BACKEND = "dask_gateway_server.backends.local.UnsafeLocalBackend"
KUBE_BACKEND = "dask_gateway_server.backends.kubernetes.KubeBackend"
# distributed >= 2026 ships only the `dask` CLI: `dask-scheduler`/`dask-worker` (the gateway's defaults) are gone.
SCHEDULER_CMD = ["dask", "scheduler"]
SCRATCH_SERVICE = "scratch-credentials"
SCRATCH_SERVICE_PORT = 8080
# The key shared with the scratch-credentials service (the chart's Secret pangeo-scratch-signing).
SCRATCH_SIGNING_KEY_VAR = "PANGEO_SCRATCH_SIGNING_KEY"
SCRATCH_CREDENTIAL_PREFIX = "pangeo-scratch-v1"
WORKER_CMD = ["dask", "worker"]


def configure(c, facts, user_environment=None):
    """Configure the gateway in traitlets config `c` for the cluster described by `facts`."""
    is_kube = facts["cloud"] != PROCESS_CLOUD
    gateway = facts["dask_gateway"]
    idle = gateway["idle_timeout_minutes"]
    share = per_cluster_share(facts)
    check_share(facts, share)

    c.ClusterConfig.scheduler_cmd = list(SCHEDULER_CMD)
    c.ClusterConfig.worker_cmd = list(WORKER_CMD)
    # Clusters made without options (or by an older client) still get the default timeout.
    c.ClusterConfig.idle_timeout = idle["default"] * 60
    c.ClusterConfig.cluster_max_cores = share["cores"]
    c.ClusterConfig.cluster_max_memory = int(share["memory_gib"] * GIB)
    # Kubernetes has fractional cores and separate limits (KubeClusterConfig); processes have whole cores.
    section = c.KubeClusterConfig if is_kube else c.ClusterConfig
    for key, val in scheduler_resources(facts).items():
        setattr(section, key, val)

    if is_kube:
        placement = pod_placement(facts)
        for key in ("scheduler_extra_pod_config", "worker_extra_pod_config"):
            configured = dict(c.KubeClusterConfig[key]) if f"KubeClusterConfig.{key}" in c else {}
            setattr(c.KubeClusterConfig, key, {**configured, **placement})

    default_image = c.KubeClusterConfig.image if (is_kube and "KubeClusterConfig.image" in c) else ""
    c.Backend.cluster_options = cluster_options(
        facts, default_image=default_image, user_environment=user_environment,
        base_environment=lambda: configured_environment(c, is_kube))

    backend = c.DaskGateway.backend_class if "DaskGateway.backend_class" in c else (
        KUBE_BACKEND if is_kube else PROCESS_BACKEND)
    c.DaskGateway.backend_class = limit_clusters_per_user(backend, gateway["limits_per_user"]["clusters"], facts)


def scratch_url(facts, username):
    """The user's scratch prefix; the same rule as hub_config.scratch_url (a test checks they agree)."""
    return f"{facts['scratch']['bucket']}/{urllib.parse.quote(username, safe='')}"


def scratch_worker_credential(username, key, hours, now=None):
    """What a Dask pod of `username` shows the scratch-credentials service: it names the user, expires after
    `hours`, and is accepted by nothing else (HMAC-SHA256 with the service's key; scratch_credentials
    .worker_credential_user checks it)."""
    expires_at = int((now or time.time()) + hours * 3600)
    mac = hmac.new(key.encode(), f"{username}.{expires_at}".encode(), hashlib.sha256).hexdigest()
    return f"{SCRATCH_CREDENTIAL_PREFIX}.{username}.{expires_at}.{mac}"


def scratch_hub_url(facts):
    """hub_config.hub_url: where the hub's proxy answers."""
    hub = facts["hub"]
    if "https_contact_email" in hub:
        return f"https://{hub['host']}"
    if facts["cloud"] == PROCESS_CLOUD:
        return f"http://{hub['host']}:{hub['port']}"
    return f"http://{hub['host']}"


def scratch_access_environment(facts, username, credential):
    """The same rule as hub_config.scratch_access_environment (a unit test checks they agree)."""
    prefix = f"/services/{SCRATCH_SERVICE}"
    user = urllib.parse.quote(username, safe="")
    if facts["scratch"]["bucket"].startswith("s3://"):
        return {"AWS_CONTAINER_CREDENTIALS_FULL_URI": f"{scratch_hub_url(facts)}{prefix}/aws/{user}",
                "AWS_CONTAINER_AUTHORIZATION_TOKEN": credential}
    namespace = facts["kubernetes"]["namespace"]
    address = f"{SCRATCH_SERVICE}.{namespace}.svc.cluster.local:{SCRATCH_SERVICE_PORT}{prefix}/gcp/{user}/{credential}"
    return {"GCE_METADATA_HOST": address, "GCE_METADATA_IP": address}


def cluster_environment(facts, username, user_environment=None):
    """Variables every scheduler and worker of `username` gets, as the notebook has them.

    `user_environment(username)` adds per-user variables; what the facts decide (the scratch prefix, the
    endpoint, the way to scratch credentials) wins over it. Without the signing key the credential is left
    empty, and the scratch-credentials service says what is missing.
    """
    import os  # here, not at the top: the chart's inlined config has its own `os`
    env = dict(user_environment(username)) if user_environment is not None else {}
    key = os.environ.get(SCRATCH_SIGNING_KEY_VAR, "")
    hours = facts["scratch"].get("credentials", {}).get("worker_credential_hours", 168)
    env.update(scratch_access_environment(facts, username, scratch_worker_credential(username, key, hours)
                                          if key else ""))
    env["PANGEO_SCRATCH"] = scratch_url(facts, username)
    endpoint = facts["scratch"].get("endpoint_url")
    if endpoint:
        # botocore reads AWS_ENDPOINT_URL; s3fs (through fsspec's FSSPEC_<PROTOCOL>_<KWARG>) the other.
        env["AWS_ENDPOINT_URL"] = endpoint
        env["FSSPEC_S3_ENDPOINT_URL"] = endpoint
    return {str(k): str(v) for k, v in env.items()}


def worker_sizes(facts):
    """The worker sizes offered, in the cluster file's order (smallest first; the first is the default)."""
    return [(name, facts["sizes"][name]) for name in facts["dask_gateway"]["worker_sizes"]]


def per_cluster_share(facts):
    """The cores and memory one cluster may hold: the user's limit split over the clusters they may have."""
    limits = facts["dask_gateway"]["limits_per_user"]
    return {"cores": limits["cores"] / limits["clusters"], "memory_gib": limits["memory_gib"] / limits["clusters"]}


def scheduler_resources(facts):
    """Schedulers get the default (first) worker size; memory request = limit, as for workers."""
    size = worker_sizes(facts)[0][1]
    memory = int(size["memory_gib"]["limit"] * GIB)
    if facts["cloud"] == PROCESS_CLOUD:
        return {"scheduler_cores": 1, "scheduler_memory": memory}
    return {
        "scheduler_cores": size["cpu"]["guarantee"], "scheduler_cores_limit": size["cpu"]["limit"],
        "scheduler_memory": memory, "scheduler_memory_limit": memory,
    }


def check_share(facts, share):
    """A cluster's share must hold its scheduler and one default worker, or no cluster could ever work."""
    scheduler = scheduler_resources(facts)
    default = worker_sizes(facts)[0][1]
    need_cores = scheduler["scheduler_cores"] + worker_cores_counted(facts, default["cpu"]["limit"])
    need_gib = scheduler["scheduler_memory"] / GIB + default["memory_gib"]["limit"]
    if share["cores"] < need_cores or share["memory_gib"] < need_gib:
        limits = facts["dask_gateway"]["limits_per_user"]
        raise ValueError(
            f"config/clusters/{facts['name']}.yaml: dask_gateway.limits_per_user: {limits['cores']} cores and "
            f"{limits['memory_gib']} GiB shared by {limits['clusters']} clusters leave each cluster "
            f"{share['cores']:g} cores and {share['memory_gib']:g} GiB, less than a scheduler and one default "
            f"worker need ({need_cores:g} cores, {need_gib:g} GiB); raise cores/memory_gib or lower clusters")


def pod_placement(facts):
    """Pod spec additions: the Dask node pool (its selector and taints). No ServiceAccount of ours: Dask pods
    hold no bucket identity (see cluster_environment)."""
    pool = facts["node_pools"][facts["dask_gateway"]["node_pool"]]
    spec = {}
    if pool["node_selector"]:
        spec["nodeSelector"] = dict(pool["node_selector"])
    if pool["taints"]:
        spec["tolerations"] = [
            {"key": t["key"], "operator": "Equal", "value": t["value"], "effect": t["effect"]} for t in pool["taints"]
        ]
    return spec


def configured_environment(c, is_kube):
    """Environment set elsewhere in the config (e.g. the chart's gateway.backend.environment), kept under ours."""
    env = {}
    for section in ("ClusterConfig", "KubeClusterConfig" if is_kube else "LocalClusterConfig"):
        if f"{section}.environment" in c:
            env.update(c[section]["environment"])
    return env


def cluster_options(facts, default_image="", user_environment=None, base_environment=dict):
    """The options researchers may set (gateway.cluster_options()), and the handler mapping them to config."""
    option_float, pangeo_options = option_types()
    sizes = worker_sizes(facts)
    default_size, largest = sizes[0][1], sizes[-1][1]
    idle = facts["dask_gateway"]["idle_timeout_minutes"]
    return pangeo_options(
        option_float(
            "worker_cores", default_size["cpu"]["limit"], largest["cpu"]["limit"], "cores",
            label=f"Worker cores (up to {largest['cpu']['limit']:g})"),
        option_float(
            "worker_memory", default_size["memory_gib"]["limit"], largest["memory_gib"]["limit"], "GiB",
            label=f"Worker memory, GiB (up to {largest['memory_gib']['limit']:g})"),
        gateway_options.String("image", default=default_image, label="Image"),
        option_float(
            "idle_timeout_minutes", idle["default"], idle["maximum"], "minutes",
            label=f"Idle timeout, minutes (up to {idle['maximum']:g})"),
        gateway_options.Mapping("environment", label="Extra environment variables"),
        handler=options_handler(facts, user_environment, base_environment),
    )


def options_handler(facts, user_environment=None, base_environment=dict):
    """handler(options, user) -> ClusterConfig overrides, for the Kubernetes or the local-process backend."""
    is_kube = facts["cloud"] != PROCESS_CLOUD
    scheduler = scheduler_resources(facts)

    def handler(options, user):
        cores, memory_gib = options.worker_cores, options.worker_memory
        user_env = options.environment
        bad = sorted(str(k) for k, v in user_env.items() if not (isinstance(k, str) and isinstance(v, str)))
        if bad:
            raise ValueError(f"environment: names and values must be strings; not so for {', '.join(bad)}")
        memory = int(memory_gib * GIB)
        config = {"worker_cores": worker_cores_counted(facts, cores)}
        if is_kube:
            config.update({"worker_cores_limit": cores, "worker_memory_limit": memory})
            if options.image:
                check_image(facts, options.image)
                config["image"] = options.image
        elif options.image:
            # Silently ignoring it would let the researcher believe their image runs.
            raise ValueError(f"image={options.image!r} cannot be used on this hub: its Dask schedulers and workers are "
                             "processes running the notebook's own packages, not containers; leave image empty")
        check_fits(facts, "worker_cores", cores, config["worker_cores"], scheduler["scheduler_cores"], "cores")
        check_fits(facts, "worker_memory", memory_gib, memory_gib, scheduler["scheduler_memory"] / GIB, "GiB")
        config.update({
            "worker_memory": memory,
            "worker_threads": max(1, int(cores)),
            "idle_timeout": options.idle_timeout_minutes * 60,
            # Ours last: the scratch prefix and credentials are not the user's to change.
            "environment": {**base_environment(), **user_env,
                            **cluster_environment(facts, user.name, user_environment)},
        })
        return config

    return handler


def image_repository(image):
    """'registry:5000/org/name' from 'registry:5000/org/name:tag' or '...@sha256:...'."""
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    return name[: len(name) - len(last)] + last.split(":", 1)[0]


def check_image(facts, image):
    """Dask pods run the notebook's image, in any of its tags (a server started before an upgrade sends its
    own). Another image is refused at once: the gateway checks no registry, and a pod whose image cannot be
    pulled would leave the researcher waiting for the start timeout with no word about why."""
    repository = facts["notebook"]["image"]["name"]
    if image_repository(image) != repository:
        raise ValueError(f"image={image!r} is not allowed on this hub: Dask schedulers and workers run the "
                         f"notebook's image, {repository}:<tag>; leave image empty to use your notebook's own")


def check_fits(facts, option, asked, worker, scheduler, unit):
    """Refuse a worker that the cluster's share cannot hold next to its scheduler (it would get 0 workers)."""
    limits = facts["dask_gateway"]["limits_per_user"]
    key = "cores" if unit == "cores" else "memory_gib"
    share = per_cluster_share(facts)[key]
    if scheduler + worker > share:
        raise ValueError(
            f"{option}={asked:g} {unit} does not fit in one cluster: each of your clusters may use {share:g} {unit} "
            f"(your limit of {limits[key]:g} {unit} shared by up to {limits['clusters']} clusters), "
            f"{scheduler:g} of it for the scheduler; choose a smaller {option}")


def worker_cores_counted(facts, cores):
    """A worker's ClusterConfig.worker_cores, which the cluster's cores cap counts.

    Kubernetes: the CPU request, at the guarantee/limit ratio of the smallest worker size with that many
    cores (the option is the limit). Processes: whole cores.
    """
    if facts["cloud"] == PROCESS_CLOUD:
        return max(1, math.ceil(cores))
    for _, size in worker_sizes(facts):
        if size["cpu"]["limit"] >= cores:
            return round(cores * size["cpu"]["guarantee"] / size["cpu"]["limit"], 3)
    return cores


def option_refusal(field, value, maximum, unit):
    """The one wording of an option past its limit, wherever it is hit: here (a keyword argument of
    new_cluster) and in the notebook, where the client refuses a value as it is set and the image's
    pangeo_messages shows that refusal in these same words (a unit test keeps the two equal)."""
    return f"{field}={value:g} is not allowed on this hub: choose more than 0 and at most {maximum:g} {unit}"


@functools.cache
def option_types():
    """(Float option with clear refusals, Options that name the allowed options), built once.

    Classes are made here, not at the top level, because the chart inlines this module into its own config.
    """

    class OptionFloat(gateway_options.Float):
        def __init__(self, field, default, maximum, unit, label):
            self.maximum, self.unit = maximum, unit
            super().__init__(field, default=default, label=label)

        def json_type_spec(self):
            # Published so that the client refuses a value past the maximum when it is set, before any
            # request: the dask-gateway 2026.3.0 client stops its event loop after repeated refusals by the
            # server in one process, which hangs the researcher's session. The server still checks (below).
            return {"type": "float", "min": 0.0, "max": float(self.maximum)}

        def validate(self, x):
            x = super().validate(x)
            if not (math.isfinite(x) and 0 < x <= self.maximum):
                raise ValueError(option_refusal(self.field, x, self.maximum, self.unit))
            return x

    class PangeoOptions(gateway_options.Options):
        def parse_options(self, request):
            unknown = sorted(set(request) - {f.field for f in self.fields}) if isinstance(request, dict) else []
            if unknown:
                raise ValueError(f"unknown cluster option(s) {', '.join(map(repr, unknown))}; the options on this "
                                 f"hub are {', '.join(f.field for f in self.fields)}")
            return super().parse_options(request)

    return OptionFloat, PangeoOptions


def limit_clusters_per_user(backend_class, max_clusters, facts):
    """`backend_class` (a class or its dotted name) refusing a user's cluster beyond `max_clusters` at once."""
    base = import_item(backend_class) if isinstance(backend_class, str) else backend_class
    if getattr(base, "pangeo_max_clusters", None) is not None:
        base = base.__mro__[1]

    async def start_cluster(self, user, cluster_options):
        # Bad options are reported first: they are the request's own fault, whatever else is running.
        await self.process_cluster_options(user, cluster_options)
        # Pending and running clusters count; stopped and failed ones do not.
        active = await self.list_clusters(username=user.name)
        if len(active) >= max_clusters:
            names = ", ".join(sorted(cl.name for cl in active))
            raise PublicException(
                f"You already have {len(active)} Dask clusters running or starting ({names}); each user may have "
                f"at most {max_clusters} at once on {facts['name']}. Close one first: cluster.close(), or "
                "gateway.stop_cluster(name) (gateway.list_clusters() lists yours).")
        return await base.start_cluster(self, user, cluster_options)

    return type(f"Pangeo{base.__name__}", (base,), {
        "start_cluster": start_cluster, "pangeo_max_clusters": max_clusters, "__module__": "gateway_config",
    })
