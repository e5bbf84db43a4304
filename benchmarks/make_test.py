"""`make test` wall time. Too long to run on every `make bench`: it runs only with `--make-test`, and its
result is kept in benchmarks/make-test.json, which later runs report (with its date) until it is re-measured.
"""

import json
import subprocess
import time
from datetime import datetime, timezone

from .common import REPO, log

TARGET_S = 480  # the brief: `make test` under 8 minutes on this machine
RECORD = REPO / "benchmarks" / "make-test.json"


def measure(record=RECORD):
    log("make test: running (this takes minutes)")
    started = time.monotonic()
    result = subprocess.run(["make", "test"], cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, timeout=3 * TARGET_S)
    seconds = time.monotonic() - started
    data = {"wall_s": round(seconds, 1), "exit_code": result.returncode,
            "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "how": "make bench --make-test"}
    if result.returncode != 0:
        data["stderr_tail"] = result.stderr[-1000:]
    record.write_text(json.dumps(data, indent=1) + "\n")
    return report(data, measured_now=True)


def recorded(record=RECORD):
    if not record.exists():
        return {"title": "`make test` wall time",
                "not_measured": "not measured in this run (`BENCH_MAKE_TEST=1 make bench` or "
                                "`.venv/dev/bin/python -m benchmarks --make-test` measures it)",
                "target": {"text": f"< {TARGET_S // 60} min", "met": None}}
    return report(json.loads(record.read_text()), measured_now=False)


def report(data, measured_now):
    seconds = data["wall_s"]
    source = "measured in this run" if measured_now else f"from {RECORD.name}, measured {data.get('date', '?')}"
    return {
        "title": "`make test` wall time",
        "measured": {"what": f"`make test` ({source}; exit code {data.get('exit_code')})", "median_s": seconds},
        "baseline": {"what": f"none: an absolute budget; the ratio is the share of the {TARGET_S // 60}-minute budget",
                     "median_s": float(TARGET_S)},
        "ratio": seconds / TARGET_S,
        "target": {"text": f"< {TARGET_S // 60} min", "met": seconds < TARGET_S and data.get("exit_code") == 0},
        "source": source,
    }
