"""Configuration: validate and render the values of every cluster, as `make validate` does.

Measured: `python -m deployer validate` in a fresh process (facts of every cluster, merged values, the
subcharts' schemas), the command an operator runs. Baseline: a fresh process of the same interpreter that
only parses the same YAML and JSON files once each, so the ratio is what our checks and rendering add on
top of reading the files. Wall time decides the target; CPU time (the child's user+system) is recorded
beside it because other work on a shared machine stretches wall time but not CPU time.
"""

import os
import subprocess
import tempfile
import time

from . import profiling
from .common import DEV_PY, REPO, median, ratio

TARGET_S = 2.0

BASELINE = """
import json
from pathlib import Path
import yaml
repo = Path(%r)
files = sorted((repo / "config").glob("*.yaml")) + sorted((repo / "config" / "clusters").glob("*.yaml"))
files += [repo / "helm" / "pangeo-cloud" / "values.yaml"] + sorted((repo / "helm" / "upstream-schemas").glob("*.yaml"))
for path in files:
    yaml.safe_load(path.read_text())
for path in sorted((repo / "helm" / "upstream-schemas").glob("*.json")):
    json.loads(path.read_text())
""" % str(REPO)


def _timed(cmd):
    before = os.times()
    started = time.monotonic()
    result = subprocess.run([str(a) for a in cmd], cwd=REPO, capture_output=True, text=True, timeout=120)
    wall = time.monotonic() - started
    after = os.times()
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd))} failed ({result.returncode}): {result.stderr[-500:]}")
    cpu = (after.children_user - before.children_user) + (after.children_system - before.children_system)
    return wall, cpu, result.stdout


def run(reps=5):
    samples = {"measured": ([], []), "baseline": ([], [])}
    clusters = []
    for _ in range(reps):
        wall, cpu, out = _timed([DEV_PY, "-m", "deployer", "validate"])
        samples["measured"][0].append(wall)
        samples["measured"][1].append(cpu)
        clusters = [line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("ok:")]
        wall, cpu, _ = _timed([DEV_PY, "-c", BASELINE])
        samples["baseline"][0].append(wall)
        samples["baseline"][1].append(cpu)
    (mw, mc), (bw, bc) = ([median(s) for s in samples[k]] for k in ("measured", "baseline"))
    result = {
        "title": "Configuration: validate + render values of all clusters",
        "measured": {"what": "`python -m deployer validate` in a fresh process (= `make validate`)",
                     "median_s": mw, "cpu_median_s": mc, "samples_s": samples["measured"][0]},
        "baseline": {"what": "a fresh process of the same Python parsing the same YAML/JSON files once each",
                     "median_s": bw, "cpu_median_s": bc, "samples_s": samples["baseline"][0]},
        "ratio": ratio(mw, bw),
        "cpu_ratio": ratio(mc, bc),
        "clusters": clusters,
        "target": {"text": f"< {TARGET_S:g} s wall", "met": mw < TARGET_S},
    }
    if not result["target"]["met"]:
        with tempfile.TemporaryDirectory() as tmp:
            result["profile"] = profiling.profile_command(DEV_PY, ["-m", "deployer", "validate"],
                                                          f"{tmp}/validate.prof")
    return result
