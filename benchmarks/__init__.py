"""What the configuration costs, measured against stock upstream (and a floor) on the same machine in the same run.

`make bench` (= `.venv/dev/bin/python -m benchmarks`) runs every benchmark and writes benchmarks/results.json
and benchmarks/RESULTS.md. Absolute times vary between runs on a shared machine, so every figure of ours is
reported as a ratio against the same figure of stock JupyterHub / dask-gateway (benchmarks/variants.py), timed
in the same run, runs alternating, with the floor (the work without hub or gateway) as a second column.
"""
