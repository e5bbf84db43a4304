"""`python -m benchmarks` (`make bench`): run the benchmarks, write results.json and RESULTS.md here.

Every stack it starts binds 127.0.0.1 only, lives in a temporary directory, and is stopped (with everything
it started) before the next one, even after a failure.
"""

import argparse
import contextlib
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from . import config_bench, gateway_bench, make_test, report, scale, scratch_bench, spawn_bench, storm, variants
from .common import REPO, log, machine, rounded

OUT = REPO / "benchmarks"
ALL = ("config", "spawn", "gateway", "scratch", "storm", "scale", "make_test")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--only", default=",".join(ALL), help=f"comma-separated subset of {','.join(ALL)}")
    parser.add_argument("--spawn-reps", type=int, default=8)
    parser.add_argument("--gateway-reps", type=int, default=3)
    parser.add_argument("--config-reps", type=int, default=5)
    parser.add_argument("--storm-sizes", default=",".join(map(str, storm.STORM_SIZES)),
                        help="comma-separated storm sizes (users logging in at once)")
    parser.add_argument("--scale-users", type=int, default=scale.USERS)
    parser.add_argument("--scale-running", type=int, default=scale.RUNNING)
    parser.add_argument("--no-database", action="store_true", help="leave out the PostgreSQL storms")
    parser.add_argument("--storm-server", choices=("light", "real"), default="light",
                        help="light: benchmarks/light_server.py; real: jupyterhub-singleuser (CPU-heavy)")
    parser.add_argument("--make-test", action="store_true", default=os.environ.get("BENCH_MAKE_TEST") == "1",
                        help="also run `make test` (minutes) and record its wall time (env BENCH_MAKE_TEST=1)")
    parser.add_argument("--keep-data", action="store_true",
                        help="keep the stacks' data directories (logs, py-spy samples) and say where")
    parser.add_argument("--out", type=Path, default=OUT, help="where results.json and RESULTS.md go")
    args = parser.parse_args(argv)
    wanted = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = sorted(set(wanted) - set(ALL))
    if unknown:
        parser.error(f"--only: unknown {', '.join(unknown)}; choose among {', '.join(ALL)}")

    started = time.monotonic()
    results = {"machine": machine(), "benchmarks": {}}
    scratch = Path(tempfile.mkdtemp(prefix="pangeo-bench-"))
    try:
        if "config" in wanted:
            _run(results, "config", lambda: config_bench.run(args.config_reps))
        if {"spawn", "gateway", "scratch"} & set(wanted):
            _with_stacks(results, wanted, scratch / "stacks", args)
        if "storm" in wanted:
            sizes = tuple(int(x) for x in args.storm_sizes.split(",") if x.strip())
            _run(results, "storm", lambda: storm.run(scratch / "storm", sizes=sizes, light=args.storm_server == "light",
                                                      database=not args.no_database))
        if "scale" in wanted:
            _run(results, "scale", lambda: scale.run(scratch / "scale", users=args.scale_users,
                                                      running=args.scale_running))
        if "make_test" in wanted:
            _run(results, "make_test", make_test.measure if args.make_test else make_test.recorded)
    finally:
        if args.keep_data:
            log(f"kept the stacks' data in {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    results["duration_s"] = time.monotonic() - started
    results = rounded(results)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    (args.out / "RESULTS.md").write_text(report.markdown(results))
    log(f"done in {results['duration_s']:.0f} s: {args.out / 'RESULTS.md'}, {args.out / 'results.json'}")
    print(report.summary_table(results))
    return 1 if any("error" in r for r in results["benchmarks"].values()) else 0


def _with_stacks(results, wanted, data_dir, args):
    """Our hub and a stock one side by side (real JupyterLab servers), for the spawn and gateway runs; the
    scratch-credentials service of ours."""
    notes = results.setdefault("notes", [])
    log("starting our local stack and a stock one for the spawn and gateway benchmarks")
    with contextlib.ExitStack() as running:
        try:
            stacks = {flavour: running.enter_context(variants.bench_stack(data_dir / flavour, flavour, notes=notes,
                                                                          light=False))
                      for flavour in variants.FLAVOURS}
        except Exception as e:  # the stacks' own errors, or a port taken twice on this shared machine
            for name in ("spawn", "gateway", "scratch"):
                if name in wanted:
                    results["benchmarks"][name] = {"error": f"the local stacks did not start: {e}"}
            return
        results["stack_start_s"] = stacks["ours"].timings.get("start_s")
        if "spawn" in wanted:
            _run(results, "spawn", lambda: spawn_bench.run(stacks, reps=args.spawn_reps))
        if "gateway" in wanted:
            _run(results, "gateway", lambda: gateway_bench.run(stacks, reps=args.gateway_reps))
        if "scratch" in wanted:
            _run(results, "scratch", lambda: scratch_bench.run(stacks["ours"]))


def _run(results, name, func):
    log(f"{name}: running")
    began = time.monotonic()
    try:
        results["benchmarks"][name] = func()
    except Exception as e:  # one failing benchmark must not lose the others' figures
        results["benchmarks"][name] = {"error": f"{type(e).__name__}: {e}"}
        log(f"{name}: FAILED: {type(e).__name__}: {e}")
    results["benchmarks"][name]["bench_s"] = time.monotonic() - began


if __name__ == "__main__":
    sys.exit(main())
