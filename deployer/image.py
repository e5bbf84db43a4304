"""The user image: its repo2docker specification, its content tag, and building and pushing it.

The tag is a hash of every file in images/pangeo-notebook/, so it changes exactly when the image does.
helm/pangeo-cloud/values.yaml holds the tag the clusters run (jupyterhub.singleuser.image.tag); each
cluster file names the repository (notebook.image.name). The local stack installs the pip-installable
subset of the same pins (`pip_requirements`).
"""

import hashlib
import os
import re
import subprocess

import yaml

from .facts import REPO, ConfigError, cluster_names, load, read_yaml

IMAGE_DIR = REPO / "images" / "pangeo-notebook"
ENVIRONMENT = IMAGE_DIR / "environment.yml"
VALUES = REPO / "helm" / "pangeo-cloud" / "values.yaml"
TAG_KEY = ("jupyterhub", "singleuser", "image", "tag")
TAG_LENGTH = 12
# `make image` builds under this name (the kind cluster loads it as is); `make image-push` re-tags it
# for each registry.
LOCAL_NAME = "pangeo/pangeo-notebook"
# Clusters of these stages pull from a registry; test and local clusters use the locally built image.
PUSHED_STAGES = ("staging", "production")
REPO2DOCKER = REPO / ".venv" / "repo2docker" / "bin" / "jupyter-repo2docker"
DOCKER = "docker"
# The image's user: z2jh runs notebooks as uid 1000 by default, and repo2docker would otherwise take the
# uid of whoever builds (root in CI, which it refuses).
USER_ID, USER_NAME = 1000, "jovyan"
# conda-forge names whose PyPI package is named differently; None: not installed with pip locally.
# pip stays: researchers run `pip install --user` in their servers (docs/packages.md), locally too.
PIP_NAMES = {"python": None, "jupyterhub-singleuser": "jupyterhub", "netcdf4": "netCDF4"}
# conda-forge versions that PyPI publishes with a further release segment (netCDF4 1.7.5 -> 1.7.5.1.post1)
PIP_VERSION_PREFIX = {"netcdf4"}


class ImageError(Exception):
    """A step of building or pushing the image cannot run here, or failed; the message says which."""


def conda_pins(environment=ENVIRONMENT):
    pins = {}
    for dependency in read_yaml(environment)["dependencies"]:
        if isinstance(dependency, str):
            name, _, version = dependency.partition("=")
            pins[name] = version
    return pins


def pip_requirements(environment=ENVIRONMENT):
    lines = []
    for name, version in conda_pins(environment).items():
        pip_name = PIP_NAMES.get(name, name)
        if pip_name is None:
            continue
        lines.append(f"{pip_name}=={version}.*" if name in PIP_VERSION_PREFIX else f"{pip_name}=={version}")
    return lines


def content_tag(directory=None):
    """Hash of every file's relative path and bytes; repo2docker copies all of them into the image.

    Python's bytecode caches are left out: importing the image's modules in a test writes them (with the
    source's mtime inside), and they are not part of what the image is built from a clean checkout."""
    directory = directory or IMAGE_DIR
    digest = hashlib.sha256()
    files = sorted(p for p in directory.rglob("*")
                   if p.is_file() and "__pycache__" not in p.relative_to(directory).parts)
    for path in files:
        name = path.relative_to(directory).as_posix().encode()
        data = path.read_bytes()
        # lengths keep (path, bytes) boundaries unambiguous
        digest.update(b"%d:%s%d:" % (len(name), name, len(data)))
        digest.update(data)
    return digest.hexdigest()[:TAG_LENGTH]


def _tag_line(text):
    """Index of the line holding jupyterhub.singleuser.image.tag in block-style YAML."""
    stack = []  # (indent, key) of the enclosing mappings
    scalar_indent = None  # inside a block scalar (`key: |`) started at this indent
    for index, line in enumerate(text.splitlines()):
        indent = len(line) - len(line.lstrip(" "))
        if scalar_indent is not None:
            if not line.strip() or indent > scalar_indent:
                continue
            scalar_indent = None
        match = re.match(r"^( *)([A-Za-z0-9_.-]+):(\s|$)", line)
        if not match:
            continue
        key = match.group(2)
        while stack and stack[-1][0] >= indent:
            stack.pop()
        stack.append((indent, key))
        if tuple(k for _, k in stack) == TAG_KEY:
            return index
        if re.search(r":\s*[|>][-+0-9]*\s*(#.*)?$", line):
            scalar_indent = indent
    return None


def values_tag(values=None):
    """The tag the clusters run, from the common values."""
    values = values or VALUES
    node = read_yaml(values)
    for key in TAG_KEY:
        node = node.get(key) if isinstance(node, dict) else None
    if not isinstance(node, str) or not node:
        raise ConfigError(values, ".".join(TAG_KEY),
                          "missing: the notebook image tag; run `python -m deployer image tag --write`")
    return node


def write_values_tag(tag, values=None):
    """Replace only the tag's value in the common values, keeping every comment and other line."""
    values = values or VALUES
    text = values.read_text()
    index = _tag_line(text)
    if index is None:
        raise ConfigError(values, ".".join(TAG_KEY), 'no such line to update; add `tag: ""` under '
                          "jupyterhub.singleuser.image")
    expected = read_yaml(values)
    node = expected
    for key in TAG_KEY[:-1]:
        node = node[key]
    node[TAG_KEY[-1]] = tag
    lines = text.splitlines(keepends=True)
    lines[index] = re.sub(r"^( *tag:).*?(\s*#.*)?(\r?\n)?$",
                          lambda m: f'{m.group(1)} "{tag}"{m.group(2) or ""}{m.group(3) or ""}', lines[index])
    updated = "".join(lines)
    if yaml.safe_load(updated) != expected:
        raise ConfigError(values, ".".join(TAG_KEY), f"could not set the tag to {tag!r} on its own; "
                          "edit the line by hand")
    values.write_text(updated)


def push_names(clusters=None):
    """Every distinct image repository the given (default: all pushed-to) clusters pull from."""
    names = set()
    for name in clusters or cluster_names():
        cluster = load(name)
        if clusters or cluster["stage"] in PUSHED_STAGES:
            names.add(cluster["notebook"]["image"]["name"])
    return sorted(names)


def _run(args, what):
    try:
        return subprocess.run(args, capture_output=True, text=True)
    except FileNotFoundError:
        raise ImageError(f"needs {what}: `{args[0]}` is not installed") from None


def require_docker():
    result = _run([DOCKER, "info"], "a Docker engine")
    if result.returncode != 0:
        reason = (result.stderr.strip() or result.stdout.strip() or f"exit {result.returncode}").splitlines()[-1]
        raise ImageError(f"needs a Docker engine: `{DOCKER} info` failed: {reason}")


def repo2docker_args(image, dry_run=False):
    """jupyter-repo2docker's command line for the image directory."""
    args = [str(REPO2DOCKER), "--user-id", str(USER_ID), "--user-name", USER_NAME]
    if dry_run:
        args.append("--no-build")
    else:
        # --no-run alone leaves a buildx image outside the engine's store, where `docker push` needs it
        args += ["--no-run", "--DockerEngine.extra_buildx_build_args=--load", "--image-name", image]
    return args + [str(IMAGE_DIR)]


def build():
    """Build LOCAL_NAME:<content tag> and record the tag in the common values; returns the image."""
    if not REPO2DOCKER.exists():
        raise ImageError(f"needs repo2docker: {os.path.relpath(REPO2DOCKER, REPO)} is missing; run `make setup`")
    require_docker()
    tag = content_tag()
    image = f"{LOCAL_NAME}:{tag}"
    if subprocess.run(repo2docker_args(image)).returncode != 0:
        raise ImageError(f"repo2docker could not build {image}; its log is above")
    write_values_tag(tag)
    return image


def push(clusters=None):
    """Tag the built image for each cluster registry and push it there; returns the pushed images."""
    require_docker()
    tag = values_tag()
    if tag != content_tag():
        raise ConfigError(VALUES, ".".join(TAG_KEY), f"{tag!r} is not the content hash of {IMAGE_DIR.name} "
                          f"({content_tag()!r}); run `make image` first")
    local = f"{LOCAL_NAME}:{tag}"
    if _run([DOCKER, "image", "inspect", local], "a Docker engine").returncode != 0:
        raise ImageError(f"no local image {local}; run `make image` first")
    pushed = []
    for name in push_names(clusters):
        remote = f"{name}:{tag}"
        for args in ([DOCKER, "tag", local, remote], [DOCKER, "push", remote]):
            if subprocess.run(args).returncode != 0:
                raise ImageError(f"`{' '.join(args)}` failed (is `docker login` done for {name.split('/')[0]}?)")
        pushed.append(remote)
    return pushed

