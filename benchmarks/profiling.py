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
