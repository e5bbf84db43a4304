"""Deploys config/clusters/kind.yaml into the kind cluster `pangeo` once per session, the way `make deploy`
does (same deployer.deploy, real sops with a throw-away age key), and hands it to the smoke suite.

Without kind and a Docker engine every test that needs the cluster skips, naming both. The cluster is
created when missing (and then deleted at the end, unless KEEP_KIND=1); one made by `make kind-up` is
reused and kept. See tests/kind/README.md.
"""

import os
import secrets as random
import shutil
import subprocess
import time
from pathlib import Path

import pyrage
import pytest
import requests
import yaml

from deployer import deploy, facts, kind, secrets, values
from deployer.local import github_standin
from tests.smoke.fixtures import *  # noqa: F401,F403 (pytest shows a conftest's fixtures only below it)
from tests.smoke.login import standin_login
from tests.smoke.report import record
from tests.smoke.target import Target

HERE = Path(__file__).resolve().parent
CLUSTER = "kind"
HUB_URL = "http://localhost"
STANDIN_USERS = HERE / "github-standin.yaml"
EXTRA_VALUES = HERE / "values.yaml"
NEEDS = "needs kind and docker (a Docker engine): not found"


def missing_tools():
    """Why the kind tier cannot run here, or None."""
    if not shutil.which("kind") or not kind.docker_ready():
        return NEEDS
    return None


def kubectl(*args, input=None):
    result = subprocess.run([str(deploy.KUBECTL), "--context", kind.CONTEXT, *args], input=input,
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)}: {result.stderr.strip()}")
    return result.stdout


def wait_for(url, seconds=120):
    deadline = time.monotonic() + seconds
    while True:
        try:
            if requests.get(url, timeout=5).status_code < 500:
                return
        except requests.RequestException:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"{url} did not answer within {seconds} s")
        time.sleep(1)


@pytest.fixture(scope="session")
def kind_cluster():
    reason = missing_tools()
    if reason:
        pytest.skip(reason)
    created = not kind.exists()
    if created:
        started = time.monotonic()
        kind.up()
        record("kind cluster create", time.monotonic() - started)
    yield kind.CONTEXT
    if created and os.environ.get("KEEP_KIND") != "1":
        kind.down()


def load_user_image(cluster):
    """Put the notebook image into the node when it was built here (`make image`): no registry needed."""
    image = values.merged_values(cluster)["jupyterhub"]["singleuser"]["image"]
    spec = f"{image['name']}:{image['tag']}"
    if subprocess.run(["docker", "image", "inspect", spec], capture_output=True).returncode == 0:
        kind.load_image(spec)
    return spec


def install_standin(namespace):
    """The GitHub stand-in's code, users and NodePort Service, before the hub pod that mounts them."""
    kubectl("apply", "-f", "-", input=kubectl("create", "namespace", namespace, "--dry-run=client", "-o", "yaml"))
    configmap = kubectl("create", "configmap", "github-standin", "--namespace", namespace,
                        f"--from-file=github_standin.py={github_standin.__file__}",
                        f"--from-file=standin_sidecar.py={HERE / 'standin_sidecar.py'}",
                        f"--from-file=users.yaml={STANDIN_USERS}", "--dry-run=client", "-o", "yaml")
    kubectl("apply", "--namespace", namespace, "-f", "-", input=configmap)
    kubectl("apply", "--namespace", namespace, "-f", str(HERE / "standin-service.yaml"))


def encrypted_secrets(directory, token):
    """The kind cluster's secret file, as an operator would keep it, encrypted to a throw-away age key."""
    identity = pyrage.x25519.Identity.generate()
    plain = directory / "plain.yaml"
    data = secrets.template(CLUSTER)
    hub = data["jupyterhub"]["hub"]
    hub["config"]["GitHubOAuthenticator"] = {"client_id": github_standin.CLIENT_ID,
                                             "client_secret": github_standin.CLIENT_SECRET}
    hub["services"][secrets.HEALTH_SERVICE]["apiToken"] = token
    plain.write_text(yaml.safe_dump(data))
    path = directory / "kind.secret.yaml"
    secrets.encrypt(plain, path, [str(identity.to_public())])
    plain.unlink()
    return path, {"SOPS_AGE_KEY": str(identity)}


@pytest.fixture(scope="session")
def kind_deployment(kind_cluster, tmp_path_factory):
    cluster = facts.load(CLUSTER)
    namespace = values.namespace(cluster)
    print(f"user image: {load_user_image(cluster)}")
    install_standin(namespace)
    token = random.token_hex(32)
    secret_path, sops_env = encrypted_secrets(tmp_path_factory.mktemp("kind-secrets"), token)
    started = time.monotonic()
    deploy.deploy(CLUSTER, secret_path=secret_path, sops_env=sops_env, extra_values=[EXTRA_VALUES],
                  check_health=False)
    record("kind deploy (CRDs, helm upgrade, rollout)", time.monotonic() - started)
    github_url = cluster["github"]["url"]
    wait_for(f"{github_url}/")
    wait_for(f"{HUB_URL}/hub/health")
    return {"facts": cluster, "namespace": namespace, "token": token, "github_url": github_url}


@pytest.fixture(scope="session")
def smoke_target(kind_deployment):
    roles = yaml.safe_load(STANDIN_USERS.read_text())["roles"]
    return Target(
        hub_url=HUB_URL,
        api_token=kind_deployment["token"],
        users=roles,
        facts=kind_deployment["facts"],
        login=lambda username: standin_login(HUB_URL, username),
        description=f"kind cluster {kind.NAME} ({kind.CONTEXT})",
    )


@pytest.fixture(scope="session")
def core_v1(kind_deployment):
    from kubernetes import client, config

    return client.CoreV1Api(config.new_client_from_config(context=kind.CONTEXT))


@pytest.fixture(scope="session")
def live_target(smoke_target):
    return smoke_target
