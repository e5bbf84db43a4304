"""Scratch credentials: what fetching them costs, against a plain request to the same service.

Through the hub's proxy, as a notebook's botocore asks (GET /services/scratch-credentials/aws/<user> with the
user's hub token): cold (the service checks the token with the hub, then AssumeRoleWithWebIdentity at
SeaweedFS's STS), cached (the token check only), and 50 users asking at once for the first time (a hub
restart's worth of refreshes). Baseline: GET /services/scratch-credentials/health (no authentication, no
minting) through the same proxy, sequentially and 50 at once.
"""

import concurrent.futures
import time
import uuid

import requests

from .common import log, median, percentile, ratio

TARGET = 20.0  # a cold fetch (one hub check + one STS call) within 20 plain requests
USERS = 50
SEQUENTIAL = 10


def _user(stack, name):
    headers = {"Authorization": f"token {stack.api_token}"}
    requests.post(f"{stack.hub_url}/hub/api/users/{name}", headers=headers, timeout=30)
    response = requests.post(f"{stack.hub_url}/hub/api/users/{name}/tokens", headers=headers, timeout=30,
                              json={"scopes": ["access:services!service=scratch-credentials"]})
    response.raise_for_status()
    return response.json()["token"]


def _timed(url, token=None):
    started = time.monotonic()
    response = requests.get(url, headers={"Authorization": token} if token else {}, timeout=60)
    seconds = time.monotonic() - started
    if response.status_code != 200:
        raise RuntimeError(f"{url}: {response.status_code} {response.text[:200]}")
    return seconds


def _at_once(calls):
    with concurrent.futures.ThreadPoolExecutor(len(calls)) as pool:
        started = time.monotonic()
        seconds = list(pool.map(lambda call: call(), calls))
        return seconds, time.monotonic() - started


def _stats(seconds):
    return {"p50_s": median(seconds), "p95_s": percentile(seconds, 95), "max_s": max(seconds), "n": len(seconds)}


def run(stack):
    service = f"{stack.hub_url}/services/scratch-credentials"
    prefix = f"smoke_bench{uuid.uuid4().hex[:4]}"
    log(f"scratch: making {USERS + SEQUENTIAL} users")
    names = [f"{prefix}_{i}" for i in range(USERS + SEQUENTIAL)]
    tokens = {name: _user(stack, name) for name in names}
    plain = [_timed(f"{service}/health") for _ in range(SEQUENTIAL * 2)]
    cold = [_timed(f"{service}/aws/{n}", tokens[n]) for n in names[:SEQUENTIAL]]
    cached = [_timed(f"{service}/aws/{n}", tokens[n]) for n in names[:SEQUENTIAL]]
    storm, storm_wall = _at_once([lambda n=n: _timed(f"{service}/aws/{n}", tokens[n]) for n in names[SEQUENTIAL:]])
    plain_storm, plain_wall = _at_once([lambda: _timed(f"{service}/health") for _ in range(USERS)])
    measured, baseline = median(cold), median(plain)
    r = ratio(measured, baseline)
    return {
        "title": "Scratch credentials: fetch latency",
        "measured": {"what": "cold fetch of one user's AWS credentials (hub token check + STS)", "median_s": measured,
                     "samples_s": cold},
        "baseline": {"what": "plain GET of the service's health page, same proxy", "median_s": baseline,
                     "samples_s": plain},
        "ratio": r,
        "target": {"text": f"≤ {TARGET:g}", "met": r is not None and r <= TARGET},
        "cached": _stats(cached),
        "cached_ratio": ratio(median(cached), baseline),
        "storm": {**_stats(storm), "wall_s": storm_wall, "users": USERS},
        "plain_storm": {**_stats(plain_storm), "wall_s": plain_wall},
        "storm_ratio_p95": ratio(percentile(storm, 95), percentile(plain_storm, 95)),
    }
