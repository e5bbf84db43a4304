"""Spawn overhead: a user server started through the hub, against the same server started by hand.

Measured: from the hub API's start request (POST /hub/api/users/<member>/server with the cluster's default
profile) until the hub reports the server ready. The API answers 201 once the server is ready (within the
hub's slow_spawn_timeout), otherwise 202, after which the user model is polled every 50 ms.
Baseline: the very process the hub started (argv, environment and working directory copied from /proc of a
warm-up spawn), started by hand on another port with a fresh token of the user, until its /api answers
(polled every 20 ms). Runs alternate, so both see the same machine load; the median counts.
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


def run(stack, reps=5):
    from deployer.local.processes import STACK_ID_VAR, free_port
    from tests.smoke.login import standin_login

    hub = HubAPI(stack.hub_url, stack.api_token)
    user = stack.users["member"]
    profile = stack.facts["notebook"]["sizes"][0]
    tag = (STACK_ID_VAR, stack.stack_id)
    # With auth state on, the hub refreshes the user's GitHub auth before a spawn and refuses a user who
    # never logged in: log in through the stand-in, as the smoke suite does.
    standin_login(stack.hub_url, user)
    hub.ensure_user(user)
    if hub.server(user):
        hub.stop_server(user)
    # Warm-up (not counted): fills the OS's file cache for both, and shows how the hub runs the server.
    warmup, _, pid = hub_spawn(hub, user, profile, tag)
    if pid is None:
        raise RuntimeError(f"could not find {user}'s server process among this stack's processes")
    argv, env, cwd = procs.process_image(pid)
    hub.stop_server(user)
    log(f"spawn: warm-up {warmup:.2f} s; server command: {' '.join(argv)}")
    log_path = stack.data_dir / "logs" / "bench-bare-server.log"
    measured, baseline, phases = [], [], []
    for i in range(reps):
        token = hub.user_token(user, note="benchmark: server started by hand")
        bare_env = dict(env, JUPYTERHUB_API_TOKEN=token)
        if "JPY_API_TOKEN" in bare_env:
            bare_env["JPY_API_TOKEN"] = token
        baseline.append(bare_start(argv, bare_env, cwd, free_port(), log_path))
        seconds, split, _ = hub_spawn(hub, user, profile, tag)
        measured.append(seconds)
        phases.append(split)
        hub.stop_server(user)
        log(f"spawn {i + 1}/{reps}: hub {seconds:.2f} s, by hand {baseline[-1]:.2f} s")
    m, b = median(measured), median(baseline)
    phase_medians = {k: median([p[k] for p in phases if k in p]) for k in (phases[0] if phases else {})}
    return {
        "title": "Spawn overhead: hub API start -> server ready, vs the same server started by hand",
        "measured": {"what": f"POST /hub/api/users/{user}/server (profile {profile}) until ready, local stack",
                     "median_s": m, "samples_s": measured, "phases_median_s": phase_medians},
        "baseline": {"what": f"the same command and environment by hand ({' '.join(argv[-2:])}) until /api answers",
                     "median_s": b, "samples_s": baseline},
        "ratio": ratio(m, b),
        "repetitions": reps,
        "target": {"text": f"ratio <= {TARGET}", "met": ratio(m, b) is not None and ratio(m, b) <= TARGET},
    }
