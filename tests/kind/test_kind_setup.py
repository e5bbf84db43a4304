"""The kind tier's own pieces, checked without a cluster (these run everywhere): ports that must agree,
the extra values, the stand-in sidecar, the secrets the tier deploys with, and the missing-tool message."""

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
import yaml

import hub_config
from deployer import deploy, facts, kind, secrets, values
from deployer.local import github_standin
from tests.kind import conftest as kind_tier

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def kind_facts():
    return facts.load("kind")


def port_mappings():
    config = yaml.safe_load(kind.CONFIG.read_text())
    assert config["name"] == kind.NAME and len(config["nodes"]) == 1
    return {m["containerPort"]: m for m in config["nodes"][0]["extraPortMappings"]}


def test_the_proxy_node_port_is_the_hubs_url_on_the_host(kind_facts):
    mapping = port_mappings()[values.KIND_HTTP_NODE_PORT]
    assert mapping["listenAddress"] == "127.0.0.1"
    assert mapping["hostPort"] == 80 and hub_config.hub_url(kind_facts) == kind_tier.HUB_URL == "http://localhost"
    proxy = values.merged_values(kind_facts)["jupyterhub"]["proxy"]["service"]
    assert proxy == {"type": "NodePort", "nodePorts": {"http": values.KIND_HTTP_NODE_PORT}}


def test_the_standin_is_one_url_for_the_hub_pod_and_the_host(kind_facts):
    github_url = kind_facts["github"]["url"]
    assert github_url.startswith("http://localhost:")
    port = int(github_url.rsplit(":", 1)[1])
    service = yaml.safe_load((HERE / "standin-service.yaml").read_text())["spec"]
    node_port = service["ports"][0]["nodePort"]
    assert service["ports"][0]["targetPort"] == port
    assert port_mappings()[node_port]["hostPort"] == port
    sidecar = yaml.safe_load(kind_tier.EXTRA_VALUES.read_text())["jupyterhub"]["hub"]["extraContainers"][0]
    assert sidecar["ports"][0]["containerPort"] == port
    assert {"name": "STANDIN_PORT", "value": str(port)} in sidecar["env"]
    assert service["selector"] == {"component": "hub", "release": values.release_name(kind_facts)}


def test_the_extra_values_are_valid_for_the_chart(kind_facts):
    extra = yaml.safe_load(kind_tier.EXTRA_VALUES.read_text())
    merged = values.deep_merge(values.merged_values(kind_facts), extra)
    values.validate_values(merged, kind_tier.EXTRA_VALUES)
    chart_defaults = yaml.safe_load((values.UPSTREAM_SCHEMAS / "z2jh-4.4.0.values.yaml").read_text())
    hub_image = chart_defaults["hub"]["image"]
    sidecar = extra["jupyterhub"]["hub"]["extraContainers"][0]
    assert sidecar["image"] == f"{hub_image['name']}:{hub_image['tag']}", "the sidecar runs the hub's own image"


def test_the_standin_users_play_the_smoke_roles_in_the_kind_teams(kind_facts):
    data = yaml.safe_load(kind_tier.STANDIN_USERS.read_text())
    directory = github_standin.Directory(data["users"], data["orgs"], data["roles"])

    def in_any(login, teams):
        return any(directory.in_team(*team.split(":"), login) for team in teams)

    github = kind_facts["github"]
    roles = data["roles"]
    assert in_any(roles["member"], github["allowed_teams"]) and in_any(roles["member2"], github["allowed_teams"])
    assert in_any(roles["admin"], github["admin_teams"])
    assert not in_any(roles["outsider"], github["allowed_teams"] + github["admin_teams"])


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_sidecar_serves_the_standin_from_the_configmap_layout(tmp_path):
    # the ConfigMap's three keys, as the pod sees them under /etc/pangeo-standin
    shutil.copy(github_standin.__file__, tmp_path / "github_standin.py")
    shutil.copy(HERE / "standin_sidecar.py", tmp_path / "standin_sidecar.py")
    shutil.copy(kind_tier.STANDIN_USERS, tmp_path / "users.yaml")
    port = _free_port()
    env = {**os.environ, "STANDIN_DIR": str(tmp_path), "STANDIN_PORT": str(port), "STANDIN_ADDRESS": "127.0.0.1"}
    process = subprocess.Popen([sys.executable, str(tmp_path / "standin_sidecar.py")], env=env, cwd=tmp_path,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                root = requests.get(f"http://127.0.0.1:{port}/", timeout=2)
                break
            except requests.ConnectionError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"the sidecar did not start: {process.stdout.read() if process.poll() is not None else 'timeout'}")
                time.sleep(0.1)
        assert root.json()["users"] == ["ada", "alice", "bob", "eve"]
        page = requests.get(f"http://127.0.0.1:{port}/login/oauth/authorize", timeout=5, params={
            "client_id": github_standin.CLIENT_ID, "redirect_uri": "http://localhost/hub/oauth_callback", "state": "s"})
        assert page.status_code == 200 and 'value="alice"' in page.text
    finally:
        process.terminate()
        process.wait(10)


def test_the_tiers_secrets_decrypt_and_satisfy_the_deploy(tmp_path):
    path, sops_env = kind_tier.encrypted_secrets(tmp_path, "a-token")
    secrets.check_encrypted(path)
    with secrets.decrypted("kind", path, env=sops_env) as plain:
        data = secrets.read_values(plain)
    deploy.check_secret_values("kind", path, data)
    assert secrets.health_token(data) == "a-token"
    oauth = data["jupyterhub"]["hub"]["config"]["GitHubOAuthenticator"]
    assert (oauth["client_id"], oauth["client_secret"]) == (github_standin.CLIENT_ID, github_standin.CLIENT_SECRET)


def test_kind_up_without_kind_says_where_to_get_it(monkeypatch, capsys):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    assert kind.cli("up") == 2
    assert capsys.readouterr().err.strip() == "needs kind: install from https://kind.sigs.k8s.io"
    assert kind_tier.missing_tools() == "needs kind and docker (a Docker engine): not found"
