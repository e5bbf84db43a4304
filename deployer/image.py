"""The user image: its repo2docker specification, and the pins the local stack shares with it."""

from .facts import REPO, read_yaml

IMAGE_DIR = REPO / "images" / "pangeo-notebook"
ENVIRONMENT = IMAGE_DIR / "environment.yml"
# conda-forge names whose PyPI package is named differently; None: not installed with pip locally.
PIP_NAMES = {"python": None, "pip": None, "jupyterhub-singleuser": "jupyterhub", "netcdf4": "netCDF4"}
# conda-forge versions that PyPI publishes with a further release segment (netCDF4 1.7.5 -> 1.7.5.1.post1)
PIP_VERSION_PREFIX = {"netcdf4"}


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
