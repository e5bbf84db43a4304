"""The user image: repo2docker accepts it, its tag is its content, its pins agree with the hub, the gateway
and the local stack, and its Dask settings lead to the gateway's dashboards. Offline."""

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import textwrap
from urllib.parse import urlsplit

import pytest
import yaml
from traitlets.config import Config

from deployer import facts, image, values
from deployer.__main__ import main
from deployer.facts import REPO, read_yaml

USER_ENV = REPO / ".venv" / "user"
USER_PYTHON = USER_ENV / "bin" / "python"
CHART = read_yaml(REPO / "helm" / "pangeo-cloud" / "Chart.yaml")
PINS = image.conda_pins()


def _needs_user_env():
    if not USER_PYTHON.exists():
        pytest.skip("needs .venv/user (the notebook environment's pip subset): run `make setup`")


def _version(name, text):
    """The version `name==X` pins in a requirements file's text."""
    match = re.search(rf"^{re.escape(name)}(\[[^\]]*\])?==([^\s;#]+)", text, re.MULTILINE | re.IGNORECASE)
    return match and match.group(2)


# ---- the tag is the image's content ------------------------------------------------------------------

def test_values_tag_is_the_content_hash():
    tag, expected = image.values_tag(), image.content_tag()
    assert tag == expected, (
        f"helm/pangeo-cloud/values.yaml jupyterhub.singleuser.image.tag is {tag!r}, but the files of "
        f"images/pangeo-notebook hash to {expected!r}: run `make image` (or `python -m deployer image tag --write`)")


def test_content_tag_changes_exactly_when_a_file_does(tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(image.IMAGE_DIR, copy)
    original = image.content_tag(copy)
    assert re.fullmatch(r"[0-9a-f]{12}", original)
    assert original == image.content_tag(), "the tag must not depend on where the directory is"

    (copy / "postBuild").chmod(0o644)
    assert image.content_tag(copy) == original, "repo2docker makes postBuild executable itself"

    env = copy / "environment.yml"
    env.write_text(env.read_text().replace("numpy=", "numpy=1"))
    changed = image.content_tag(copy)
    env.write_text((image.IMAGE_DIR / "environment.yml").read_text())
    assert changed != original and image.content_tag(copy) == original

    (copy / "dask.yaml").rename(copy / "dask.yml")
    assert image.content_tag(copy) != original, "a rename changes what repo2docker copies"
    (copy / "dask.yml").rename(copy / "dask.yaml")

    # Importing the image's own Python modules (the message extension's tests do) writes bytecode caches;
    # a tag that counted them would differ between a fresh clone and a tested checkout.
    (copy / "__pycache__").mkdir(exist_ok=True)
    (copy / "__pycache__" / "pangeo_messages.cpython-311.pyc").write_bytes(b"\x00cache")
    assert image.content_tag(copy) == original, "bytecode caches are not part of the image's files"

    (copy / "sub").mkdir()
    (copy / "sub" / "extra.txt").write_text("")
    assert image.content_tag(copy) != original, "an added (even empty) file changes the tag"


def test_tag_write_changes_only_the_tag_line(tmp_path, monkeypatch, capsys):
    values = tmp_path / "values.yaml"
    shutil.copy(image.VALUES, values)
    monkeypatch.setattr(image, "VALUES", values)
    before = values.read_text().splitlines()

    assert main(["image", "tag", "--write"]) == 0
    assert capsys.readouterr().out.strip() == image.content_tag()
    image.write_values_tag("0123456789ab")

    after = values.read_text().splitlines()
    changed = [(b, a) for b, a in zip(before, after) if b != a]
    assert len(before) == len(after) and len(changed) == 1, changed
    assert image.values_tag() == "0123456789ab"
    expected = read_yaml(image.VALUES)
    expected["jupyterhub"]["singleuser"]["image"]["tag"] = "0123456789ab"
    assert yaml.safe_load(values.read_text()) == expected


def test_tag_write_ignores_lookalike_lines(tmp_path):
    values = tmp_path / "values.yaml"
    values.write_text(textwrap.dedent("""\
        jupyterhub:
          hub:
            extraConfig:
              snippet: |
                singleuser:
                  image:
                    tag: not-this
          singleuser:
            image:
              name: x
              tag: "old"  # kept comment
        dask-gateway:
          gateway:
            backend:
              image:
                tag: not-this-either
        """))
    image.write_values_tag("abcdefabcdef", values)
    text = values.read_text()
    assert 'tag: "abcdefabcdef"  # kept comment' in text
    assert text.count("not-this") == 2


def test_tag_write_names_the_file_and_key_when_the_line_is_missing(tmp_path):
    values = tmp_path / "values.yaml"
    values.write_text("jupyterhub:\n  singleuser: {}\n")
    with pytest.raises(facts.ConfigError, match=r"values.yaml: jupyterhub.singleuser.image.tag: no such line"):
        image.write_values_tag("abcdefabcdef", values)
    with pytest.raises(facts.ConfigError, match=r"jupyterhub.singleuser.image.tag: missing"):
        image.values_tag(values)


# ---- repo2docker accepts the specification ------------------------------------------------------------

def test_repo2docker_renders_a_dockerfile():
    if not image.REPO2DOCKER.exists():
        pytest.skip("needs repo2docker: .venv/repo2docker is missing (`make setup` installs it)")
    result = subprocess.run(image.repo2docker_args("unused", dry_run=True), capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    dockerfile = result.stdout
    assert "FROM " in dockerfile
    assert re.search(r'env update -p \$\{NB_PYTHON_PREFIX\} --file "environment.yml"', dockerfile), \
        "repo2docker must build the notebook environment from our environment.yml"
    assert "RUN ./postBuild" in dockerfile, "repo2docker must run our postBuild (it installs dask.yaml)"
    assert "Building conda environment for python=3.12" in result.stderr


def test_postbuild_installs_the_dask_and_jupyter_config(tmp_path):
    work, prefix = tmp_path / "repo", tmp_path / "srv" / "conda" / "envs" / "notebook"
    shutil.copytree(image.IMAGE_DIR, work)
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(prefix)], check=True)
    env = {"PATH": os.environ["PATH"], "NB_PYTHON_PREFIX": str(prefix)}
    for _ in range(2):  # again, as `make setup` does after a change: it replaces its own files
        result = subprocess.run(["bash", "./postBuild"], cwd=work, env=env, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
    installed = {
        "etc/dask/pangeo.yaml": "dask.yaml",
        "etc/jupyter/jupyter_server_config.py": "jupyter_server_config.py",
        "etc/jupyter/jupyter_server_config.d/pangeo_dask_panel.json": "jupyter_server_config.d/pangeo_dask_panel.json",
        "etc/jupyter/labconfig/page_config.json": "labconfig/page_config.json",
    }
    for where, source in installed.items():
        assert (prefix / where).read_text() == (image.IMAGE_DIR / source).read_text(), where
    found = subprocess.run([str(prefix / "bin" / "python"), "-c", "import importlib.util as u; "
                            "print(u.find_spec('pangeo_dask_panel').origin)"], capture_output=True, text=True)
    assert found.stdout.strip().startswith(str(prefix)), found.stderr


# ---- the pins agree across the repository -------------------------------------------------------------

def test_environment_pins_every_package_exactly():
    spec = read_yaml(image.ENVIRONMENT)
    assert spec["channels"] == ["conda-forge", "nodefaults"], "one channel, so a rebuild solves the same"
    for dependency in spec["dependencies"]:
        assert isinstance(dependency, str) and re.fullmatch(r"[a-z0-9-]+=[0-9][0-9.]*", dependency), \
            f"images/pangeo-notebook/environment.yml: {dependency!r} must be pinned as name=version"
    wanted = {"python", "jupyterlab", "jupyterhub-singleuser", "dask", "distributed", "dask-gateway",
              "dask-labextension", "xarray", "zarr", "netcdf4", "intake", "fsspec", "gcsfs", "s3fs", "pandas",
              "numpy", "matplotlib"}
    assert wanted <= set(PINS), f"missing from the image: {sorted(wanted - set(PINS))}"
    assert PINS["jupyterlab"].split(".")[0] == "4"


def test_dask_and_distributed_are_pinned_equal():
    assert PINS["dask"] == PINS["distributed"], f"dask {PINS['dask']} vs distributed {PINS['distributed']}: pin them equal"


def test_dask_gateway_client_matches_the_gateway_server():
    chart = {d["name"]: d["version"] for d in CHART["dependencies"]}["dask-gateway"]
    assert PINS["dask-gateway"] == chart, "the notebook's dask-gateway client must equal the gateway chart"
    servers = {}
    for requirements in sorted((REPO / "requirements").glob("*.txt")):
        version = _version("dask-gateway-server", requirements.read_text())
        if version:
            servers[requirements.name] = version
    assert "gateway.txt" in servers, "the local stack's gateway must pin dask-gateway-server"
    assert set(servers.values()) == {chart}, f"dask-gateway-server pins {servers} differ from the chart's {chart}"


def test_singleuser_jupyterhub_is_the_hubs_version():
    hub = _version("jupyterhub", (REPO / "requirements" / "hub-image.txt").read_text())
    singleuser = PINS["jupyterhub-singleuser"]
    # JupyterHub guarantees the hub <-> single-user API within a minor series
    assert singleuser.split(".")[:2] == hub.split(".")[:2], f"singleuser {singleuser} vs hub {hub}"


def test_local_user_environment_has_the_image_pins():
    _needs_user_env()
    requirements = [re.match(r"([^=]+)==(.+)", line).groups() for line in image.pip_requirements()]
    script = ("import importlib.metadata as m, json, sys; "
              "print(json.dumps({n: m.version(n) for n in sys.argv[1:]}))")
    result = subprocess.run([str(USER_PYTHON), "-c", script, *(n for n, _ in requirements)],
                            capture_output=True, text=True, check=True)
    installed = json.loads(result.stdout)
    for name, pin in requirements:
        ok = installed[name].startswith(pin[:-1]) if pin.endswith(".*") else installed[name] == pin
        assert ok, (f".venv/user has {name} {installed[name]}, the image pins {pin}: "
                    f"run `make .venv/user/.installed`")
    local_config = USER_ENV / "etc" / "dask" / "pangeo.yaml"
    assert local_config.exists() and local_config.read_text() == (image.IMAGE_DIR / "dask.yaml").read_text(), \
        ".venv/user must have the image's Dask configuration: run `make .venv/user/.postbuild`"


def test_gateway_scheduler_and_worker_commands_exist_in_the_pinned_distributed():
    _needs_user_env()
    import gateway_config
    from dask_gateway_server.backends.kubernetes import KubeClusterConfig

    assert hasattr(gateway_config, "configure"), "gateway_config.py must define configure(c, facts)"
    checked = set()
    for name in facts.cluster_names():
        cluster = facts.load(name)
        if cluster["cloud"] == "local":
            continue
        c = Config()
        gateway_config.configure(c, cluster)
        config = KubeClusterConfig(config=c)
        for cmd in (config.scheduler_cmd, config.worker_cmd):
            cmd = shlex.split(cmd) if isinstance(cmd, str) else list(cmd)
            checked.add(tuple([os.path.basename(cmd[0]), *cmd[1:]]))
    assert checked
    for program, *args in sorted(checked):
        executable = USER_ENV / "bin" / program
        assert executable.exists(), f"gateway_config.py runs {program!r}, which distributed {PINS['distributed']} lacks"
        result = subprocess.run([str(executable), *args, "--help"], capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, f"`{program} {' '.join(args)}` fails in distributed {PINS['distributed']}: " \
                                       f"{result.stderr[-500:]}"


# ---- Dask in the notebook goes to the gateway, on the notebook's own image ------------------------------

def _chart_clusters():
    """Merged values of every cluster deployed with the charts (the local stack has its own layer)."""
    return {name: values.merged_values(facts.load(name)) for name in facts.cluster_names()
            if facts.load(name)["cloud"] != "local"}


def test_notebooks_and_dask_workers_run_the_tagged_image():
    tag = image.content_tag()
    for name, merged in _chart_clusters().items():
        notebook = merged["jupyterhub"]["singleuser"]["image"]
        workers = merged["dask-gateway"]["gateway"]["backend"]["image"]
        expected = {"name": facts.load(name)["notebook"]["image"]["name"], "tag": tag}
        assert {k: notebook[k] for k in expected} == expected, f"{name}: notebook image"
        assert {k: workers[k] for k in expected} == expected, f"{name}: default scheduler/worker image"


_DASK_IN_THE_NOTEBOOK = textwrap.dedent("""\
    import importlib, json, sys
    import dask, dask_labextension
    from dask_gateway import Gateway
    from dask_gateway.client import ClusterReport
    factory = dask.config.get("labextension.factory")
    cls = getattr(importlib.import_module(factory["module"]), factory["class"])
    gateway = Gateway()
    report = ClusterReport._from_json(gateway._public_address, gateway.proxy_address, json.loads(sys.argv[1]))
    print(json.dumps({"factory": f"{cls.__module__}.{cls.__name__}", "address": gateway.address,
                      "dashboard": report.dashboard_link}))
    """)


def test_labextension_and_dashboards_point_to_the_gateway(tmp_path):
    _needs_user_env()
    from dask_gateway_server.models import Cluster, ClusterStatus

    # the gateway server's own report of a running cluster, as the notebook's client receives it
    report = Cluster("abc123", "alice", "t", {}, {}, ClusterStatus.RUNNING,
                     dashboard_address="http://10.0.0.1:8787", start_time=0).to_dict(full=False)
    site = tmp_path / "etc-dask"  # where postBuild puts it, as far as dask is concerned
    site.mkdir()
    shutil.copy(image.IMAGE_DIR / "dask.yaml", site / "pangeo.yaml")
    seen_envs = []
    for name, merged in _chart_clusters().items():
        prefix = merged["dask-gateway"]["gateway"]["prefix"].rstrip("/")
        env_vars = merged["jupyterhub"]["singleuser"]["extraEnv"]
        address = urlsplit(env_vars["DASK_GATEWAY__ADDRESS"])
        assert address.path.rstrip("/") == prefix
        # through the user's own server (jupyter-server-proxy) to the gateway: see images/pangeo-notebook/dask.yaml
        through_server = f"/user/alice/proxy/{address.hostname}:{address.port or 80}{prefix}"
        assert env_vars["DASK_GATEWAY__AUTH__TYPE"] == "jupyterhub"
        if env_vars in seen_envs:
            continue
        seen_envs.append(env_vars)
        env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "DASK_CONFIG": str(site),
               "JUPYTERHUB_API_TOKEN": "unused", "JUPYTER_IMAGE_SPEC": "registry/pangeo-notebook:tag",
               "JUPYTERHUB_SERVICE_PREFIX": "/user/alice/",
               # KubeSpawner formats extraEnv values (no field left here but doubled braces)
               **{k: str(v).format() for k, v in env_vars.items()}}
        result = subprocess.run([str(USER_PYTHON), "-c", _DASK_IN_THE_NOTEBOOK, json.dumps(report, default=str)],
                                env=env, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        seen = json.loads(result.stdout)
        assert seen["factory"] == "dask_gateway.client.GatewayCluster", "the Dask panel must make gateway clusters"
        assert seen["address"] == env_vars["DASK_GATEWAY__ADDRESS"].rstrip("/")
        assert seen["dashboard"] == f"{through_server}/clusters/abc123/status", \
            f"{name}: a gateway cluster's dashboard must open through the user's server (the Dask panel's proxy/)"


# ---- make image / make image-push ---------------------------------------------------------------------

def _fake_tool(path, log, rc=0, stderr=""):
    path.write_text(f"#!/bin/bash\necho \"$(basename $0) $*\" >> {log}\necho '{stderr}' >&2\nexit {rc}\n")
    path.chmod(0o755)
    return path


@pytest.mark.parametrize("action", ["build", "push"])
def test_without_a_docker_engine_image_commands_exit_2(tmp_path, monkeypatch, capsys, action):
    docker = _fake_tool(tmp_path / "docker", tmp_path / "log", rc=1,
                        stderr="Cannot connect to the Docker daemon at unix:///var/run/docker.sock.")
    monkeypatch.setattr(image, "DOCKER", str(docker))
    assert main(["image", action]) == 2
    err = capsys.readouterr().err
    assert f"needs a Docker engine: `{docker} info` failed: Cannot connect to the Docker daemon" in err
    assert "Traceback" not in err

    monkeypatch.setattr(image, "DOCKER", str(tmp_path / "no-such-docker"))
    assert main(["image", action]) == 2
    assert "needs a Docker engine" in capsys.readouterr().err


def test_build_tags_by_content_and_push_goes_to_every_deployed_registry(tmp_path, monkeypatch, capsys):
    log = tmp_path / "log"
    monkeypatch.setattr(image, "DOCKER", str(_fake_tool(tmp_path / "docker", log)))
    monkeypatch.setattr(image, "REPO2DOCKER", _fake_tool(tmp_path / "jupyter-repo2docker", log))
    values = tmp_path / "values.yaml"
    values.write_text(image.VALUES.read_text().replace(image.values_tag(), "stale"))
    monkeypatch.setattr(image, "VALUES", values)
    tag = image.content_tag()

    assert main(["image", "build"]) == 0
    calls = log.read_text().splitlines()
    r2d = next(c for c in calls if c.startswith("jupyter-repo2docker"))
    assert f"--image-name {image.LOCAL_NAME}:{tag}" in r2d and "--no-run" in r2d and "--user-id 1000" in r2d
    assert r2d.endswith(str(image.IMAGE_DIR))
    assert image.values_tag() == tag, "make image records the tag it built, as chartpress does"

    log.write_text("")
    assert main(["image", "push"]) == 0
    calls = log.read_text().splitlines()
    deployed = sorted({facts.load(n)["notebook"]["image"]["name"] for n in facts.cluster_names()
                       if facts.load(n)["stage"] in image.PUSHED_STAGES})
    assert deployed
    for name in deployed:
        assert f"docker tag {image.LOCAL_NAME}:{tag} {name}:{tag}" in calls
        assert f"docker push {name}:{tag}" in calls
    assert len([c for c in calls if c.startswith("docker push")]) == len(deployed)


def test_the_kind_cluster_runs_the_locally_built_image():
    # kind loads images from the local engine (no registry), so its name must be the one `make image` builds
    assert facts.load("kind")["notebook"]["image"]["name"] == image.LOCAL_NAME


# ---- what a researcher reads when something is refused (images/pangeo-notebook/pangeo_messages.py) ------

_REFUSALS_IN_THE_NOTEBOOK = textwrap.dedent("""\
    import json, os, sys
    sys.path.insert(0, sys.argv[1])
    import pangeo_messages
    from dask_gateway.options import Float, Options

    def shown(run):
        try:
            run()
        except Exception as e:
            return pangeo_messages.short_message(type(e), e, e.__traceback__)
        return "allowed"

    def raiser(module, exc, **local_vars):
        # code of `module` (s3fs, dask_gateway) raising `exc`, with the locals its frames would have
        scope = {"__name__": module, "exc": exc}
        exec("def f(" + ", ".join(local_vars) + "):\\n    raise exc", scope)
        return lambda: scope["f"](**local_vars)

    def notebook_cell(path, run):
        # a notebook's own variable named `path` (another file of the user's) is not what was refused
        run()

    def shown_on_gcs(run):
        os.environ["PANGEO_SCRATCH"] = "gs://pangeo-scratch/alice"
        try:
            return shown(run)
        finally:
            os.environ["PANGEO_SCRATCH"] = "s3://pangeo-scratch/alice"

    options = Options(Float("worker_memory", 1.0, max=16.0), Float("idle_timeout_minutes", 30.0, max=60.0))
    print(json.dumps({
        "option": shown(lambda: setattr(options, "worker_memory", 1000)),
        "idle": shown(lambda: setattr(options, "idle_timeout_minutes", 61)),
        "other_prefix": shown(lambda: notebook_cell("pangeo-scratch/alice/earlier",
                                                    raiser("s3fs.core", PermissionError("Access Denied."), path="pangeo-scratch/bob/x"))),
        "own_prefix": shown(raiser("s3fs.core", PermissionError("Access Denied."), path="pangeo-scratch/alice/x")),
        "elsewhere": shown(raiser("s3fs.core", PermissionError("Access Denied."), path="other-bucket/x")),
        "gcs": shown_on_gcs(raiser("gcsfs.retry", OSError("Forbidden: pangeo-scratch/bob/x"), path="pangeo-scratch/bob/x")),
        "gateway": shown(raiser("dask_gateway.client", ValueError("You already have 2 Dask clusters"))),
        "ours": shown(raiser("__main__", ValueError("a bug of the user's"))),
    }))
    """)


def test_notebook_refusals_read_as_the_gateway_words_them():
    """The client's own refusal of an option is shown in gateway_config's wording; scratch refusals name
    the cause; the gateway's refusals are their message alone; anything else keeps its traceback."""
    _needs_user_env()
    import gateway_config

    env = {"PATH": os.environ["PATH"], "PANGEO_SCRATCH": "s3://pangeo-scratch/alice"}
    result = subprocess.run([str(USER_PYTHON), "-c", _REFUSALS_IN_THE_NOTEBOOK, str(image.IMAGE_DIR)],
                            env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown["option"] == "ValueError: " + gateway_config.option_refusal("worker_memory", 1000, 16, "GiB")
    assert shown["idle"] == "ValueError: " + gateway_config.option_refusal("idle_timeout_minutes", 61, 60, "minutes")
    assert shown["other_prefix"].startswith("PermissionError: access denied to s3://pangeo-scratch/bob/x: it is not "
                                            "in your scratch prefix") and "s3://pangeo-scratch/alice" in shown["other_prefix"]
    assert "your own scratch prefix" in shown["own_prefix"] and "Restart your server" in shown["own_prefix"]
    assert shown["elsewhere"] is None and shown["ours"] is None
    assert shown["gcs"].startswith("OSError: access denied to gs://pangeo-scratch/bob/x: it is not in your scratch")
    assert shown["gateway"] == "ValueError: You already have 2 Dask clusters"


def test_the_image_names_the_units_the_gateway_publishes():
    import gateway_config
    import importlib.util

    spec = importlib.util.spec_from_file_location("pangeo_messages", image.IMAGE_DIR / "pangeo_messages.py")
    messages = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(messages)
    option_float, _ = gateway_config.option_types()
    published = {f.field: f.unit for f in gateway_config.cluster_options(facts.load("gcp-us-central1b")).fields
                 if isinstance(f, option_float)}
    assert messages.OPTION_UNITS == published
    for field, unit in published.items():
        assert messages.option_refusal(field, 1000, 16, unit) == gateway_config.option_refusal(field, 1000, 16, unit)
