"""Spawn overhead: a user server started through the hub, against the same server started by hand.

Measured: from the hub API's start request (POST /hub/api/users/<member>/server with the cluster's default
profile) until the hub reports the server ready. The API answers 201 once the server is ready (within the
hub's slow_spawn_timeout), otherwise 202, after which the user model is polled every 50 ms.
Baseline: the same request to a stock JupyterHub 5.5.0 (benchmarks/variants.py: same spawner, profile list
and server command, no hub_config.configure), running beside ours.
Floor: the very process the hub started (argv, environment and working directory copied from /proc of a
warm-up spawn), started by hand on another port with a fresh token of the user, until its /api answers
(polled every 20 ms). Runs alternate (by hand, ours, stock), so all see the same machine load; the median counts.
A watcher splits each hub spawn: hub work until the process exists, the server's own start-up, and the hub
noticing the server (its HTTP check) and adding the proxy route.
"""

import time
from urllib.parse import urlsplit, urlunsplit

from deployer.local.processes import Process
from tests.smoke.hub import HubAPI

from . import procs
from .common import http_ok, log, median, ratio, wait_for

TARGET = 1.05
SPAWN_TIMEOUT_S = 120


def hub_spawn(hub, user, profile, tag):
    watcher = procs.ServerWatcher(user, *tag)
    watcher.start()
    started = time.monotonic()
    reply = hub.request("POST", f"/users/{user}/server", json={"profile": profile}, expect=(201, 202),
                        timeout=SPAWN_TIMEOUT_S)
    if reply.status_code == 202:
        wait_for(lambda: (hub.server(user) or {}).get("ready"), f"{user}'s server", SPAWN_TIMEOUT_S, 0.05)
    ready = time.monotonic()
    watcher.stop()
    phases = {}
    if watcher.process_seen and watcher.answered:
        phases = {"hub_until_process_s": watcher.process_seen - started,
                  "server_startup_s": watcher.answered - watcher.process_seen,
                  "hub_after_server_answers_s": ready - watcher.answered}
    return ready - started, phases, watcher.pid


def bare_start(argv, env, cwd, port, log_path):
    """Start the copied server on `port`; seconds until its /api answers."""
    parts = urlsplit(env["JUPYTERHUB_SERVICE_URL"])
    env = dict(env, JUPYTERHUB_SERVICE_URL=urlunsplit(parts._replace(netloc=f"127.0.0.1:{port}")))
    api = f"http://127.0.0.1:{port}{parts.path.rstrip('/')}/api"
    started = time.monotonic()
    process = Process("the server started by hand", argv, log_path, env=env, cwd=cwd)
    try:
        wait_for(lambda: process.exited() or http_ok(api, timeout=1.0), process.name, SPAWN_TIMEOUT_S)
        if process.exited():
            raise RuntimeError(f"{process.name} exited ({process.popen.returncode}); see {log_path}")
        return time.monotonic() - started
    finally:
        process.stop()


def _prepare(stack):
    """Log the member in (with auth state on, the hub refuses to spawn for a user who never logged in) and
    warm up (not counted: fills the OS's file cache); (hub client, user, profile, tag, (argv, environment, cwd) of the warm-up server or None)."""
    from deployer.local.processes import STACK_ID_VAR
    from tests.smoke.login import standin_login

    hub = HubAPI(stack.hub_url, stack.api_token)
    user = stack.users["member"]
    profile = stack.facts["notebook"]["sizes"][0]
    tag = (STACK_ID_VAR, stack.stack_id)
    standin_login(stack.hub_url, user)
    hub.ensure_user(user)
    if hub.server(user):
        hub.stop_server(user)
    warmup, _, pid = hub_spawn(hub, user, profile, tag)
    image = procs.process_image(pid) if pid else None
    hub.stop_server(user)
    log(f"spawn: {getattr(stack, 'variant', 'ours')} hub warm-up {warmup:.2f} s")
    return hub, user, profile, tag, image


def run(stacks, reps=5):
    """stacks: {"ours": stack, "stock": stack}; runs alternate by hand / ours / stock."""
    from deployer.local.processes import free_port

    prepared = {name: _prepare(stack) for name, stack in stacks.items()}
    hub, user, _, _, image = prepared["ours"]
    if image is None:
        raise RuntimeError(f"could not find {user}'s server process among this stack's processes")
    argv, env, cwd = image
    log(f"spawn: server command: {' '.join(argv)}")
    log_path = stacks["ours"].data_dir / "logs" / "bench-bare-server.log"
    samples = {"ours": [], "stock": []}
    phases = {"ours": [], "stock": []}
    floor = []
    for i in range(reps):
        token = hub.user_token(user, note="benchmark: server started by hand")
        bare_env = dict(env, JUPYTERHUB_API_TOKEN=token)
        if "JPY_API_TOKEN" in bare_env:
            bare_env["JPY_API_TOKEN"] = token
        floor.append(bare_start(argv, bare_env, cwd, free_port(), log_path))
        # Which hub goes first alternates too: the second of two back-to-back spawns finds warmer caches.
        for name in (("ours", "stock") if i % 2 == 0 else ("stock", "ours")):
            client, name_user, profile, tag, _ = prepared[name]
            seconds, split, _ = hub_spawn(client, name_user, profile, tag)
            client.stop_server(name_user)
            samples[name].append(seconds)
            phases[name].append(split)
        log(f"spawn {i + 1}/{reps}: ours {samples['ours'][-1]:.2f} s, stock {samples['stock'][-1]:.2f} s, "
            f"by hand {floor[-1]:.2f} s")

    def described(name, what):
        ps = phases[name]
        keys = ps[0] if ps and ps[0] else {}
        return {"what": what, "median_s": median(samples[name]), "samples_s": samples[name],
                "phases_median_s": {k: median([p[k] for p in ps if k in p]) for k in keys}}

    profile = prepared["ours"][2]
    measured = described("ours", f"our hub: POST /hub/api/users/{user}/server (profile {profile}) until ready")
    baseline = described("stock", "stock JupyterHub 5.5.0 (same spawner, profile list and server command; "
                                  "JupyterHub's and oauthenticator's defaults), same request")
    m, b, f = measured["median_s"], baseline["median_s"], median(floor)
    # Without the readiness check's random backoff (the same JupyterHub code in both): what each hub does
    # until its server answers.
    until = {name: median([p["hub_until_process_s"] + p["server_startup_s"] for p in phases[name] if p])
             for name in phases}
    return {
        "title": "Spawn: our hub vs stock JupyterHub 5.5.0 (API start -> server ready)",
        "measured": measured,
        "baseline": baseline,
        "floor": {"what": f"the same command and environment by hand ({' '.join(argv[-2:])}) until /api answers",
                  "median_s": f, "samples_s": floor},
        "ratio": ratio(m, b),
        "floor_ratio": ratio(m, f),
        "ratio_until_server_answers": ratio(until["ours"], until["stock"]),
        "repetitions": reps,
        "target": {"text": f"ratio <= {TARGET}", "met": ratio(m, b) is not None and ratio(m, b) <= TARGET},
    }
