"""Secrets: nothing secret in clear text anywhere in the repo, sops round trips, clear failures."""

import json
import os
import re
import stat
from pathlib import Path

import pyrage
import pytest
import yaml

from deployer import facts, secrets
from deployer.facts import REPO, ConfigError

# Where the scan does not look: installed tools, caches, and what .gitignore keeps out of the repo.
SKIP_DIRS = {".git", ".venv", "node_modules", "__pycache__", ".pytest_cache", "test-artifacts", ".dev-data"}
SKIP_PATHS = {REPO / "helm" / "pangeo-cloud" / "charts"}
SECRET_NAME = re.compile(r"(\.secret\.(ya?ml|json)|\.agekey|\.pem|\.key)$")
# Keys whose values are secrets wherever they appear in YAML or JSON.
SECRET_KEY = re.compile(r"^(client_secret|.*password|.*passwd|token|.*_token|api_?token|apiToken|secretToken|"
                        r"cookieSecret|cookie_secret|secret_?key|.*secret_access_key|private_?key|crypt_?key)$",
                        re.IGNORECASE)
# Secrets recognisable by their form, in any text file.
SECRET_TEXT = {
    "private key": re.compile(r"-----BEGIN ([A-Z]+ )?PRIVATE KEY-----"),
    "age private key": re.compile(r"AGE-SECRET-KEY-1[0-9A-Z]{58}"),
    "AWS access key id": re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b"),
    "GitHub token": re.compile(r"\bgh[pousr]_[A-Za-z0-9]{36,}\b"),
    "Google service account key": re.compile(r'"type":\s*"service_account"'),
}


def repo_files(root):
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in SKIP_DIRS and Path(dirpath, d) not in SKIP_PATHS]
        for filename in filenames:
            yield Path(dirpath, filename)


def _secret_keyed_leaves(data):
    for path, value in secrets.leaves(data):
        named = [str(p) for p in path if isinstance(p, str)]
        if not named or not isinstance(value, str) or not value:
            continue
        under_crypt_keeper = "CryptKeeper" in named and named[-1] == "keys"
        if SECRET_KEY.match(named[-1]) or under_crypt_keeper:
            yield ".".join(map(str, path)), value


def clear_text_secrets(root):
    """(file, why) for everything under root that looks secret and is not sops-encrypted."""
    problems = []
    for path in repo_files(root):
        try:
            text = path.read_text()
        except (UnicodeDecodeError, OSError):
            continue
        where = path.relative_to(root)
        if SECRET_NAME.search(path.name):
            try:
                secrets.check_encrypted(path)
            except ConfigError as e:
                problems.append((where, f"secret file not encrypted: {e.message}"))
            continue
        for what, pattern in SECRET_TEXT.items():
            if pattern.search(text):
                problems.append((where, f"contains a {what}"))
        if path.suffix in (".yaml", ".yml", ".json"):
            try:
                documents = list(yaml.safe_load_all(text)) if path.suffix != ".json" else [json.loads(text)]
            except (yaml.YAMLError, ValueError):
                continue
            for data in documents:
                if isinstance(data, dict) and isinstance(data.get("sops"), dict):
                    continue  # sops-encrypted: check_encrypted covers these by name
                for key, value in _secret_keyed_leaves(data):
                    if not value.startswith(secrets.ENC_PREFIX) and not value.startswith("${{"):
                        problems.append((where, f"{key} holds a value in clear text"))
    return problems


# ---- the repository -----------------------------------------------------------------------------------

def test_nothing_secret_is_in_clear_text_in_the_repo():
    problems = clear_text_secrets(REPO)
    assert not problems, "secrets in clear text (encrypt with sops, see README 'Deploy'):\n" + "\n".join(
        f"  {path}: {why}" for path, why in problems)


def test_the_scan_finds_planted_secrets(tmp_path):
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "x.secret.yaml").write_text("a: {client_secret: hunter2}\n")
    (tmp_path / "values.yaml").write_text("hub: {config: {GitHubOAuthenticator: {client_secret: hunter2}}}\n")
    (tmp_path / "crypt.yaml").write_text("hub: {config: {CryptKeeper: {keys: [abcdef]}}}\n")
    (tmp_path / "notes.md").write_text("key: " + str(pyrage.x25519.Identity.generate()) + "\n")
    (tmp_path / "ok.yaml").write_text("auth: {apiTokenFromSecretName: hub, apiTokenFromSecretKey: hub.x}\n")
    found = {str(path): why for path, why in clear_text_secrets(tmp_path)}
    assert set(found) == {"config/x.secret.yaml", "values.yaml", "crypt.yaml", "notes.md"}, found
    assert "not encrypted" in found["config/x.secret.yaml"]
    assert "age private key" in found["notes.md"]


def test_every_secret_file_is_fully_encrypted_to_the_ops_age_key():
    files = sorted(facts.CLUSTERS.glob("*.secret.yaml"))
    assert files, "no config/clusters/*.secret.yaml"
    ops_key = _sops_rules()[-1]["key_groups"][0]["age"][0]
    for path in files:
        secrets.check_encrypted(path)
        recipients = [entry["recipient"] for entry in yaml.safe_load(path.read_text())["sops"].get("age", [])]
        assert ops_key in recipients, f"{path.name} cannot be decrypted with the ops age key from .sops.yaml"


def test_every_deployed_cluster_has_a_secret_file_with_the_values_the_deploy_needs(all_facts):
    for name, cluster in all_facts.items():
        path = secrets.secret_file(name)
        if cluster["stage"] in ("staging", "production"):
            assert path.is_file(), f"{name} is deployed by CI but has no {path.name}"
            data = yaml.safe_load(path.read_text())
            hub = data["jupyterhub"]["hub"]
            assert set(hub["config"]["GitHubOAuthenticator"]) >= {"client_id", "client_secret"}
            assert "apiToken" in hub["services"][secrets.HEALTH_SERVICE]
            assert hub["loadRoles"][secrets.HEALTH_ROLE]["services"]  # encrypted, but present
    for path in facts.CLUSTERS.glob("*.secret.yaml"):
        assert path.name.removesuffix(".secret.yaml") in all_facts, f"{path.name} belongs to no cluster file"


def _sops_rules():
    return yaml.safe_load(secrets.SOPS_CONFIG.read_text())["creation_rules"]


def _rule_for(relative_path):
    return next(rule for rule in _sops_rules() if re.search(rule["path_regex"], relative_path))


def test_sops_rules_add_each_clouds_kms_key_to_the_ops_age_key():
    rules = _sops_rules()
    ops_keys = {rule["key_groups"][0]["age"][0] for rule in rules}
    assert len(ops_keys) == 1 and next(iter(ops_keys)).startswith("age1")
    for rule in rules:
        # One key group: any one key decrypts (several groups would require a key from each).
        assert len(rule["key_groups"]) == 1
        assert not set(rule) & {"encrypted_regex", "unencrypted_regex", "unencrypted_suffix"}
    for name in facts.cluster_names():
        cloud = facts.read_yaml(facts.cluster_file(name))["cloud"]
        group = _rule_for(f"config/clusters/{name}.secret.yaml")["key_groups"][0]
        if cloud == "gcp":
            assert group["gcp_kms"][0]["resource_id"].startswith("projects/pangeo-181919/")
        elif cloud == "aws":
            assert group["kms"][0]["arn"].startswith("arn:aws:kms:us-west-2:783380859522:")
        else:
            assert set(group) == {"age"}


# ---- sops round trip and failures ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def age_key():
    identity = pyrage.x25519.Identity.generate()
    return str(identity), str(identity.to_public())


@pytest.fixture
def encrypted(tmp_path, age_key):
    plain = tmp_path / "plain.yaml"
    data = {"jupyterhub": {"hub": {"config": {"GitHubOAuthenticator": {
        "client_id": "id-123", "client_secret": "s3cr3t"}}}}}
    plain.write_text(yaml.safe_dump(data))
    path = tmp_path / "test.secret.yaml"
    secrets.encrypt(plain, path, [age_key[1]])
    plain.unlink()
    return path, data


def test_round_trip_through_a_private_temporary_file(encrypted, age_key):
    path, data = encrypted
    secrets.check_encrypted(path)
    assert "s3cr3t" not in path.read_text()
    with secrets.decrypted("test", path, env={"SOPS_AGE_KEY": age_key[0]}) as plain:
        assert stat.S_IMODE(plain.stat().st_mode) == 0o600
        assert stat.S_IMODE(plain.parent.stat().st_mode) == 0o700
        assert secrets.read_values(plain) == data
    assert not plain.exists() and not plain.parent.exists()


def test_the_temporary_file_is_removed_when_the_block_fails(encrypted, age_key):
    path, _ = encrypted
    with pytest.raises(RuntimeError):
        with secrets.decrypted("test", path, env={"SOPS_AGE_KEY": age_key[0]}) as plain:
            raise RuntimeError("helm failed")
    assert not plain.parent.exists()


def test_a_wrong_key_names_the_cluster_and_the_file(encrypted, tmp_path):
    path, _ = encrypted
    other = str(pyrage.x25519.Identity.generate())
    with pytest.raises(secrets.SecretError) as error:
        with secrets.decrypted("gcp-test", path, env={"SOPS_AGE_KEY": other, "SOPS_AGE_KEY_FILE": os.devnull}):
            pytest.fail("decrypted with the wrong key")
    assert error.value.cluster == "gcp-test"
    assert str(path) in str(error.value) and "cannot decrypt" in str(error.value)
    assert "SOPS_AGE_KEY" in str(error.value)


def test_a_missing_file_names_the_cluster_and_the_file(tmp_path):
    with pytest.raises(secrets.SecretError) as error:
        with secrets.decrypted("aws-test", tmp_path / "aws-test.secret.yaml"):
            pass
    assert "aws-test.secret.yaml" in str(error.value) and "missing" in str(error.value)
    assert error.value.cluster == "aws-test"


def test_a_clear_text_secret_file_is_refused_before_sops_runs(tmp_path):
    path = tmp_path / "x.secret.yaml"
    path.write_text("jupyterhub: {hub: {config: {GitHubOAuthenticator: {client_secret: oops}}}}\n")
    with pytest.raises(secrets.SecretError, match="not encrypted with sops"):
        with secrets.decrypted("x", path, sops="/nonexistent/sops"):
            pass


def test_a_partly_encrypted_file_is_refused(encrypted):
    path, _ = encrypted
    data = yaml.safe_load(path.read_text())
    data["jupyterhub"]["hub"]["config"]["GitHubOAuthenticator"]["client_secret"] = "added-later"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError) as error:
        secrets.check_encrypted(path)
    assert error.value.key == "jupyterhub.hub.config.GitHubOAuthenticator.client_secret"


def test_health_token_is_read_from_the_health_service():
    values = {"jupyterhub": {"hub": {"services": {secrets.HEALTH_SERVICE: {"apiToken": "t"}}}}}
    assert secrets.health_token(values) == "t"
    assert secrets.health_token({}) is None


def test_init_writes_an_encrypted_template_with_a_fresh_health_token(tmp_path, monkeypatch, age_key):
    monkeypatch.setattr(secrets, "secret_file", lambda name: tmp_path / f"{name}.secret.yaml")
    monkeypatch.setattr(secrets, "ops_age_recipient", lambda: age_key[1])
    path = secrets.init("gcp-new", age_only=True)
    secrets.check_encrypted(path)
    with secrets.decrypted("gcp-new", path, env={"SOPS_AGE_KEY": age_key[0]}) as plain:
        data = secrets.read_values(plain)
    oauth = data["jupyterhub"]["hub"]["config"]["GitHubOAuthenticator"]
    assert oauth["client_id"].startswith("REPLACE-ME-gcp-new")
    token = secrets.health_token(data)
    assert len(token) == 64 and token != secrets.health_token(secrets.template("gcp-new"))
    assert data["jupyterhub"]["hub"]["loadRoles"] == {"admin": {"services": [secrets.HEALTH_SERVICE]}}
    with pytest.raises(ConfigError, match="exists already"):
        secrets.init("gcp-new", age_only=True)


def test_the_ops_recipient_is_the_public_key_in_sops_config():
    assert secrets.ops_age_recipient() == _sops_rules()[-1]["key_groups"][0]["age"][0]
