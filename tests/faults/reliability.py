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


def describe(item):
    doc = (item.function.__doc__ or item.name).strip().splitlines()
    return " ".join(line.strip() for line in doc[:3] if line.strip()).split(". ")[0]


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
        "shared machine are noisy). The attacks are in the smoke suite (tests/smoke/test_attacks.py, run by "
        "`make test` on the local stack and by `make health` on every deployed hub).",
        "",
        "| Fault | Outcome | Figures | Run |",
        "|---|---|---|---|",
    ]
    for row in rows.values():
        lines.append(f"| {row['fault']} | {row['outcome']} | {row['figures']} | {row['run']} |")
    path.write_text("\n".join(lines) + "\n")
