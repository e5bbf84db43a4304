"""The whole service on one machine (`make dev`, tests/local): `python -m deployer.local --data DIR --port P`.

The same cluster facts (config/clusters/local.yaml) and the same hub_config.py and gateway_config.py as the
charts; this package adds only what differs on one machine: the GitHub stand-in, a local-process spawner,
the gateway's local backend and addresses, and a SeaweedFS scratch store with per-user keys.
Modules loaded inside the hub and gateway processes (hub_layer, spawner, scratch, gateway_local_config)
import only the standard library and what those processes' environments ship.
"""
