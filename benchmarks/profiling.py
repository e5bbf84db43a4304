"""Where the time of a missed target goes: cProfile's self time, split into this repository's code and
each third-party package (by the site-packages directory it lives in) or the standard library."""

import pstats
import re
import subprocess
import sysconfig
from pathlib import Path

from .common import REPO

STDLIB = sysconfig.get_paths()["stdlib"]


def owner(filename):
    """'ours', a distribution's top-level package, 'stdlib', or 'builtins' (C functions)."""
    if filename.startswith("~") or filename.startswith("<"):
        return "builtins" if filename.startswith("~") else "interpreter"
    match = re.search(r"site-packages/([^/]+)", filename)
    if match:
        return match.group(1).removesuffix(".py")
    if filename.startswith(str(REPO)) and "/.venv/" not in filename:
        return "ours"
    if "/lib/python3" in filename or filename.startswith(STDLIB) or filename.startswith("<frozen"):
        return "stdlib"
    return "other"


def attribute(stats_path, top=8):
    stats = pstats.Stats(str(stats_path))
    by_owner = {}
    for (filename, _line, _func), (_cc, _nc, tottime, _ct, _callers) in stats.stats.items():
        key = owner(filename)
        by_owner[key] = by_owner.get(key, 0.0) + tottime
    cumulative = sorted(stats.stats.items(), key=lambda item: -item[1][3])
    functions = [{"where": f"{_short(filename)}:{line}({func})", "owner": owner(filename), "cumulative_s": ct}
                 for (filename, line, func), (_cc, _nc, _tt, ct, _callers) in cumulative
                 if owner(filename) not in ("builtins", "interpreter") and func != "<module>"]
    imports = [{"where": _short(filename), "owner": owner(filename), "cumulative_s": ct}
               for (filename, _line, func), (_cc, _nc, _tt, ct, _callers) in cumulative
               if func == "<module>" and owner(filename) not in ("ours", "stdlib", "interpreter")]
    total = sum(by_owner.values())
    return {"tool": "cProfile (stdlib), self time grouped by owner", "total_s": total,
            "self_time_by_owner_s": dict(sorted(by_owner.items(), key=lambda kv: -kv[1])[:12]),
            "ours_self_share": by_owner.get("ours", 0.0) / total if total else None,
            "hottest_functions": functions[:top],
            "our_functions": [f for f in functions if f["owner"] == "ours"][:top],
            "slowest_third_party_imports": imports[:3]}


def _short(filename):
    for marker in ("site-packages/", str(REPO) + "/"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    return Path(filename).name


def profile_command(python, args, out_path, cwd=REPO, timeout=300):
    """Run `python -m cProfile -o out_path <args>` and attribute its time."""
    subprocess.run([str(python), "-m", "cProfile", "-o", str(out_path), *map(str, args)], cwd=cwd,
                   capture_output=True, timeout=timeout, check=True)
    return attribute(out_path)


# ---- a running process (the hub), sampled with py-spy ------------------------------------------------------

# The code that decides what the process does; a sample is charged to the innermost such frame on its stack.
APPLICATION = ("ours", "jupyterhub", "oauthenticator", "dask_gateway_server", "kubespawner")
PY_SPY = REPO / ".venv" / "dev" / "bin" / "py-spy"
_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*):(?P<line>\d+)\)$")


class Sampler:
    """py-spy sampling a live process (--nonblocking: the process is never paused) until stop()."""

    def __init__(self, pid, out_path, rate=100, features=None):
        self.out_path, self.features = Path(out_path), features
        self.available = PY_SPY.exists() and pid is not None
        self.why_not = None if self.available else (
            "py-spy is not installed (requirements/dev.txt; `make setup`)" if not PY_SPY.exists() else "no pid")
        self.popen = None
        if self.available:
            self.log = open(self.out_path.with_suffix(".log"), "wb")
            self.popen = subprocess.Popen(
                [str(PY_SPY), "record", "--pid", str(pid), "--rate", str(rate), "--format", "raw", "--full-filenames",
                 "--nonblocking", "--output", str(self.out_path)], stdout=self.log, stderr=subprocess.STDOUT)

    def stop(self):
        if self.popen is None:
            return {"tool": "py-spy", "skipped": self.why_not}
        self.popen.send_signal(2)  # SIGINT: py-spy writes its output and exits
        try:
            self.popen.wait(30)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(5)
        self.log.close()
        if not self.out_path.exists():
            return {"tool": "py-spy", "skipped": f"py-spy wrote nothing; see {self.out_path.with_suffix('.log')}"}
        return attribute_collapsed(self.out_path, features=self.features)


def attribute_collapsed(path, top=10, features=None):
    """On-CPU samples of a collapsed-stack file: by the leaf frame's owner (self), by whether any frame of the
    stack is ours (inclusive: also what our code calls), the hottest leaf functions, and the hottest call
    sites in the application (the innermost frame of ours, JupyterHub's, oauthenticator's... on the stack)."""
    self_by_owner, leaves, sites, total, ours_inclusive = {}, {}, {}, 0, 0
    features = features or {}
    by_feature = dict.fromkeys(features, 0)
    any_feature = 0
    for line in Path(path).read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        count = int(count)
        frames = [_FRAME.match(f) for f in stack.split(";")]
        frames = [m for m in frames if m]
        if not frames:
            continue
        total += count
        owners = [owner(m["file"]) for m in frames]
        self_by_owner[owners[-1]] = self_by_owner.get(owners[-1], 0) + count
        if "ours" in owners:
            ours_inclusive += count
        funcs = {m["func"] for m in frames}
        hit = False
        for label, names in features.items():
            if funcs & set(names):
                by_feature[label] += count
                hit = True
        any_feature += count if hit else 0
        leaf = f"{_short(frames[-1]['file'])}:{frames[-1]['line']}({frames[-1]['func']})"
        leaves[leaf] = leaves.get(leaf, 0) + count
        site = next((m for m, o in zip(reversed(frames), reversed(owners)) if o in APPLICATION), None)
        if site:
            key = f"{_short(site['file'])}:{site['line']}({site['func']})"
            sites[key] = sites.get(key, 0) + count
    share = (lambda n: n / total) if total else (lambda n: None)
    return {
        "tool": "py-spy, on-CPU samples",
        "samples": total,
        "self_share_by_owner": {k: share(v) for k, v in sorted(self_by_owner.items(), key=lambda kv: -kv[1])[:12]},
        "share_with_our_code_on_the_stack": share(ours_inclusive),
        "share_by_feature": {k: share(v) for k, v in by_feature.items()},
        "share_of_all_features": share(any_feature) if features else None,
        "hottest_leaf_functions": [{"where": k, "share": share(v)}
                                   for k, v in sorted(leaves.items(), key=lambda kv: -kv[1])[:top]],
        "hottest_application_call_sites": [{"where": k, "share": share(v)}
                                           for k, v in sorted(sites.items(), key=lambda kv: -kv[1])[:top]],
    }
