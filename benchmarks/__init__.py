"""What the configuration costs, measured against bare baselines on the same machine in the same run.

`make bench` (= `.venv/dev/bin/python -m benchmarks`) runs every benchmark and writes benchmarks/results.json
and benchmarks/RESULTS.md. Absolute times vary between runs on a shared machine, so every figure is reported
as a ratio against a baseline timed in the same run, next to its target.
"""
