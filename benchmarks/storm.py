"""Login storms: 50, then 200 users log in through the GitHub stand-in and start servers at once, on our hub,
a stock hub (benchmarks/variants.py) and our hub on PostgreSQL (benchmarks/postgres.py), side by side.

Each user (a thread with its own browser-like session) runs the real OAuth flow (hub -> stand-in authorize
page -> POST login -> hub callback, which asks the stand-in for the token, the user, the teams), then posts
the hub's spawn form with the default profile and follows the spawn-pending page's progress stream to its
`ready` event, as a browser does. A prober times GET /hub/api/ with a token every 100 ms throughout.
The ratio counts ours against stock (the database: ours on PostgreSQL against ours on SQLite); a few users
one at a time and the prober on each idle hub are reported beside. A last storm on our hub runs under py-spy:
the hub's CPU split into our code, the features our configuration turns on, and upstream.
The servers are benchmarks/light_server.py, not JupyterLab (see there why): the stack's hub_layer takes the
server command from the runtime's notebook environment, which the bench points at a directory holding
only that server. The stand-in's users file is a generated copy of config/github-standin.yaml with the
storm's users added to the cluster's allowed team.
"""

import html
import json
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import requests

from . import postgres, procs, profiling, variants
from .common import log, median, percentile, ratio, summary

STORM_SIZES = (50, 200)
PROFILED_USERS = 50
SOLO_USERS = 3
RATIO_TARGET = 1.1
API_TARGET_MS = 250
STOP_TIMEOUT_S = 180
RETRY_AFTER_429_S = 2.0
SPAWN_TIMEOUT_S = 120
PROBE_INTERVAL_S = 0.1
IDLE_PROBE_S = 3.0
TIMEOUT = 60
# What the hub does only because of choices in hub_config.py (py-spy frame names): charged to our configuration.
CONFIG_FEATURES = {
    "GitHub auth refreshed (auth_state on; before a spawn only when older than auth_refresh_age)":
        ["BaseHandler.refresh_auth"],
    "encrypted auth state saved (enable_auth_state)": ["User.save_auth_state", "User.get_auth_state"],
    "JupyterHub groups from GitHub teams (manage_groups)": ["User.sync_groups"],
    "teams fetched into auth state (populate_teams_in_auth_state)": ["GitHubOAuthenticator.update_auth_model"],
    "team membership checks (allowed_organizations)": ["GitHubOAuthenticator.check_allowed",
                                                        "GitHubOAuthenticator._check_membership_allowed_organizations"],
}


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
        while True:
            reply = session.post(hub_url + html.unescape(action.group(1)), data={"profile": profile}, timeout=TIMEOUT)
            # 429: more spawns pending than JupyterHub.concurrent_spawn_limit (100; the chart's 64). The page
            # asks the user to try again in a moment; the user does, within the spawn timeout.
            if reply.status_code != 429 or time.monotonic() - spawn_began > SPAWN_TIMEOUT_S:
                break
            record["too_many_spawns"] = record.get("too_many_spawns", 0) + 1
            time.sleep(RETRY_AFTER_429_S)
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
    """All `logins` at once; (records, busy prober, wall seconds, CPU seconds of the hub and the GitHub
    stand-in meanwhile, profile or None)."""
    hub_pid = procs.tagged_process(stack.stack_id, "bin/jupyterhub")
    standin_pid = procs.tagged_process(stack.stack_id, "deployer.local.github_standin")
    cpu_before = procs.cpu_seconds(hub_pid)
    standin_before = procs.cpu_seconds(standin_pid)
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
    standin_after = procs.cpu_seconds(standin_pid)
    standin_cpu = None if standin_before is None or standin_after is None else standin_after - standin_before
    profile_result = sampler.stop() if sampler else None
    records = [r or {"user": logins[i], "error": "thread did not finish"} for i, r in enumerate(records)]
    return records, busy, wall, {"hub": hub_cpu, "standin": standin_cpu}, profile_result


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


def stop_servers(stack, names):
    """Stop these users' servers (8 at a time), so that the next round starts from the same idle hub."""
    from tests.smoke.hub import HubAPI

    hub = HubAPI(stack.hub_url, stack.api_token)
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda name: hub.stop_server(name, timeout=STOP_TIMEOUT_S), names))


def _logins(prefix, n):
    return [f"{prefix}{i:03d}" for i in range(1, n + 1)]


def _plan(sizes):
    """(size, round letter, backwards) for each round: every size twice, the variants in one order (ABC)
    then the other (CBA), so that each variant sees early and late machine load."""
    return [(size, letter, backwards) for size in sizes for letter, backwards in (("a", False), ("b", True))]


def run(data_dir, sizes=STORM_SIZES, solo=SOLO_USERS, light=True, database=True):
    from contextlib import ExitStack

    from deployer.local.processes import free_port

    plan = _plan(sizes)
    logins = {(size, letter): _logins(f"s{size}{letter}", size) for size, letter, _ in plan}
    solo_logins, profiled_logins = _logins("solo", solo), _logins("prof", PROFILED_USERS)
    everyone = [name for names in logins.values() for name in names] + solo_logins + profiled_logins
    notes = []
    with ExitStack() as running:
        variant_urls = {"ours": None, "stock": None}
        why_not = postgres.missing() if database else "not asked for (--no-database)"
        if why_not:
            notes.append(f"no PostgreSQL comparison: {why_not}")
        else:
            variant_urls["ours-postgresql"] = running.enter_context(postgres.server(free_port()))
        stacks = {}
        for name, db_url in variant_urls.items():
            stacks[name] = running.enter_context(variants.bench_stack(
                data_dir / name, "stock" if name == "stock" else "ours", everyone, notes, light=light, db_url=db_url))
        order = list(stacks)
        profile = stacks["ours"].facts["notebook"]["sizes"][0]
        baselines = {name: _baseline(stack, solo_logins, profile) for name, stack in stacks.items()}
        rounds = {}
        for size, letter, backwards in plan:
            for name in (reversed(order) if backwards else order):
                stack = stacks[name]
                records, busy, wall, cpu, _ = storm_round(stack, logins[(size, letter)], profile)
                started = [r["user"] for r in records if "spawn_s" in r]
                if letter == "a" and name in ("ours", "stock"):
                    _check_server_command(stack, started, light)
                log(f"storm {size} ({name}, round {letter}): {wall:.1f} s, hub CPU {cpu['hub'] or 0:.1f} s, API p99 "
                    f"{percentile(busy.latencies_ms, 99) or 0:.0f} ms, failures: "
                    f"{[r for r in records if 'error' in r][:3]}")
                rounds.setdefault((size, name), []).append((records, busy, wall, cpu))
                stop_servers(stack, started)
        results = {str(size): {name: _round_result(rounds[(size, name)], baselines[name])
                               for name in order} for size in sizes}
        result = _result(results, sizes, order, light, notes)
        # A storm of new users on our hub, sampled: where the hub's CPU goes (ours / features / upstream).
        records, busy, wall, cpu, sampled = storm_round(stacks["ours"], profiled_logins, profile,
                                                            data_dir / "storm-hub.pyspy.txt")
        result["profile"] = {
            "what": f"one more storm of {PROFILED_USERS} new users on our hub (SQLite), the hub sampled by py-spy",
            "api_latency_ms": summary(busy.latencies_ms), "storm_wall_s": wall, "hub_cpu_s": cpu["hub"],
            "failures": [r for r in records if "error" in r], **sampled}
        return result


def _baseline(stack, solo_logins, profile):
    """The prober on the idle hub, then a few users one at a time."""
    idle = Prober(stack.hub_url, stack.api_token)
    idle.start()
    time.sleep(IDLE_PROBE_S)
    idle.stop()
    solos = [login_and_spawn(stack.hub_url, name, profile) for name in solo_logins]
    stop_servers(stack, [r["user"] for r in solos if "spawn_s" in r])
    return {"login_s": median([r["login_s"] for r in solos if "login_s" in r]),
            "spawn_s": median([r["spawn_s"] for r in solos if "spawn_s" in r]),
            "api_latency_ms": summary(idle.latencies_ms), "errors": [r for r in solos if "error" in r]}


def _round_result(rounds, baseline):
    """One variant at one storm size, its rounds pooled."""
    records = [r for recs, *_ in rounds for r in recs]
    latencies = [x for _, busy, *_ in rounds for x in busy.latencies_ms]
    failures = [r for r in records if "error" in r] + [
        {"user": "api-prober", "error": e} for _, busy, *_ in rounds for e in busy.failures]
    def cpu_median(process):
        return median([c[process] for *_, c in rounds if c[process] is not None])

    return {
        "rounds": len(rounds), "users": len(records),
        "succeeded": sum(1 for r in records if "spawn_s" in r),
        "shown_not_running": sum(1 for r in records if r.get("shown_not_running")),
        "told_too_many_spawns": sum(1 for r in records if r.get("too_many_spawns")),
        "failures": failures,
        "storm_wall_s": median([w for _, _, w, _ in rounds]),
        "hub_cpu_s": cpu_median("hub"),
        "standin_cpu_s": cpu_median("standin"),
        "login_s": summary([r["login_s"] for r in records if "login_s" in r]),
        "spawn_s": summary([r["spawn_s"] for r in records if "spawn_s" in r]),
        "total_s": summary([r["login_s"] + r["spawn_s"] for r in records if "spawn_s" in r]),
        "api_latency_ms": summary(latencies),
        "baseline": baseline,
    }


def _result(results, sizes, order, light, notes):
    comparisons = {}
    met = True
    for size in map(str, sizes):
        ours, stock = results[size]["ours"], results[size]["stock"]
        row = {"total_p99": ratio(ours["total_s"]["p99"], stock["total_s"]["p99"]),
               "total_p50": ratio(ours["total_s"]["p50"], stock["total_s"]["p50"]),
               "api_p99": ratio(ours["api_latency_ms"]["p99"], stock["api_latency_ms"]["p99"]),
               "hub_cpu": ratio(ours["hub_cpu_s"], stock["hub_cpu_s"])}
        if "ours-postgresql" in results[size]:
            pg = results[size]["ours-postgresql"]
            row["postgresql_vs_sqlite"] = {
                "total_p99": ratio(pg["total_s"]["p99"], ours["total_s"]["p99"]),
                "total_p50": ratio(pg["total_s"]["p50"], ours["total_s"]["p50"]),
                "api_p99": ratio(pg["api_latency_ms"]["p99"], ours["api_latency_ms"]["p99"]),
                "hub_cpu": ratio(pg["hub_cpu_s"], ours["hub_cpu_s"])}
        comparisons[size] = row
        met = met and not ours["failures"] and row["total_p99"] is not None and row["total_p99"] <= RATIO_TARGET
    headline = str(sizes[-1])
    return {
        "title": f"Login storm: {' and '.join(map(str, sizes))} users log in and start servers at once, "
                 "our hub vs a stock one",
        "server_command": ("benchmarks/light_server.py (a stdlib HTTP server) in place of jupyterhub-singleuser"
                           if light else "the real jupyterhub-singleuser of .venv/user"),
        "variants": order,
        "by_size": results,
        "comparisons": comparisons,
        "measured": {"what": f"our hub, {headline} users: per-user login + spawn p99",
                     "p99_s": results[headline]["ours"]["total_s"]["p99"]},
        "baseline": {"what": f"stock hub, {headline} users: per-user login + spawn p99",
                     "p99_s": results[headline]["stock"]["total_s"]["p99"]},
        "ratio": comparisons[headline]["total_p99"],
        "target": {"text": f"0 failures and per-user login + spawn p99 <= {RATIO_TARGET}x the stock hub's, "
                           "at every size", "met": met},
        "retry_after_429_s": RETRY_AFTER_429_S,
        "notes": notes,
    }
