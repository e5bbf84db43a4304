"""The hubs the benchmarks compare: LocalStack variants, each on free ports in its own directory.

- `ours`: the hub and gateway as `make dev` runs them (hub_config.configure / gateway_config.configure, then
  the local layer): what a cluster file deploys.
- `stock`: the same local layer (PangeoLocalSpawner with the same profile list and server command, the
  same addresses, the gateway as a hub service, the smoke suite's admin token), with JupyterHub 5.5.0's,
  oauthenticator's and dask-gateway-server's defaults instead of our configuration: GitHubOAuthenticator
  with `allow_all` (its default lets nobody in) and the stand-in's URL, the `user` role's access to the
  gateway service (dask-gateway's JupyterHub instructions, as hub_config has it); dask-gateway with its own
  defaults, except `dask scheduler`/`dask worker` (the default executables are gone from distributed).

Both run the hub from benchmarks/bench_jupyterhub_config.py, which reads the variant from the runtime file.
Options: a database URL (PostgreSQL), the light server in place of JupyterLab, extra stand-in users, and
LocalStack's overrides. Both leave servers and the proxy running when the hub stops (the local layer's
`cleanup_servers`/`cleanup_proxy`, as on Kubernetes), so a restarted hub finds them.
"""

import contextlib
from unittest import mock

import yaml

from .common import HUB_PY, REPO, start_stack

HERE = REPO / "benchmarks"
HUB_CONFIG = HERE / "bench_jupyterhub_config.py"
STOCK_GATEWAY_CONFIG = HERE / "stock_gateway_config.py"
FLAVOURS = ("ours", "stock")


def write_users_file(path, logins):
    """config/github-standin.yaml with `logins` added to the cluster's first allowed team."""
    from deployer import facts
    from deployer.local import stack as stack_module

    data = yaml.safe_load(stack_module.STANDIN_FILE.read_text())
    team_org, team = facts.load("local")["github"]["allowed_teams"][0].split(":")
    for i, login in enumerate(logins):
        data["users"][login] = {"id": 90000 + i, "name": f"Bench {login}", "email": f"{login}@example.org"}
        data["orgs"][team_org]["teams"][team].append(login)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def write_light_env(directory):
    """A directory shaped like the notebook environment whose jupyterhub-singleuser is the light server."""
    bin_dir = directory / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    script = bin_dir / "jupyterhub-singleuser"
    script.write_text(f'#!/bin/sh\nexec "{HUB_PY}" -I "{HERE / "light_server.py"}" "$@"\n')
    script.chmod(0o755)
    return directory


def stack_class(flavour, db_url=None, light_env=None):
    from deployer.local import stack as stack_module

    if flavour not in FLAVOURS:
        raise ValueError(f"unknown hub variant {flavour!r}; choose among {', '.join(FLAVOURS)}")
    # The stack's internals (it has no option for these): fail loudly if they change.
    for name in ("_runtime", "_spawn", "_respawn", "hold"):
        if not hasattr(stack_module.LocalStack, name):
            raise RuntimeError(f"deployer.local.stack.LocalStack has no {name} any more: the benchmarks' hub "
                               "variants need it")

    class BenchStack(stack_module.LocalStack):
        variant = flavour

        def _runtime(self):
            runtime = super()._runtime()
            runtime["bench"] = self.runtime_bench = {"flavour": flavour, "db_url": db_url}
            if light_env:
                runtime["paths"]["user_venv"] = str(light_env)
            if flavour == "stock":
                runtime["paths"]["gateway_config"] = str(STOCK_GATEWAY_CONFIG)
            return runtime

        def _spawn(self, name, cmd, grace_s=10.0, **kwargs):
            if name == "hub":
                cmd = [cmd[0], "-f", HUB_CONFIG]
            return super()._spawn(name, cmd, grace_s=grace_s, **kwargs)

        def stop_hub(self):
            """Stop the hub process only, and keep it down (its servers and the proxy keep running)."""
            self.hold("hub")

        def start_hub(self):
            """Start the hub again at once, not at the supervisor's next poll; the caller waits for it."""
            with self.supervisor._lock:
                self.supervisor.held.discard("hub")
                return self._respawn("hub")

    return BenchStack


@contextlib.contextmanager
def bench_stack(data_dir, flavour="ours", logins=(), notes=None, light=True, db_url=None, overrides=None):
    """A started stack of this variant whose stand-in also knows `logins`; stopped on exit. `overrides` as
    LocalStack's (tests/load shortens the culler's timeout)."""
    from deployer.local import stack as stack_module

    data_dir.mkdir(parents=True, exist_ok=True)
    users_file = data_dir / "bench-standin-users.yaml"
    write_users_file(users_file, logins)
    light_env = write_light_env(data_dir / "light-env") if light else None
    cls = stack_class(flavour, db_url=db_url, light_env=light_env)
    with mock.patch.object(stack_module, "STANDIN_FILE", users_file):
        stack = start_stack(lambda: cls(data_dir, port=0, overrides=overrides), notes if notes is not None else [])
    try:
        yield stack
    finally:
        stack.stop()
