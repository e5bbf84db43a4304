"""The reliability table: each fault or attack tried, its outcome, its figures; written to
benchmarks/RELIABILITY.md by the faults tier (tests/faults/conftest.py) at the end of a run."""

import json
import os
import platform
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
RESULTS = REPO / "benchmarks" / "RELIABILITY.md"

FIGURES = {}  # test node id -> [(what, value, unit)]
OUTCOMES = {}  # test node id -> (what the test injects, outcome)


def figure(request, what, value, unit="s"):
    """Record a figure of the running test (a pytest `request`), shown in its row of the table."""
    FIGURES.setdefault(request.node.nodeid, []).append((what, value, unit))
    print(f"figure: {what}: {value} {unit}")


class Stopwatch:
    def __init__(self):
        self.started = time.monotonic()

    def seconds(self):
        return round(time.monotonic() - self.started, 1)


def wait_for(check, what, timeout_s, interval_s=0.25):
    """Poll check() (exceptions count as not yet) until it returns something other than None or False; that
    value (a response of status 4xx counts: `requests` makes it falsy)."""
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        try:
            value = check()
            if value is not None and value is not False:
                return value
        except Exception as e:  # the thing is down: that is what we wait out
            last = e
        time.sleep(interval_s)
    raise AssertionError(f"{what}: not within {timeout_s:.0f} s" + (f" (last error: {last!r})" if last else ""))


def started(item):
    OUTCOMES[item.nodeid] = (describe(item), "not run")


def reported(report):
    """The outcome of a test whose start was recorded: its call, or the setup or teardown that failed it."""
    if report.nodeid not in OUTCOMES or not (report.when == "call" or report.outcome != "passed"):
        return
    outcome = {"passed": "held", "failed": "FAILED", "skipped": "skipped"}[report.outcome]
    if report.outcome == "skipped" and isinstance(report.longrepr, tuple):
        outcome = f"skipped: {report.longrepr[2]}"
    if report.outcome == "failed":
        outcome = "FAILED: " + str(report.longrepr).strip().splitlines()[-1][:200]
    OUTCOMES[report.nodeid] = (OUTCOMES[report.nodeid][0], outcome.replace("|", "/"))


def describe(item):
    """The test's docstring, first sentence; else its name in words."""
    doc = " ".join(line.strip() for line in (item.function.__doc__ or "").strip().splitlines()[:4] if line.strip())
    if doc:
        return doc.split(". ")[0].rstrip(".")
    return item.name.removeprefix("test_").replace("_", " ").capitalize()


def write(path=RESULTS):
    """Rows of this run replace the same tests' rows of earlier runs (the faults and load tiers run apart)."""
    if not OUTCOMES:
        return
    rows_file = path.with_suffix(".json")
    rows = json.loads(rows_file.read_text()) if rows_file.exists() else {}
    for nodeid, (what, outcome) in OUTCOMES.items():
        figures = "; ".join(f"{w}: {v} {u}".strip() for w, v, u in FIGURES.get(nodeid, []))
        rows[nodeid] = {"fault": what, "outcome": outcome, "figures": figures,
                        "run": f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC"}
    rows_file.write_text(json.dumps(rows, indent=1) + "\n")
    lines = [
        "# Reliability: faults and attacks",
        "",
        f"Written by `make test-faults` (tests/faults) and `make test-load` (tests/load), from "
        f"{rows_file.name} (one row per test, from its latest run), on a {os.cpu_count()}-core machine shared "
        f"with other work, Python {platform.python_version()}. Each row is a test that injects the fault on the "
        "local stack and then checks that nothing was lost; figures are measured, never asserted (timings on a "
        "shared machine are noisy). The attacks are the smoke suite's (tests/smoke/test_attacks.py): their rows come from "
        "`make test` on the local stack; `make health` runs them on every deployed hub.",
        "",
        "| Fault or attack | Outcome | Figures | Run |",
        "|---|---|---|---|",
    ]
    for row in rows.values():
        lines.append(f"| {row['fault']} | {row['outcome']} | {row['figures']} | {row['run']} |")
    path.write_text("\n".join(lines) + "\n")
