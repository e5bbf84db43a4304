"""Login storm: 50 users log in through the GitHub stand-in and start servers at once, on this machine.

Each user (a thread with its own browser-like session) runs the real OAuth flow (hub -> stand-in authorize
page -> POST login -> hub callback, which asks the stand-in for the token, the user, the teams), then posts
the hub's spawn form with the default profile and follows the spawn-pending page's progress stream to its
`ready` event, as a browser does. A prober times GET /hub/api/ with a token every 100 ms throughout.
Baselines, in the same run and on the same stack: the same login and spawn for a few users one at a time,
and the prober on the idle hub.
The servers are benchmarks/light_server.py, not JupyterLab (see there why): the stack's hub_layer takes the
server command from the runtime's notebook environment, which the bench points at a directory holding
only that server. The stand-in's users file is a generated copy of config/github-standin.yaml with the
storm's users added to the cluster's allowed team.
"""

import contextlib
import html
import json
import re
import threading
import time
from unittest import mock
from urllib.parse import urlsplit

import requests
import yaml

from . import procs, profiling
from .common import HUB_PY, REPO, log, median, percentile, ratio, start_stack, summary

STORM_USERS = 50
SOLO_USERS = 3
API_TARGET_MS = 250
SPAWN_TIMEOUT_S = 120
PROBE_INTERVAL_S = 0.1
IDLE_PROBE_S = 5.0
TIMEOUT = 60
# What the hub does only because of choices in hub_config.py (py-spy frame names): charged to our configuration.
CONFIG_FEATURES = {
    "GitHub auth refresh before each spawn (refresh_pre_spawn, on with auth_state)": ["BaseHandler.refresh_auth"],
    "encrypted auth state saved (enable_auth_state)": ["User.save_auth_state", "User.get_auth_state"],
    "JupyterHub groups from GitHub teams (manage_groups)": ["User.sync_groups"],
    "teams fetched into auth state (populate_teams_in_auth_state)": ["GitHubOAuthenticator.update_auth_model"],
    "team membership checks (allowed_organizations)": ["GitHubOAuthenticator.check_allowed",
                                                        "GitHubOAuthenticator._check_membership_allowed_organizations"],
}


def write_users_file(path, logins):
    from deployer.local import stack as stack_module

    data = yaml.safe_load(stack_module.STANDIN_FILE.read_text())
    team_org, team = _allowed_team()
    for i, login in enumerate(logins):
        data["users"][login] = {"id": 90000 + i, "name": f"Bench {login}", "email": f"{login}@example.org"}
        data["orgs"][team_org]["teams"][team].append(login)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def _allowed_team():
    from deployer import facts

    org, team = facts.load("local")["github"]["allowed_teams"][0].split(":")
    return org, team


def write_light_env(directory):
    """A directory shaped like the notebook environment whose jupyterhub-singleuser is the light server."""
    bin_dir = directory / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    script = bin_dir / "jupyterhub-singleuser"
    script.write_text(f'#!/bin/sh\nexec "{HUB_PY}" -I "{REPO / "benchmarks" / "light_server.py"}" "$@"\n')
    script.chmod(0o755)
    return directory


@contextlib.contextmanager
def storm_stack(data_dir, logins, notes, light=True, overrides=None):
    """A LocalStack whose stand-in also knows `logins` and (light=True) whose servers are the light server;
    `overrides` as LocalStack's (tests/load shortens the culler's timeout)."""
    from deployer.local import stack as stack_module

    # Both are the stack's internals (it has no option for either yet): fail loudly if they change, rather
    # than spawn fifty real JupyterLab servers or log in users the stand-in does not know.
    if not hasattr(stack_module, "STANDIN_FILE"):
        raise RuntimeError("deployer.local.stack has no STANDIN_FILE any more: the storm cannot add its users")
    if light and not hasattr(stack_module.LocalStack, "_runtime"):
        raise RuntimeError("deployer.local.stack.LocalStack has no _runtime any more: the storm cannot swap the "
                           "server command for the light server")
    data_dir.mkdir(parents=True, exist_ok=True)
    users_file = data_dir / "bench-standin-users.yaml"
    write_users_file(users_file, logins)
    light_env = write_light_env(data_dir / "light-env") if light else None

    class StormStack(stack_module.LocalStack):
        def _runtime(self):
            runtime = super()._runtime()
            if light_env:
                runtime["paths"]["user_venv"] = str(light_env)
            return runtime

    with mock.patch.object(stack_module, "STANDIN_FILE", users_file):
        stack = start_stack(lambda: StormStack(data_dir, port=0, overrides=overrides), notes)
        try:
            yield stack
        finally:
            stack.stop()


class Prober(threading.Thread):
    """GET /hub/api/ with a token every PROBE_INTERVAL_S; latencies in ms, failures counted."""

    def __init__(self, hub_url, token):
        super().__init__(daemon=True)
        self.url = f"{hub_url}/hub/api/"
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"token {token}"
        self.latencies_ms, self.failures = [], []
        self.halt = threading.Event()

    def run(self):
        while not self.halt.is_set():
            started = time.monotonic()
            try:
                status = self.session.get(self.url, timeout=TIMEOUT).status_code
            except requests.RequestException as e:
                status = repr(e)
            elapsed = time.monotonic() - started
            if status == 200:
                self.latencies_ms.append(elapsed * 1000)
            else:
                self.failures.append(str(status))
            self.halt.wait(max(0.0, PROBE_INTERVAL_S - elapsed))

    def stop(self):
        self.halt.set()
        self.join(TIMEOUT)


def _wait_ready(session, hub_url, name, page, record):
    """Follow the spawn-pending page's progress stream (as its EventSource does) to the `ready` event.

    Under load the hub may answer the spawn form before the spawn is even pending (it first refreshes the
    user's GitHub auth, and redirects after 1 s whatever the state): the pending page then says the server
    is not running. Like a user who reloads, the page is fetched again until it shows the progress; the
    user is counted in `shown_not_running`.
    """
    deadline = time.monotonic() + SPAWN_TIMEOUT_S
    while True:
        if urlsplit(page.url).path.startswith(f"/user/{name}/"):
            return None  # the hub sent the browser straight to the running server
        found = re.search(r'new EventSource\("([^"]+)"\)', page.text)
        if found:
            break
        if page.status_code != 200 or "not_running" not in page.text:
            return f"spawn-pending page: HTTP {page.status_code} without a progress stream"
        record["shown_not_running"] = True
        if time.monotonic() > deadline:
            return f"the spawn-pending page still said 'not running' after {SPAWN_TIMEOUT_S} s"
        time.sleep(0.5)
        page = session.get(page.url, timeout=TIMEOUT)
    with session.get(hub_url + html.unescape(found.group(1)), stream=True, timeout=SPAWN_TIMEOUT_S) as stream:
        if stream.status_code != 200:
            return f"progress stream: HTTP {stream.status_code}"
        for line in stream.iter_lines():
            if not line.startswith(b"data:"):
                continue
            event = json.loads(line[len(b"data:"):])
            if event.get("ready"):
                return None
            if event.get("failed"):
                return f"spawn failed: {event.get('message')}"
    return "progress stream ended without a ready event"


def login_and_spawn(hub_url, name, profile, start=None):
    """One user's login and spawn, as a browser does them; a record with login_s, spawn_s or the error."""
    from tests.smoke.login import standin_login

    record = {"user": name}
    if start is not None:
        start.wait()
    began = time.monotonic()
    try:
        session = standin_login(hub_url, name)
        page = session.login_response
        landed = urlsplit(page.url).path
        if page.status_code != 200 or not landed.startswith("/hub/spawn"):
            record["error"] = f"login ended at {landed} with HTTP {page.status_code}"
            return record
        record["login_s"] = time.monotonic() - began
        action = re.search(r'id="spawn_form"\s+action="([^"]+)"', page.text)
        if not action:
            record["error"] = f"no spawn form on {landed}"
            return record
        spawn_began = time.monotonic()
        reply = session.post(hub_url + html.unescape(action.group(1)), data={"profile": profile}, timeout=TIMEOUT)
        landed = urlsplit(reply.url).path
        if reply.status_code != 200 or not landed.startswith((f"/hub/spawn-pending/{name}", f"/user/{name}/")):
            record["error"] = f"spawn form led to {landed} with HTTP {reply.status_code}"
            return record
        error = _wait_ready(session, hub_url, name, reply, record)
        if error:
            record["error"] = error
            return record
        record["spawn_s"] = time.monotonic() - spawn_began
    except (requests.RequestException, ValueError) as e:
        record["error"] = f"{type(e).__name__}: {e}"
    return record


def storm_round(stack, logins, profile, sampler_path=None):
    """All `logins` at once; (records, busy prober, wall seconds, hub CPU seconds, profile or None)."""
    hub_pid = procs.tagged_process(stack.stack_id, "bin/jupyterhub")
    cpu_before = procs.cpu_seconds(hub_pid)
    sampler = profiling.Sampler(hub_pid, sampler_path, features=CONFIG_FEATURES) if sampler_path else None
    start = threading.Event()
    records = [None] * len(logins)

    def user(i):
        records[i] = login_and_spawn(stack.hub_url, logins[i], profile, start)

    threads = [threading.Thread(target=user, args=(i,), daemon=True) for i in range(len(logins))]
    busy = Prober(stack.hub_url, stack.api_token)
    busy.start()
    for thread in threads:
        thread.start()
    began = time.monotonic()
    start.set()
    for thread in threads:
        thread.join(SPAWN_TIMEOUT_S + 2 * TIMEOUT)
    wall = time.monotonic() - began
    busy.stop()
    cpu_after = procs.cpu_seconds(hub_pid)
    hub_cpu = None if cpu_before is None or cpu_after is None else cpu_after - cpu_before
    profile_result = sampler.stop() if sampler else None
    records = [r or {"user": logins[i], "error": "thread did not finish"} for i, r in enumerate(records)]
    return records, busy, wall, hub_cpu, profile_result


def _check_server_command(stack, started, light):
    """The servers that ran are the ones the results say ran."""
    from deployer.local.processes import STACK_ID_VAR

    pid = procs.find_server(started[0], STACK_ID_VAR, stack.stack_id) if started else None
    if pid is None:
        raise RuntimeError(f"cannot find {started[:1]}'s server process to check what it runs")
    argv = " ".join(procs.process_image(pid)[0])
    if light != ("light_server.py" in argv):
        raise RuntimeError(f"{started[0]}'s server runs `{argv}`, not the {'light' if light else 'real'} server")
    return argv


def run(data_dir, users=STORM_USERS, solo=SOLO_USERS, light=True):
    storm_logins = [f"storm{i:02d}" for i in range(1, users + 1)]
    profiled_logins = [f"prof{i:02d}" for i in range(1, users + 1)]
    solo_logins = [f"solo{i}" for i in range(1, solo + 1)]
    notes = []
    with storm_stack(data_dir, storm_logins + profiled_logins + solo_logins, notes, light=light) as stack:
        profile = stack.facts["notebook"]["sizes"][0]
        # Baselines on the idle hub: the prober alone, then users one at a time.
        idle = Prober(stack.hub_url, stack.api_token)
        idle.start()
        time.sleep(IDLE_PROBE_S)
        idle.stop()
        solos = [login_and_spawn(stack.hub_url, name, profile) for name in solo_logins]
        log(f"storm: idle hub API p99 {percentile(idle.latencies_ms, 99):.1f} ms; one at a time: {solos}")
        records, busy, wall, hub_cpu, _ = storm_round(stack, storm_logins, profile)
        argv = _check_server_command(stack, [r["user"] for r in records if "spawn_s" in r], light)
        log(f"storm: {users} users in {wall:.1f} s, hub API p99 {percentile(busy.latencies_ms, 99):.0f} ms, "
            f"failures: {[r for r in records if 'error' in r]}")
        result = _result(records, solos, idle, busy, wall, light, hub_cpu)
        result["server_argv_seen"] = argv
        result["notes"] = notes
        if not result["target"]["met"]:
            # A second storm of as many new users, with the hub sampled: where its time goes.
            records, busy, wall, hub_cpu, sampled = storm_round(stack, profiled_logins, profile,
                                                                data_dir / "storm-hub.pyspy.txt")
            result["profile"] = {
                "what": f"a second storm of {users} new users (the first storm's servers still running), "
                        "the hub sampled by py-spy",
                "api_latency_ms": summary(busy.latencies_ms), "storm_wall_s": wall, "hub_cpu_s": hub_cpu,
                "failures": [r for r in records if "error" in r], **sampled}
        return result


def _result(records, solos, idle, busy, storm_s, light, hub_cpu_s):
    logins = [r["login_s"] for r in records if "login_s" in r]
    spawns = [r["spawn_s"] for r in records if "spawn_s" in r]
    failures = [r for r in records if "error" in r] + [{"user": "api-prober", "error": e} for e in busy.failures]
    solo_login = median([r["login_s"] for r in solos if "login_s" in r])
    solo_spawn = median([r["spawn_s"] for r in solos if "spawn_s" in r])
    api, api_idle = summary(busy.latencies_ms), summary(idle.latencies_ms)
    met = not failures and api["p99"] is not None and api["p99"] < API_TARGET_MS
    return {
        "title": f"Login storm: {len(records)} users log in and start servers at once",
        "server_command": ("benchmarks/light_server.py (a stdlib HTTP server) in place of jupyterhub-singleuser"
                           if light else "the real jupyterhub-singleuser of .venv/user"),
        "users": len(records),
        "succeeded": sum(1 for r in records if "spawn_s" in r),
        "shown_not_running": sum(1 for r in records if r.get("shown_not_running")),
        "failures": failures,
        "storm_wall_s": storm_s,
        "hub_cpu_s": hub_cpu_s,
        "login_s": summary(logins),
        "spawn_s": summary(spawns),
        "api_latency_ms": api,
        "baseline": {
            "what": f"{len(solos)} users one at a time on the idle hub (median), the prober on the idle hub",
            "login_s": solo_login, "spawn_s": solo_spawn, "api_latency_ms": api_idle,
            "errors": [r for r in solos if "error" in r],
        },
        "ratios": {
            "login_p50": ratio(percentile(logins, 50), solo_login),
            "login_p99": ratio(percentile(logins, 99), solo_login),
            "spawn_p50": ratio(percentile(spawns, 50), solo_spawn),
            "spawn_p99": ratio(percentile(spawns, 99), solo_spawn),
            "api_p99": ratio(api["p99"], api_idle["p99"]),
        },
        "ratio": ratio(api["p99"], api_idle["p99"]),
        "target": {"text": f"0 failures and hub API p99 < {API_TARGET_MS} ms", "met": met},
    }
