"""`make deploy`, `make diff` and `make health` for one cluster.

deploy: validate -> decrypt secrets -> chart dependencies -> scratch bucket -> dask-gateway CRDs -> helm upgrade ->
rollout -> health. Nothing touches the cluster before the configuration validated and the secrets decrypted;
helm runs only once the bucket and its identity match the cluster file (deployer/bucket.py).
Every step prints "[<cluster>] <step>: ..."; a failure raises DeployError naming the cluster and the step.
Commands go through `run` (run_command here, a fake in tests/unit/test_deploy.py).
"""

import contextlib
import os
import shlex
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import requests

from . import bucket, chart, facts, secrets, values
from .facts import REPO, ConfigError

KUBECTL = REPO / ".venv" / "bin" / "kubectl"
HELM_TIMEOUT = "10m"
ROLLOUT_TIMEOUT = "5m"
# helm v4 renamed --atomic; the flag the installed helm documents wins.
ROLLBACK_FLAGS = ("--rollback-on-failure", "--atomic")
FIELD_MANAGER = "pangeo-deployer"
# The smoke suite's users on a live hub: underscores cannot occur in GitHub logins, so these never
# collide with a real researcher's account.
HEALTH_USERS = "member=smoke_member,member2=smoke_member2,admin=smoke_admin,outsider=smoke_outsider"
PLACEHOLDER = "REPLACE-ME"
REQUIRED_SECRETS = (
    ("jupyterhub", "hub", "config", "GitHubOAuthenticator", "client_id"),
    ("jupyterhub", "hub", "config", "GitHubOAuthenticator", "client_secret"),
)


class DeployError(Exception):
    def __init__(self, cluster, step, message):
        self.cluster, self.step, self.message = cluster, step, message
        super().__init__(f"[{cluster}] {step}: {message}")


def say(cluster, step, message):
    print(f"[{cluster}] {step}: {message}", flush=True)


def run_command(cmd, *, env=None, input=None, capture=False):
    """Run cmd; stream its output unless `capture`. Returns the CompletedProcess (never raises on exit code)."""
    cmd = [str(part) for part in cmd]
    print("  $ " + shlex.join(cmd), flush=True)
    try:
        return subprocess.run(cmd, env=env, input=input, text=True,
                              stdout=subprocess.PIPE if capture else None,
                              stderr=subprocess.PIPE if capture else None)
    except FileNotFoundError:
        return subprocess.CompletedProcess(cmd, 127, "", f"{cmd[0]} not found (`make setup` installs helm and kubectl)")


@contextlib.contextmanager
def step(cluster, name):
    """Turn any expected failure inside the block into a DeployError for this cluster and step."""
    try:
        yield
    except DeployError:
        raise
    except (ConfigError, chart.HelmError, OSError, tarfile.TarError) as e:
        raise DeployError(cluster, name, str(e)) from None


def _checked(result, cluster, name, what):
    if result.returncode != 0:
        detail = (result.stderr or "").strip().splitlines()[-5:] if result.stderr else []
        raise DeployError(cluster, name, f"{what} failed (exit {result.returncode})"
                          + (": " + " | ".join(detail) if detail else ""))
    return result


# ---- the steps ----------------------------------------------------------------------------------------

def validated(name):
    """The cluster's facts and merged values, after the same checks as `make validate`."""
    with step(name, "validate"):
        cluster = facts.load(name)
        merged = values.validate_values(values.merged_values(cluster), facts.cluster_file(name))
        if cluster["stage"] == "local" or not cluster["kubernetes"]["context"]:
            raise ConfigError(facts.cluster_file(name), "kubernetes.context",
                              "this cluster has no Kubernetes context to deploy to")
    say(name, "validate", f"ok (stage {cluster['stage']}, context {cluster['kubernetes']['context']}, "
                          f"namespace {values.namespace(cluster)})")
    return cluster, merged


def check_secret_values(name, path, secret_values):
    """Stop before the cluster when a required secret is absent or still the committed placeholder."""
    where = secrets.display(Path(path or secrets.secret_file(name)))
    for keys in REQUIRED_SECRETS:
        value = secret_values
        for key in keys:
            value = value.get(key) if isinstance(value, dict) else None
        if not value:
            raise DeployError(name, "decrypt secrets", f"{where}: {'.'.join(keys)} is missing; add it with `sops {where}`")
    for key_path, value in secrets.leaves(secret_values):
        if isinstance(value, str) and value.startswith(PLACEHOLDER):
            raise DeployError(name, "decrypt secrets", f"{where}: {'.'.join(map(str, key_path))} is still a "
                              f"placeholder ({PLACEHOLDER}...); set the real value with `sops {where}`")


def dask_gateway_crds(chart_dir, into):
    """Extract the CRDs shipped in the locked dask-gateway chart (helm never upgrades CRDs itself)."""
    dep = next(d for d in chart.dependencies(chart_dir) if d["name"] == "dask-gateway")
    archive = Path(chart_dir) / "charts" / f"dask-gateway-{dep['version']}.tgz"
    into = Path(into)
    into.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive) as tar:
        members = [m for m in tar.getmembers()
                   if m.isfile() and m.name.startswith("dask-gateway/crds/") and m.name.endswith((".yaml", ".yml"))]
        if not members:
            raise ConfigError(archive, "crds/", "the dask-gateway chart ships no CRDs here; is it the right chart?")
        for member in members:
            (into / Path(member.name).name).write_bytes(tar.extractfile(member).read())
    return sorted(into.iterdir())


def scratch_bucket(name, cluster, apply):
    """The bucket step: make the cloud match the cluster file (apply), or print what would change."""
    with step(name, "bucket"):
        bucket.reconcile(name, cluster, apply, say=lambda message: say(name, "bucket", message))


def rollback_flag(run):
    help_text = run([chart.HELM, "upgrade", "--help"], env=chart.helm_env(), capture=True).stdout or ""
    return next((flag for flag in ROLLBACK_FLAGS if flag in help_text), ROLLBACK_FLAGS[-1])


def deployments(cluster, merged):
    """The Deployments that must be ready: the hub, its proxy (and HTTPS front), the scratch-credentials
    service, and the gateway's three."""
    jupyterhub = merged.get("jupyterhub", {})
    names = ["hub", "proxy", "scratch-credentials"]
    https = jupyterhub.get("proxy", {}).get("https", {})
    if https.get("enabled") and https.get("type", "letsencrypt") == "letsencrypt":
        names.append("autohttps")
    if jupyterhub.get("scheduling", {}).get("userScheduler", {}).get("enabled"):
        names.append("user-scheduler")
    release = values.release_name(cluster)
    gateway = release if "dask-gateway" in release else f"{release}-dask-gateway"
    names += [f"gateway-{gateway}", f"controller-{gateway}", f"traefik-{gateway}"]
    return names


@contextlib.contextmanager
def prepared(name, secret_path=None, sops_env=None, chart_dir=values.CHART):
    """Validate, decrypt and fetch the chart (nothing on the cluster yet).

    Yields (facts, merged values, work dir, values file, decrypted secrets file). The decrypted file lives
    in its own 0700 temporary directory and is removed however the block ends.
    """
    cluster, merged = validated(name)
    say(name, "decrypt secrets", secrets.display(Path(secret_path or secrets.secret_file(name))))
    with contextlib.ExitStack() as cleanup:
        try:
            secret_file = cleanup.enter_context(secrets.decrypted(name, secret_path, env=sops_env))
        except ConfigError as e:
            raise DeployError(name, "decrypt secrets", str(e)) from None
        check_secret_values(name, secret_path, secrets.read_values(secret_file))
        work = Path(cleanup.enter_context(tempfile.TemporaryDirectory(prefix=f"pangeo-{name}-work-")))
        values_file = work / "values.yaml"
        with open(values_file, "w") as f:
            values.dump_yaml(merged, f)
        with step(name, "chart"):
            if not chart.fetched(chart_dir):
                say(name, "chart", "fetching the locked jupyterhub and dask-gateway charts")
                chart.build_dependencies(chart_dir)
        yield cluster, merged, work, values_file, secret_file


def deploy(name, run=run_command, secret_path=None, sops_env=None, chart_dir=values.CHART,
           extra_values=(), environ=None, check_health=True):
    """extra_values: further -f files after the secrets (tests/kind adds its GitHub stand-in); check_health
    False leaves the smoke suite to the caller (tests/kind runs it in its own session)."""
    environ = os.environ if environ is None else environ
    with prepared(name, secret_path, sops_env, chart_dir) as (cluster, merged, work, values_file, secret_file):
        context, namespace, release = (cluster["kubernetes"]["context"], values.namespace(cluster),
                                       values.release_name(cluster))

        scratch_bucket(name, cluster, apply=True)

        with step(name, "crds"):
            crds = dask_gateway_crds(chart_dir, work / "crds")
        say(name, "crds", f"server-side apply of {len(crds)} dask-gateway CRD file(s)")
        _checked(run([KUBECTL, "apply", "--server-side", "--force-conflicts", f"--field-manager={FIELD_MANAGER}",
                      "--context", context, "-f", work / "crds"]), name, "crds", "kubectl apply")

        flag = rollback_flag(run)
        say(name, "helm upgrade", f"release {release} in namespace {namespace} ({flag}, timeout {HELM_TIMEOUT})")
        cmd = [chart.HELM, "upgrade", "--install", release, chart_dir,
               "--namespace", namespace, "--create-namespace", "--kube-context", context,
               "-f", values_file, "-f", secret_file]
        for extra in extra_values:
            cmd += ["-f", extra]
        cmd += [flag, "--wait", "--timeout", HELM_TIMEOUT, "--skip-crds"]
        _checked(run(cmd, env=chart.helm_env()), name, "helm upgrade",
                 f"helm upgrade (the release was rolled back by {flag})")

        for deployment in deployments(cluster, merged):
            say(name, "rollout", f"waiting for deployment/{deployment}")
            _checked(run([KUBECTL, "rollout", "status", f"deployment/{deployment}", "--namespace", namespace,
                          "--context", context, f"--timeout={ROLLOUT_TIMEOUT}"]),
                     name, "rollout", f"deployment/{deployment} not ready")

        if check_health:
            health(name, run, environ=environ, secret_values=secrets.read_values(secret_file), cluster=cluster)
    say(name, "deploy", "done")


def diff(name, run=run_command, secret_path=None, sops_env=None, chart_dir=values.CHART):
    """Show what `deploy` would change: `helm diff` when the plugin is installed, else a server-side dry run."""
    with prepared(name, secret_path, sops_env, chart_dir) as (cluster, merged, work, values_file, secret_file):
        context, namespace, release = (cluster["kubernetes"]["context"], values.namespace(cluster),
                                       values.release_name(cluster))
        scratch_bucket(name, cluster, apply=False)
        files = ["-f", values_file, "-f", secret_file]
        plugins = run([chart.HELM, "plugin", "list"], env=chart.helm_env(), capture=True).stdout or ""
        if any(line.split()[:1] == ["diff"] for line in plugins.splitlines()):
            say(name, "diff", "helm diff upgrade")
            _checked(run([chart.HELM, "diff", "upgrade", release, chart_dir, "--namespace", namespace,
                          "--kube-context", context, "--allow-unreleased", *files], env=chart.helm_env()),
                     name, "diff", "helm diff upgrade")
            return
        say(name, "diff", "helm template --dry-run=server | kubectl diff --server-side (no helm diff plugin)")
        rendered = _checked(run([chart.HELM, "template", release, chart_dir, "--namespace", namespace,
                                 "--kube-context", context, "--dry-run=server", *files],
                                env=chart.helm_env(), capture=True), name, "diff", "helm template")
        # kubectl diff: 0 no change, 1 changes shown, anything else an error. Secrets are masked.
        result = run([KUBECTL, "diff", "--server-side", "--force-conflicts", "--field-manager=helm",
                      "--context", context, "--namespace", namespace, "-f", "-"], input=rendered.stdout)
        if result.returncode not in (0, 1):
            raise DeployError(name, "diff", f"kubectl diff failed (exit {result.returncode})")
        say(name, "diff", "no changes" if result.returncode == 0 else "changes shown above")


def health(name, run=run_command, environ=None, secret_values=None, cluster=None, sops_env=None):
    """The smoke suite (tests/smoke) and the live checks (tests/live) against the cluster's public hub."""
    environ = os.environ if environ is None else environ
    if cluster is None:
        with step(name, "health"):
            cluster = facts.load(name)
    hub_url = environ.get("SMOKE_HUB_URL") or public_url(cluster)
    token = environ.get("SMOKE_API_TOKEN")
    if not token:
        if secret_values is None:
            try:
                with secrets.decrypted(name, env=sops_env) as path:
                    secret_values = secrets.read_values(path)
            except ConfigError as e:
                raise DeployError(name, "health", f"no SMOKE_API_TOKEN and {e}") from None
        token = secrets.health_token(secret_values)
    if not token:
        raise DeployError(name, "health", f"no API token: set SMOKE_API_TOKEN, or give the hub service "
                          f"{secrets.HEALTH_SERVICE!r} an apiToken in {secrets.secret_file(name)}")
    users = environ.get("SMOKE_USERS", HEALTH_USERS)
    if not environ.get("SMOKE_GITHUB_URL"):
        # Nobody can log in through github.com here, so the admin team cannot make the suite's admin one.
        admin = dict(pair.split("=", 1) for pair in users.split(",") if "=" in pair).get("admin")
        if not admin:
            raise DeployError(name, "health", f"SMOKE_USERS={users!r} names no admin (role=name,...)")
        say(name, "health", f"making {admin} an admin of {hub_url}")
        try:
            make_admin(hub_url, token, admin)
        except (requests.RequestException, RuntimeError) as e:
            raise DeployError(name, "health", f"cannot prepare the suite's admin {admin}: {e}") from None
    say(name, "health", f"smoke suite against {hub_url}")
    env = {**environ, "SMOKE_HUB_URL": hub_url, "SMOKE_API_TOKEN": token, "SMOKE_CLUSTER": name,
           "SMOKE_USERS": users}
    result = run([sys.executable, "-m", "pytest", REPO / "tests" / "smoke", REPO / "tests" / "live", "-q"], env=env)
    if result.returncode != 0:
        raise DeployError(name, "health", f"the smoke suite failed against {hub_url} (exit {result.returncode}; "
                          "see the report above)")
    say(name, "health", "passed")


def make_admin(hub_url, token, username):
    """Create `username` as an admin of the hub, or make the existing user one (needs the admin role)."""
    session = requests.Session()
    session.headers["Authorization"] = f"token {token}"
    url = f"{hub_url.rstrip('/')}/hub/api/users/{username}"
    reply = session.post(url, json={"admin": True}, timeout=30)
    if reply.status_code == 409:  # exists already
        reply = session.patch(url, json={"admin": True}, timeout=30)
    if reply.status_code not in (200, 201):
        raise RuntimeError(f"HTTP {reply.status_code} from {url}: {reply.text[:200]}")


def public_url(cluster):
    """The hub's URL as hub_config computes it for the OAuth callback (one rule for both)."""
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    import hub_config

    return hub_config.hub_url(cluster)


def cli(action, name, **kwargs):
    """Entry point of `python -m deployer deploy|diff|health CLUSTER`; returns the exit code."""
    if not name:
        print(f"error: name a cluster: CLUSTER=<one of {', '.join(facts.cluster_names())}>", file=sys.stderr)
        return 2
    try:
        {"deploy": deploy, "diff": diff, "health": health}[action](name, **kwargs)
    except DeployError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0
