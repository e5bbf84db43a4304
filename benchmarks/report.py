"""RESULTS.md from the results dict: the machine, a table of ratios and targets, then each benchmark's details."""

ORDER = ("spawn", "gateway", "scratch", "storm", "config", "make_test")
NAMES = {"spawn": "Spawn overhead", "gateway": "Gateway overhead", "scratch": "Scratch credentials (cold fetch)",
         "storm": "Login storm",
         "config": "Configuration", "make_test": "`make test`"}


def _s(seconds):
    return "–" if seconds is None else f"{seconds:.2f} s"


def _ms(ms):
    return "–" if ms is None else f"{ms:.0f} ms"


def _x(value):
    return "–" if value is None else f"{value:.2f}"


def _met(target):
    return {True: "yes", False: "**no**", None: "not measured"}[target.get("met")]


def _row(name, r):
    if "error" in r:
        return f"| {NAMES[name]} | failed: {r['error'][:120]} | | | | |"
    if "not_measured" in r:
        return f"| {NAMES[name]} | {r['not_measured']} | | | {r['target']['text']} | not measured |"
    if name == "storm":
        api, base = r["api_latency_ms"], r["baseline"]["api_latency_ms"]
        return (f"| Login storm: hub API p99 ({r['succeeded']}/{r['users']} servers up, {len(r['failures'])} failures) "
                f"| {_ms(api['p99'])} | {_ms(base['p99'])} (idle hub) | {_x(r['ratio'])} | {r['target']['text']} "
                f"| {_met(r['target'])} |")
    if name == "scratch":  # milliseconds, not seconds
        return (f"| {NAMES[name]} | {_ms(r['measured']['median_s'] * 1000)} | {_ms(r['baseline']['median_s'] * 1000)} "
                f"| {_x(r['ratio'])} | {r['target']['text']} | {_met(r['target'])} |")
    return (f"| {NAMES[name]} | {_s(r['measured']['median_s'])} | {_s(r['baseline']['median_s'])} | {_x(r['ratio'])} "
            f"| {r['target']['text']} | {_met(r['target'])} |")


def summary_table(results):
    lines = ["| Benchmark | Measured | Baseline | Ratio | Target | Met |", "|---|---|---|---|---|---|"]
    lines += [_row(name, results["benchmarks"][name]) for name in ORDER if name in results["benchmarks"]]
    return "\n".join(lines)


def markdown(results):
    m = results["machine"]
    out = [
        "# Benchmarks",
        "",
        "Written by `make bench` (`.venv/dev/bin/python -m benchmarks`; the figures are also in `results.json`).",
        "Absolute times vary between runs on a shared machine, so each figure is divided by a baseline timed in",
        "the same run, on the same machine, right beside it (runs alternate where they can).",
        "",
        f"- Date: {m['date']}; the whole bench took {results['duration_s']:.0f} s",
        f"- Machine: {m['nproc']} CPUs ({m['cpu_model']}), {m['memory_gib']} GiB memory, {m['platform']}",
        f"- Python {m['python']}; load average when the bench started: "
        f"{', '.join(map(str, m['load_average_at_start']))} (other work on this machine shares the CPUs)",
        "",
        summary_table(results),
        "",
    ]
    notes = results.get("notes", []) + results["benchmarks"].get("storm", {}).get("notes", [])
    if notes:
        out += ["Notes: " + "; ".join(notes), ""]
    for name in ORDER:
        r = results["benchmarks"].get(name)
        if r is None or "error" in r or "not_measured" in r:
            continue
        out += [f"## {r['title']}", ""]
        if "measured" in r:
            out += [f"- Measured: {r['measured']['what']}: median {_s(r['measured']['median_s'])}"
                    + _samples(r["measured"]),
                    f"- Baseline: {r['baseline']['what']}: median {_s(r['baseline']['median_s'])}"
                    + _samples(r["baseline"]),
                    f"- Ratio {_x(r['ratio'])}; target {r['target']['text']}: {_met(r['target'])}"]
        out += DETAILS[name](r) + [""]
    return "\n".join(out) + "\n"


def _samples(part):
    samples = part.get("samples_s")
    return f" (runs: {', '.join(f'{s:.2f}' for s in samples)})" if samples and len(samples) > 1 else ""


def _spawn(r):
    p = r["measured"].get("phases_median_s") or {}
    if not p:
        return []
    return [
        "",
        "Where a hub spawn's time goes (medians, from a watcher outside the hub that sees the server process",
        "appear and answer):",
        "",
        f"- hub until the server process exists: {_s(p.get('hub_until_process_s'))}: JupyterHub's spawn handler, the",
        "  auth refresh against the GitHub stand-in (auth state is on), hub_config's environment and the local",
        "  spawner's profile handling: the only part our configuration adds to",
        f"- the server's own start-up: {_s(p.get('server_startup_s'))} (by hand: {_s(r['baseline']['median_s'])})",
        f"- from the server's first answer until the hub reports it ready: {_s(p.get('hub_after_server_answers_s'))}:",
        "  JupyterHub's readiness check (jupyterhub.utils.wait_for_http_server polls with exponential backoff,",
        "  random waits of up to 0.2, 0.4, 0.8, 1.6, 3.2 s, not configurable) and adding the proxy route. Not ours:",
        "  it is how JupyterHub 5.5 notices any server, on Kubernetes as well.",
    ]


GATEWAY_PHASES = (("cluster_s", "cluster created"), ("workers_s", "2 workers connected"),
                  ("compute_s", "computation"),
                  ("compute_again_s", "the same computation again (not in the ratio)"),
                  ("shutdown_s", "shutdown (not in the ratio)"))


def _gateway(r):
    m, b = r["measured"]["phases_median_s"], r["baseline"]["phases_median_s"]
    lines = ["", "| Phase (median) | Gateway | LocalCluster |", "|---|---|---|"]
    lines += [f"| {label} | {_s(m.get(key))} | {_s(b.get(key))} |" for key, label in GATEWAY_PHASES]
    lines += ["",
              "A gateway cluster's scheduler and each worker are new processes (`dask scheduler`, `dask worker`:",
              "a cold interpreter importing distributed), started one after the other by the gateway and reached",
              "through its proxy (TLS); LocalCluster runs its scheduler inside the already warm calling process",
              "and starts its workers with it. That difference is dask-gateway's design, not our configuration."]
    gw = r.get("gateway_server")
    if gw:
        lines += ["", f"The dask-gateway-server process itself used {_s(gw.get('cpu_s'))} of CPU over the "
                      f"{gw['runs']} measured gateway runs."]
    if r.get("profile"):
        lines += _profile_lines(r["profile"])
    return lines


NOT_RUNNING = """{n} of {users} users were first shown the hub's "server not running" page after posting the
spawn form, while their spawn was starting: before it marks a spawn pending, the hub refreshes the user's
GitHub auth (oauthenticator's refresh_pre_spawn, on by default because hub_config enables auth_state),
which under load takes longer than the 1 s the spawn form waits before redirecting. The bench reloads the
page, as a user would, until the progress shows; these users' servers did start and count as successes."""


def _storm(r):
    base, ratios, api = r["baseline"], r["ratios"], r["api_latency_ms"]
    hub_cpu = r.get("hub_cpu_s")
    cpu = "" if hub_cpu is None else (f", the hub used {_s(hub_cpu)} of CPU meanwhile (it is one Python "
                                      "process: at most one core)")
    login, spawn = r["login_s"], r["spawn_s"]
    lines = [
        f"Servers: {r['server_command']}. {r['succeeded']} of {r['users']} users logged in and got a running "
        f"server; the storm took {_s(r['storm_wall_s'])}{cpu}.",
        "",
        f"| | p50 | p95 | p99 | baseline ({base['what']}) | p50 / baseline | p99 / baseline |",
        "|---|---|---|---|---|---|---|",
        f"| login (OAuth through the stand-in) | {_s(login['p50'])} | {_s(login['p95'])} | {_s(login['p99'])} "
        f"| {_s(base['login_s'])} | {_x(ratios['login_p50'])} | {_x(ratios['login_p99'])} |",
        f"| spawn (form post until ready) | {_s(spawn['p50'])} | {_s(spawn['p95'])} | {_s(spawn['p99'])} "
        f"| {_s(base['spawn_s'])} | {_x(ratios['spawn_p50'])} | {_x(ratios['spawn_p99'])} |",
        f"| hub API GET /hub/api/ ({api['n']} probes) | {_ms(api['p50'])} | {_ms(api['p95'])} | {_ms(api['p99'])} "
        f"| {_ms(base['api_latency_ms']['p99'])} (p99) | | {_x(ratios['api_p99'])} |",
        "",
        "Spawn: from the form post until the progress stream (the spawn-pending page's EventSource) says ready.",
    ]
    if r.get("shown_not_running"):
        lines += ["", NOT_RUNNING.format(n=r["shown_not_running"], users=r["users"])]
    if r["failures"]:
        lines += ["", "Failures: " + "; ".join(f"{f['user']}: {f['error']}" for f in r["failures"][:10])]
    if r.get("profile"):
        p = r["profile"]
        lines += ["", f"Profile: {p['what']}: API p99 {_ms(p['api_latency_ms']['p99'])}, hub CPU "
                      f"{_s(p.get('hub_cpu_s'))} in {_s(p['storm_wall_s'])}."]
        lines += _profile_lines(p)
    return lines


def _config(r):
    lines = [f"- CPU time (user + system of the child): {_s(r['measured']['cpu_median_s'])} against "
             f"{_s(r['baseline']['cpu_median_s'])} (ratio {_x(r['cpu_ratio'])}); clusters: {', '.join(r['clusters'])}"]
    if r.get("profile"):
        lines += _profile_lines(r["profile"])
    return lines


def _scratch(r):
    cached, storm, plain = r["cached"], r["storm"], r["plain_storm"]
    return [
        f"- Cached (token check only): median {_ms(cached['p50_s'] * 1000)}, p95 {_ms(cached['p95_s'] * 1000)} "
        f"({_x(r['cached_ratio'])} × the plain request)",
        f"- {storm['users']} users fetching at once, each for the first time: p50 {_ms(storm['p50_s'] * 1000)}, p95 "
        f"{_ms(storm['p95_s'] * 1000)}, all done in {_ms(storm['wall_s'] * 1000)}; {storm['users']} plain requests at "
        f"once: p50 {_ms(plain['p50_s'] * 1000)}, p95 {_ms(plain['p95_s'] * 1000)}, done in {_ms(plain['wall_s'] * 1000)} "
        f"(p95 ratio {_x(r['storm_ratio_p95'])})",
    ]


def _make_test(r):
    return [f"- Source: {r['source']}"]


def _profile_lines(p):
    if p.get("skipped"):
        return ["", f"Profile skipped: {p['skipped']}"]
    lines = ["", f"Profile ({p['tool']}):", ""]
    if "self_time_by_owner_s" in p:
        total = p["total_s"] or 1
        lines.append("- self time by owner: " + ", ".join(
            f"{k} {v / total:.0%}" for k, v in p["self_time_by_owner_s"].items() if v / total >= 0.01))
        imports = p.get("slowest_third_party_imports") or []
        if imports:
            lines.append("- slowest third-party imports (cumulative, under the profiler): " + ", ".join(
                f"{i['where']} {_s(i['cumulative_s'])}" for i in imports))
        ours = p.get("our_functions") or []
        if ours:
            lines.append("- our functions (cumulative, under the profiler): " + ", ".join(
                f"{f['where']} {_s(f['cumulative_s'])}" for f in ours[:5]))
    if "self_share_by_owner" in p:
        lines.append(f"- {p['samples']} on-CPU samples; by the owner of the running function: " + ", ".join(
            f"{k} {v:.0%}" for k, v in p["self_share_by_owner"].items() if v >= 0.01))
        lines.append(f"- our code (hub_config.py, gateway_config.py, deployer/) running itself: "
                     f"{p['self_share_by_owner'].get('ours', 0.0):.1%} of the samples; with everything it calls "
                     f"(e.g. the upstream function it wraps): {p['share_with_our_code_on_the_stack']:.1%}")
        if p.get("share_by_feature"):
            lines.append(f"- samples under what our configuration turns on: {p['share_of_all_features']:.0%} in all; "
                         + ", ".join(f"{k} {v:.0%}" for k, v in p["share_by_feature"].items()))
        lines.append("- by application call site (innermost frame of ours, JupyterHub's, oauthenticator's, "
                     "dask-gateway's): " + ", ".join(
                         f"{f['where']} {f['share']:.0%}" for f in p.get("hottest_application_call_sites", [])[:8]))
        lines.append("- hottest functions: " + ", ".join(
            f"{f['where']} {f['share']:.0%}" for f in p["hottest_leaf_functions"][:6]))
    return lines


DETAILS = {"spawn": _spawn, "gateway": _gateway, "scratch": _scratch, "storm": _storm, "config": _config, "make_test": _make_test}
