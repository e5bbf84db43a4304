"""The scratch bucket as code: its expiry rule, and the cloud identity of the scratch-credentials service.

`make deploy` carries out the plan before helm runs; `make diff` prints it. A cluster file says what the
bucket must be (scratch.bucket, scratch.expire_after_days, scratch.identity). Every cluster file naming the
same identity adds its namespace's ServiceAccount to that identity's trust, so production and staging
(two namespaces of one Kubernetes cluster) are both bound whichever of them deploys.

What the deploy identity may not change (scratch.bucket_management.<part>: operator) is printed as a list
for an operator, each with the command that does it; the deploy goes on. A plan that finds the bucket as
its file says is empty: a second run changes nothing.
"""

import dataclasses
from typing import Callable, Optional

from . import facts
from .facts import ConfigError

CLOUDS = ("aws", "gcp")


@dataclasses.dataclass
class Item:
    """One difference between the cloud and the cluster file."""
    what: str
    apply: Optional[Callable[[], None]] = None  # None: an operator must do it (`how` says how)
    how: str = ""


class BucketError(Exception):
    """The cloud refused or lacks something the cluster file asks for; `key` is the cluster file's key."""

    def __init__(self, key, message):
        self.key, self.message = key, message
        super().__init__(f"{key}: {message}")


def peers(cluster, clusters):
    """The clusters (this one included) whose service acts as the same cloud identity, by name."""
    identity = cluster["scratch"].get("identity")
    return [other for _, other in sorted(clusters.items())
            if other["cloud"] == cluster["cloud"] and other["scratch"].get("identity") == identity]


def plan(cluster, clusters=None, clients=None):
    """The items that would make the cloud match the cluster file ([] where there is no cloud bucket)."""
    if cluster["cloud"] not in CLOUDS:
        return []
    clusters = facts.load_all() if clusters is None else clusters
    if cluster["cloud"] == "aws":
        from . import bucket_aws as cloud
    else:
        from . import bucket_gcp as cloud
    return cloud.plan(cluster, peers(cluster, clusters), cloud.clients(cluster) if clients is None else clients)


def reconcile(name, cluster, apply, clusters=None, clients=None, say=print):
    """Print the plan; with `apply`, carry out what the deploy may change.

    Returns the plan. A cloud error becomes a ConfigError naming the cluster file and the key to look at.
    """
    path = facts.cluster_file(name)
    try:
        items = plan(cluster, clusters, clients)
        if cluster["cloud"] not in CLOUDS:
            say(f"no cloud bucket on a {cluster['cloud']} cluster: nothing to do")
            return items
        if not items:
            say(f"{cluster['scratch']['bucket']} and its identity already match the cluster file")
        for item in items:
            if item.apply is None:
                say(f"FOR AN OPERATOR: {item.what}\n      {item.how}")
            elif apply:
                say(f"changing: {item.what}")
                item.apply()
            else:
                say(f"would change: {item.what}")
    except BucketError as e:
        raise ConfigError(path, e.key, e.message) from None
    return items
