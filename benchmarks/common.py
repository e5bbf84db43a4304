"""Shared helpers: statistics, the machine's description, small HTTP and process utilities."""

import os
import platform
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parent.parent
VENV = REPO / ".venv"
DEV_PY = VENV / "dev" / "bin" / "python"
USER_PY = VENV / "user" / "bin" / "python"
HUB_PY = VENV / "hub" / "bin" / "python"


def median(values):
    return statistics.median(values) if values else None


def percentile(values, p):
    """Linear interpolation between closest ranks (numpy's default); None for no data."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * p / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summary(values):
    return {"n": len(values), "p50": percentile(values, 50), "p95": percentile(values, 95),
            "p99": percentile(values, 99), "max": max(values) if values else None}


def ratio(measured, baseline):
    return measured / baseline if measured is not None and baseline else None


def rounded(data, digits=4):
    """Floats rounded throughout, so that results.json stays readable."""
    if isinstance(data, float):
        return round(data, digits)
    if isinstance(data, dict):
        return {k: rounded(v, digits) for k, v in data.items()}
    if isinstance(data, list):
        return [rounded(v, digits) for v in data]
    return data


def machine():
    return {
        "nproc": os.cpu_count(),
        "memory_gib": round(_meminfo_kib("MemTotal") / 1024**2, 1),
        "cpu_model": _cpu_model(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }


def _meminfo_kib(key):
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def _cpu_model():
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def wait_for(check, what, timeout_s, interval_s=0.02):
    """Poll check() until it returns a true value; return that value."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not within {timeout_s:.0f} s")
        time.sleep(interval_s)


def http_ok(url, timeout=2.0, **kwargs):
    try:
        return requests.get(url, timeout=timeout, allow_redirects=False, **kwargs).status_code == 200
    except requests.RequestException:
        return False


def log(message):
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def start_stack(make_stack, notes):
    """make_stack() started; once more if the first start fails (on this shared machine another stack can take a
    port between the free-port check and the bind). The first failure is kept in `notes`."""
    from deployer.local.stack import LocalStackError

    try:
        return make_stack().start()
    except LocalStackError as e:
        notes.append(f"the local stack's first start failed, started again: {e}")
        log(notes[-1])
        return make_stack().start()
