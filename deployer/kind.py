"""The kind cluster of `make kind-up` / `make kind-down` / `make test-kind`.

kind is not on PyPI or npm, so it is not installed by `make setup`: https://kind.sigs.k8s.io (CI uses
helm/kind-action). Its name and kubeconfig context match config/clusters/kind.yaml (`kind-pangeo`).
"""

import shutil
import subprocess
import sys

from .facts import REPO

NAME = "pangeo"
CONTEXT = f"kind-{NAME}"
CONFIG = REPO / "tests" / "kind" / "kind-config.yaml"
INSTALL_HINT = "needs kind: install from https://kind.sigs.k8s.io"


class NeedsTool(Exception):
    pass


def kind_binary():
    found = shutil.which("kind")
    if not found:
        raise NeedsTool(INSTALL_HINT)
    return found


def docker_ready():
    """True when a Docker engine answers (kind runs its node as a container)."""
    docker = shutil.which("docker")
    if not docker:
        return False
    return subprocess.run([docker, "info"], capture_output=True).returncode == 0


def exists(kind=None):
    result = subprocess.run([kind or kind_binary(), "get", "clusters"], capture_output=True, text=True)
    return result.returncode == 0 and NAME in result.stdout.split()


def up():
    kind = kind_binary()
    if not docker_ready():
        raise NeedsTool("needs docker (a Docker engine): `docker info` fails")
    if exists(kind):
        print(f"kind cluster {NAME!r} exists (context {CONTEXT})")
        return
    subprocess.run([kind, "create", "cluster", "--name", NAME, "--config", str(CONFIG), "--wait", "180s"],
                   check=True)
    print(f"kind cluster {NAME!r} is up (context {CONTEXT})")


def down():
    kind = kind_binary()
    subprocess.run([kind, "delete", "cluster", "--name", NAME], check=True)


def load_image(image):
    """Copy a locally built image into the kind node, so that pods need no registry."""
    subprocess.run([kind_binary(), "load", "docker-image", image, "--name", NAME], check=True)


def cli(action):
    try:
        {"up": up, "down": down}[action]()
    except NeedsTool as e:
        print(e, file=sys.stderr)
        return 2
    except subprocess.CalledProcessError as e:
        print(f"error: kind {action}: {e}", file=sys.stderr)
        return 1
    return 0
