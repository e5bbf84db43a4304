"""The umbrella chart with helm v4 (.venv/bin/helm): fetch the two charts it depends on, render it.

The chart repositories are known to helm only through this module's own repository list (under .venv/),
so an operator's own helm set-up is neither needed nor changed.
"""

import os
import subprocess
import tempfile

from .facts import REPO, read_yaml
from .values import CHART, dump_yaml, namespace, release_name

HELM = REPO / ".venv" / "bin" / "helm"
HELM_HOME = REPO / ".venv" / "helm"


class HelmError(Exception):
    """helm failed, or cannot get what it needs (the message says which and why)."""


def helm_env():
    return {
        **os.environ,
        "HELM_REPOSITORY_CONFIG": str(HELM_HOME / "repositories.yaml"),
        "HELM_REPOSITORY_CACHE": str(HELM_HOME / "repository-cache"),
    }


def helm(*args):
    if not HELM.is_file():
        raise HelmError(f"{HELM} is missing; `make setup` installs it")
    result = subprocess.run([str(HELM), *args], capture_output=True, text=True, env=helm_env())
    if result.returncode != 0:
        raise HelmError(f"helm {args[0]} {args[1] if len(args) > 1 else ''}: {result.stderr.strip()}")
    return result.stdout


def dependencies(chart_dir=CHART):
    return read_yaml(chart_dir / "Chart.lock")["dependencies"]


def fetched(chart_dir=CHART):
    """True when every locked chart is already in charts/ (nothing to download)."""
    return all((chart_dir / "charts" / f"{d['name']}-{d['version']}.tgz").is_file()
               for d in dependencies(chart_dir))


def build_dependencies(chart_dir=CHART):
    """`helm dependency build`: the locked versions of both charts into charts/, unless already there."""
    if fetched(chart_dir):
        return
    for dep in dependencies(chart_dir):
        result = subprocess.run([str(HELM), "repo", "add", "--force-update", dep["name"], dep["repository"]],
                                capture_output=True, text=True, env=helm_env())
        if result.returncode != 0:
            raise HelmError(f"cannot reach {dep['repository']}: {result.stderr.strip()}")
    helm("dependency", "build", str(chart_dir))


def template(facts, merged, chart_dir=CHART):
    """The manifests of the release for these values, as one multi-document YAML text."""
    with tempfile.TemporaryDirectory(prefix="pangeo-values-") as tmp:
        values_file = os.path.join(tmp, "values.yaml")
        with open(values_file, "w") as f:
            dump_yaml(merged, f)
        return helm("template", release_name(facts), str(chart_dir), "--namespace", namespace(facts), "-f", values_file)
