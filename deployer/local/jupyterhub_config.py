"""JupyterHub's config file in the local stack (`jupyterhub -f <this file>`, run from .venv/hub).

The launcher names its runtime file (facts after overrides and port choices, ports, paths, dev secrets) in
PANGEO_LOCAL_RUNTIME. The cluster's configuration is hub_config.configure, exactly as in the chart; then
the local layer (hub_layer) adds what differs on one machine.
"""

import json
import os
import sys
from pathlib import Path

RUNTIME = json.loads(Path(os.environ["PANGEO_LOCAL_RUNTIME"]).read_text())
sys.path.insert(0, RUNTIME["repo"])

import hub_config  # noqa: E402  (the repository root is on sys.path only now)
from deployer.local import hub_layer  # noqa: E402

c = get_config()  # noqa: F821  (provided by traitlets when it loads this file)
hub_config.configure(c, RUNTIME["facts"])
hub_layer.configure(c, RUNTIME, hub_config.profiles(RUNTIME["facts"]))
