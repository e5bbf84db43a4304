"""`make deploy` / `make diff` / `make health`, offline: a fake command runner stands in for helm, kubectl
and pytest; sops runs for real with a throw-away age key."""

import io
import shutil
import stat
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import pyrage
import pytest
import yaml

from deployer import chart, deploy, secrets, values
from deployer.deploy import DeployError

HELM, KUBECTL = str(chart.HELM), str(deploy.KUBECTL)
REAL_MAKE_ADMIN = deploy.make_admin  # the tests replace it (no hub here); kept to test it with a fake session
REAL_RECONCILE = deploy.bucket.reconcile  # likewise (no cloud here)
HELM4_HELP = "Flags:\n      --rollback-on-failure   if set, Helm will rollback the upgrade\n"
HELM3_HELP = "Flags:\n      --atomic   if set, upgrade process rolls back changes made in case of failed upgrade\n"


class FakeRunner:
    """Records every command; answers from `replies` (first matching prefix wins), else exit 0."""

    def __init__(self, replies=(), on_call=None):
        self.calls, self.replies, self.on_call = [], list(replies), on_call

    def __call__(self, cmd, *, env=None, input=None, capture=False):
        cmd = [str(part) for part in cmd]
        self.calls.append({"cmd": cmd, "env": env, "input": input})
        if self.on_call:
            self.on_call(cmd)
        for prefix, returncode, stdout in self.replies:
            if cmd[:len(prefix)] == prefix:
                return subprocess.CompletedProcess(cmd, returncode, stdout, "boom" if returncode else "")
        if cmd[:3] == [HELM, "upgrade", "--help"]:
            return subprocess.CompletedProcess(cmd, 0, HELM4_HELP, "")
        return subprocess.CompletedProcess(cmd, 0, "", "")

    def commands(self):
        return [call["cmd"] for call in self.calls]

    def first(self, *prefix):
        return next(call for call in self.calls if call["cmd"][:len(prefix)] == list(prefix))


@pytest.fixture(scope="module")
def age_key():
    identity = pyrage.x25519.Identity.generate()
    return str(identity), str(identity.to_public())


@pytest.fixture
def sops_env(age_key):
    return {"SOPS_AGE_KEY": age_key[0]}


def _encrypted_secrets(tmp_path, age_key, data):
    plain = tmp_path / "plain.yaml"
    plain.write_text(yaml.safe_dump(data))
    path = tmp_path / "cluster.secret.yaml"
    secrets.encrypt(plain, path, [age_key[1]])
    plain.unlink()
    return path


GOOD_SECRETS = {"jupyterhub": {"hub": {
    "config": {"GitHubOAuthenticator": {"client_id": "cid", "client_secret": "csecret"}},
    "services": {secrets.HEALTH_SERVICE: {"apiToken": "health-token"}},
}}}


@pytest.fixture(autouse=True)
def bucket_steps(monkeypatch):
    """The bucket step, recorded instead of calling a cloud (tests/unit/test_bucket.py tests the step itself)."""
    calls = []

    def reconcile(name, cluster, apply, say=print, **kwargs):
        calls.append({"name": name, "apply": apply})
        say("recorded")

    monkeypatch.setattr(deploy.bucket, "reconcile", reconcile)
    return calls


@pytest.fixture(autouse=True)
def made_admins(monkeypatch):
    """The hub API call of the health step, recorded instead of sent."""
    calls = []
    monkeypatch.setattr(deploy, "make_admin", lambda hub_url, token, name: calls.append((hub_url, token, name)))
    return calls


@pytest.fixture(autouse=True)
def private_tmp(tmp_path, monkeypatch):
    """The deployer's temporary files go here, so a test can see that none is left behind."""
    where = tmp_path / "tmp"
    where.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(where))
    return where


@pytest.fixture
def secret_path(tmp_path, age_key):
    return _encrypted_secrets(tmp_path, age_key, GOOD_SECRETS)


@pytest.fixture
def chart_dir(tmp_path):
    """The umbrella chart with its two dependencies "fetched": dask-gateway's archive holds two CRDs."""
    target = tmp_path / "chart"
    shutil.copytree(values.CHART, target, ignore=shutil.ignore_patterns("charts"))
    (target / "charts").mkdir()
    for dep in chart.dependencies(target):
        with tarfile.open(target / "charts" / f"{dep['name']}-{dep['version']}.tgz", "w:gz") as tar:
            files = {f"{dep['name']}/Chart.yaml": f"name: {dep['name']}\n"}
            if dep["name"] == "dask-gateway":
                files["dask-gateway/crds/daskclusters.yaml"] = "kind: CustomResourceDefinition\n"
                files["dask-gateway/crds/traefik.yaml"] = "kind: CustomResourceDefinition\n"
            for name, text in files.items():
                info = tarfile.TarInfo(name)
                info.size = len(text.encode())
                tar.addfile(info, io.BytesIO(text.encode()))
    return target


def _deploy(name, runner, secret_path, sops_env, chart_dir, environ=None):
    deploy.deploy(name, run=runner, secret_path=secret_path, sops_env=sops_env, chart_dir=chart_dir,
                  environ=environ or {"PATH": "/usr/bin"})


# ---- the happy path: exact command lines and their order ----------------------------------------------

def test_deploy_runs_crds_helm_rollout_health_with_exact_command_lines(secret_path, sops_env, chart_dir, capsys,
                                                                      private_tmp):
    seen = {}

    def inspect(cmd):
        if cmd[:2] == [HELM, "upgrade"] and "--install" in cmd:
            files = [cmd[i + 1] for i, part in enumerate(cmd) if part == "-f"]
            seen["files"] = files
            decrypted = Path(files[1])
            seen["mode"] = stat.S_IMODE(decrypted.stat().st_mode)
            seen["dir_mode"] = stat.S_IMODE(decrypted.parent.stat().st_mode)
            seen["secrets"] = yaml.safe_load(decrypted.read_text())
            seen["values"] = yaml.safe_load(Path(files[0]).read_text())
        if cmd[:2] == [KUBECTL, "apply"]:
            seen["crds"] = sorted(p.name for p in Path(cmd[-1]).iterdir())

    runner = FakeRunner(on_call=inspect)
    _deploy("gcp-us-central1b", runner, secret_path, sops_env, chart_dir)
    commands = runner.commands()

    crds = runner.first(KUBECTL, "apply")["cmd"]
    assert crds[:-1] == [KUBECTL, "apply", "--server-side", "--force-conflicts", "--field-manager=pangeo-deployer",
                         "--context", "gke_pangeo-181919_us-central1-b_pangeo", "-f"]
    assert seen["crds"] == ["daskclusters.yaml", "traefik.yaml"]

    upgrade = next(c for c in commands if c[:3] == [HELM, "upgrade", "--install"])
    values_file, secrets_file = seen["files"]
    assert upgrade == [HELM, "upgrade", "--install", "pangeo", str(chart_dir),
                       "--namespace", "pangeo", "--create-namespace",
                       "--kube-context", "gke_pangeo-181919_us-central1-b_pangeo",
                       "-f", values_file, "-f", secrets_file,
                       "--rollback-on-failure", "--wait", "--timeout", "10m", "--skip-crds"]
    assert seen["mode"] == 0o600 and seen["dir_mode"] == 0o700
    assert seen["secrets"] == GOOD_SECRETS
    assert seen["values"]["jupyterhub"]["custom"]["pangeo"]["name"] == "gcp-us-central1b"

    rollouts = [c for c in commands if c[:3] == [KUBECTL, "rollout", "status"]]
    waited = [c[3] for c in rollouts]
    for needed in ("deployment/hub", "deployment/proxy", "deployment/autohttps", "deployment/scratch-credentials",
                   "deployment/gateway-pangeo-dask-gateway", "deployment/controller-pangeo-dask-gateway",
                   "deployment/traefik-pangeo-dask-gateway"):
        assert needed in waited
    assert all(c[4:] == ["--namespace", "pangeo", "--context", "gke_pangeo-181919_us-central1-b_pangeo",
                         "--timeout=5m"] for c in rollouts)

    smoke = runner.first(sys.executable, "-m", "pytest")
    assert smoke["cmd"][3:5] == [str(deploy.REPO / "tests" / "smoke"), str(deploy.REPO / "tests" / "live")]
    assert smoke["env"]["SMOKE_HUB_URL"] == "https://us-central1-b.gcp.pangeo.io"
    assert smoke["env"]["SMOKE_API_TOKEN"] == "health-token"
    assert smoke["env"]["SMOKE_CLUSTER"] == "gcp-us-central1b"
    assert "_" in smoke["env"]["SMOKE_USERS"]  # never a real GitHub login on a live hub

    order = [next(i for i, c in enumerate(commands) if c[:len(p)] == p) for p in
             ([KUBECTL, "apply"], [HELM, "upgrade", "--install"], [KUBECTL, "rollout"], [sys.executable])]
    assert order == sorted(order)
    assert not Path(secrets_file).exists() and not Path(secrets_file).parent.exists()
    assert not Path(values_file).exists()
    assert Path(secrets_file).is_relative_to(private_tmp) and list(private_tmp.iterdir()) == []

    out = capsys.readouterr().out
    for step in ("validate", "decrypt secrets", "crds", "helm upgrade", "rollout", "health", "deploy"):
        assert f"[gcp-us-central1b] {step}: " in out


def test_a_staging_cluster_deploys_its_own_release_into_its_own_namespace(secret_path, sops_env, chart_dir):
    runner = FakeRunner()
    _deploy("aws-uswest2-staging", runner, secret_path, sops_env, chart_dir)
    upgrade = runner.first(HELM, "upgrade", "--install")["cmd"]
    assert upgrade[3] == "pangeo-staging"
    assert upgrade[upgrade.index("--namespace") + 1] == "staging"
    assert upgrade[upgrade.index("--kube-context") + 1] == "arn:aws:eks:us-west-2:783380859522:cluster/pangeo"
    assert "deployment/traefik-pangeo-staging-dask-gateway" in [c[3] for c in runner.commands() if c[1] == "rollout"]
    smoke = runner.first(sys.executable, "-m", "pytest")
    assert smoke["env"]["SMOKE_HUB_URL"] == "https://staging.aws-uswest2.pangeo.io"


def test_an_older_helm_gets_atomic(secret_path, sops_env, chart_dir):
    runner = FakeRunner(replies=[([HELM, "upgrade", "--help"], 0, HELM3_HELP)])
    _deploy("gcp-us-central1b", runner, secret_path, sops_env, chart_dir)
    upgrade = runner.first(HELM, "upgrade", "--install")["cmd"]
    assert "--atomic" in upgrade and "--rollback-on-failure" not in upgrade


def test_the_installed_helm_has_the_flags_the_deploy_uses():
    if not chart.HELM.is_file():
        pytest.skip(f"needs helm: {chart.HELM} is missing (`make setup` installs it)")
    help_text = subprocess.run([chart.HELM, "upgrade", "--help"], capture_output=True, text=True).stdout
    assert deploy.rollback_flag(lambda cmd, **kw: subprocess.CompletedProcess(cmd, 0, help_text, "")) \
        == "--rollback-on-failure"
    for flag in ("--install", "--create-namespace", "--kube-context", "--wait", "--timeout", "--skip-crds",
                 "--namespace"):
        assert f" {flag} " in help_text, f"helm upgrade has no {flag}"


# ---- nothing touches the cluster before validation and decryption -------------------------------------

def test_an_unknown_cluster_stops_at_validate(secret_path, sops_env, chart_dir):
    runner = FakeRunner()
    with pytest.raises(DeployError) as error:
        _deploy("gcp-nowhere", runner, secret_path, sops_env, chart_dir)
    assert (error.value.cluster, error.value.step) == ("gcp-nowhere", "validate")
    assert runner.calls == []


def test_the_local_cluster_is_not_deployable(secret_path, sops_env, chart_dir):
    runner = FakeRunner()
    with pytest.raises(DeployError, match=r"\[local\] validate: .*kubernetes.context"):
        _deploy("local", runner, secret_path, sops_env, chart_dir)
    assert runner.calls == []


def test_a_missing_secret_file_stops_before_any_command(tmp_path, sops_env, chart_dir):
    runner = FakeRunner()
    with pytest.raises(DeployError) as error:
        _deploy("aws-uswest2", runner, tmp_path / "absent.secret.yaml", sops_env, chart_dir)
    assert (error.value.cluster, error.value.step) == ("aws-uswest2", "decrypt secrets")
    assert "absent.secret.yaml" in str(error.value) and "missing" in str(error.value)
    assert runner.calls == []


def test_an_undecryptable_secret_stops_before_any_command(secret_path, chart_dir):
    runner = FakeRunner()
    wrong = {"SOPS_AGE_KEY": str(pyrage.x25519.Identity.generate())}
    with pytest.raises(DeployError) as error:
        _deploy("gcp-us-central1b", runner, secret_path, wrong, chart_dir)
    message = str(error.value)
    assert message.startswith("[gcp-us-central1b] decrypt secrets: ")
    assert secret_path.name in message and "cannot decrypt" in message
    assert runner.calls == []


@pytest.mark.parametrize("broken, expected", [
    ({"client_id": "REPLACE-ME-client-id", "client_secret": "x"}, "client_id is still a placeholder"),
    ({"client_secret": "x"}, "client_id is missing"),
])
def test_placeholder_or_missing_oauth_credentials_stop_before_any_command(
        tmp_path, age_key, sops_env, chart_dir, broken, expected):
    data = {"jupyterhub": {"hub": {"config": {"GitHubOAuthenticator": broken}}}}
    path = _encrypted_secrets(tmp_path, age_key, data)
    runner = FakeRunner()
    with pytest.raises(DeployError, match=expected):
        _deploy("gcp-us-central1b", runner, path, sops_env, chart_dir)
    assert runner.calls == []


# ---- failures: named step, rollback flag, decrypted file removed --------------------------------------

@pytest.mark.parametrize("prefix, step", [
    ([KUBECTL, "apply"], "crds"),
    ([HELM, "upgrade", "--install"], "helm upgrade"),
    ([KUBECTL, "rollout", "status", "deployment/proxy"], "rollout"),
    ([sys.executable, "-m", "pytest"], "health"),
])
def test_a_failing_step_is_named_and_the_decrypted_file_removed(secret_path, sops_env, chart_dir, private_tmp,
                                                               prefix, step):
    decrypted = []

    def remember(cmd):
        if cmd[:3] == [HELM, "upgrade", "--install"]:
            decrypted.append(Path(cmd[cmd.index("-f", cmd.index("-f") + 1) + 1]))

    runner = FakeRunner(replies=[(prefix, 1, "")], on_call=remember)
    with pytest.raises(DeployError) as error:
        _deploy("gcp-us-central1b", runner, secret_path, sops_env, chart_dir)
    assert (error.value.cluster, error.value.step) == ("gcp-us-central1b", step)
    assert str(error.value).startswith(f"[gcp-us-central1b] {step}: ")
    if decrypted:
        assert not decrypted[0].exists() and not decrypted[0].parent.exists()
    assert list(private_tmp.iterdir()) == []
    if step == "crds":
        assert not any(c[:2] == [HELM, "upgrade"] and "--install" in c for c in runner.commands())
    if step == "helm upgrade":
        assert "rolled back" in str(error.value)
        assert not any(c[1] == "rollout" for c in runner.commands())


def test_a_chart_without_crds_stops_before_the_cluster(secret_path, sops_env, chart_dir):
    archive = chart_dir / "charts" / "dask-gateway-2026.3.0.tgz"
    with tarfile.open(archive, "w:gz") as tar:
        info = tarfile.TarInfo("dask-gateway/Chart.yaml")
        tar.addfile(info, io.BytesIO(b""))
    runner = FakeRunner()
    with pytest.raises(DeployError, match=r"\[gcp-us-central1b\] crds: .*ships no CRDs"):
        _deploy("gcp-us-central1b", runner, secret_path, sops_env, chart_dir)
    assert not any(c[0] == KUBECTL for c in runner.commands())


def test_the_bucket_step_runs_before_anything_touches_the_cluster(secret_path, sops_env, chart_dir, bucket_steps,
                                                                  capsys):
    runner = FakeRunner(on_call=lambda cmd: bucket_steps.append({"command": cmd[:2]}))
    _deploy("aws-uswest2", runner, secret_path, sops_env, chart_dir)
    assert bucket_steps[0] == {"name": "aws-uswest2", "apply": True}
    assert "[aws-uswest2] bucket: recorded" in capsys.readouterr().out


def test_a_failing_bucket_step_stops_the_deploy_before_helm_naming_file_and_key(secret_path, sops_env, chart_dir,
                                                                                monkeypatch):
    def refuse(cluster, clusters=None, clients=None):
        raise deploy.bucket.BucketError("scratch.expire_after_days", "cannot read the lifecycle of s3://x: AccessDenied")

    monkeypatch.setattr(deploy.bucket, "reconcile", REAL_RECONCILE)  # the real step, over a refusing cloud
    monkeypatch.setattr(deploy.bucket, "plan", refuse)
    runner = FakeRunner()
    with pytest.raises(DeployError) as error:
        _deploy("aws-uswest2", runner, secret_path, sops_env, chart_dir)
    assert str(error.value) == ("[aws-uswest2] bucket: config/clusters/aws-uswest2.yaml: scratch.expire_after_days: "
                                "cannot read the lifecycle of s3://x: AccessDenied")
    assert not any(c[0] in (HELM, KUBECTL) and c[1] in ("upgrade", "apply") for c in runner.commands())


# ---- diff and health ----------------------------------------------------------------------------------

def test_diff_uses_the_helm_diff_plugin_when_installed(secret_path, sops_env, chart_dir, bucket_steps):
    plugins = "NAME\tVERSION\tDESCRIPTION\ndiff\t3.9.0\tPreview helm upgrade changes as a diff\n"
    runner = FakeRunner(replies=[([HELM, "plugin", "list"], 0, plugins)])
    deploy.diff("aws-uswest2", run=runner, secret_path=secret_path, sops_env=sops_env, chart_dir=chart_dir)
    assert bucket_steps == [{"name": "aws-uswest2", "apply": False}]  # printed, never applied
    cmd = runner.first(HELM, "diff")["cmd"]
    assert cmd[:11] == [HELM, "diff", "upgrade", "pangeo", str(chart_dir), "--namespace", "pangeo",
                        "--kube-context", "arn:aws:eks:us-west-2:783380859522:cluster/pangeo", "--allow-unreleased",
                        "-f"]
    assert not any(c[1] in ("upgrade", "apply", "rollout") for c in runner.commands() if c[0] in (HELM, KUBECTL))


@pytest.mark.parametrize("kubectl_exit, fails", [(0, False), (1, False), (2, True)])
def test_diff_without_the_plugin_renders_and_asks_the_api_server(secret_path, sops_env, chart_dir, kubectl_exit, fails):
    runner = FakeRunner(replies=[([HELM, "plugin", "list"], 0, "NAME\tVERSION\n"),
                                 ([HELM, "template"], 0, "kind: ConfigMap\n"),
                                 ([KUBECTL, "diff"], kubectl_exit, "")])
    run_diff = lambda: deploy.diff("gcp-us-central1b", run=runner, secret_path=secret_path,  # noqa: E731
                                   sops_env=sops_env, chart_dir=chart_dir)
    if fails:
        with pytest.raises(DeployError, match=r"\[gcp-us-central1b\] diff: kubectl diff failed"):
            run_diff()
    else:
        run_diff()
    template = runner.first(HELM, "template")["cmd"]
    assert "--dry-run=server" in template and template[template.index("--kube-context") + 1].startswith("gke_")
    kubectl = runner.first(KUBECTL, "diff")
    assert kubectl["cmd"] == [KUBECTL, "diff", "--server-side", "--force-conflicts", "--field-manager=helm",
                              "--context", "gke_pangeo-181919_us-central1-b_pangeo", "--namespace", "pangeo", "-f", "-"]
    assert kubectl["input"] == "kind: ConfigMap\n"


def test_health_with_a_token_from_the_environment_needs_no_secrets(made_admins):
    runner = FakeRunner()
    environ = {"SMOKE_API_TOKEN": "from-ci", "SMOKE_HUB_URL": "http://localhost", "PATH": "/usr/bin",
               "SMOKE_GITHUB_URL": "http://localhost:8020", "SMOKE_USERS": "member=a,member2=b,admin=c,outsider=d"}
    deploy.health("kind", run=runner, environ=environ)
    smoke = runner.first(sys.executable, "-m", "pytest")
    assert smoke["env"]["SMOKE_API_TOKEN"] == "from-ci" and smoke["env"]["SMOKE_HUB_URL"] == "http://localhost"
    assert smoke["env"]["SMOKE_CLUSTER"] == "kind" and smoke["env"]["SMOKE_USERS"] == environ["SMOKE_USERS"]
    assert made_admins == [], "with a GitHub stand-in the admin team makes the admin, at login"


def test_health_on_a_live_hub_makes_the_suites_admin_first(made_admins):
    runner = FakeRunner()
    deploy.health("aws-uswest2", run=runner, environ={"SMOKE_API_TOKEN": "t"})
    assert made_admins == [("https://aws-uswest2.pangeo.io", "t", "smoke_admin")]
    assert runner.first(sys.executable, "-m", "pytest")["env"]["SMOKE_USERS"] == deploy.HEALTH_USERS


def test_make_admin_creates_or_promotes_through_the_hub_api(monkeypatch):
    sent = []

    class Session:
        headers = {}

        def post(self, url, json, timeout):
            sent.append(("POST", url, json))
            return type("Reply", (), {"status_code": 409, "text": "exists"})()

        def patch(self, url, json, timeout):
            sent.append(("PATCH", url, json))
            return type("Reply", (), {"status_code": 200, "text": ""})()

    monkeypatch.setattr(deploy.requests, "Session", Session)
    REAL_MAKE_ADMIN("https://hub.example.org/", "t", "smoke_admin")
    url = "https://hub.example.org/hub/api/users/smoke_admin"
    assert sent == [("POST", url, {"admin": True}), ("PATCH", url, {"admin": True})]
    assert Session.headers == {"Authorization": "token t"}


def test_health_without_a_token_or_key_says_how_to_get_one(tmp_path, monkeypatch):
    monkeypatch.setattr(secrets, "secret_file", lambda name: tmp_path / f"{name}.secret.yaml")
    runner = FakeRunner()
    with pytest.raises(DeployError, match=r"\[aws-uswest2\] health: no SMOKE_API_TOKEN and .*missing"):
        deploy.health("aws-uswest2", run=runner, environ={})
    assert runner.calls == []


def test_cli_exit_codes(capsys):
    assert deploy.cli("deploy", None) == 2
    assert "name a cluster" in capsys.readouterr().err
    assert deploy.cli("deploy", "gcp-nowhere") == 1
    assert "[gcp-nowhere] validate:" in capsys.readouterr().err


def test_the_hub_lets_the_health_checks_users_spawn_without_a_github_login(all_facts):
    """On a live hub the suite's users are made through the API: they have no GitHub auth state, and
    oauthenticator's refresh would refuse their spawns unless hub_config's hook lets them through."""
    import types

    from traitlets.config import Config

    import hub_config

    c = Config()
    hub_config.configure(c, all_facts["gcp-us-central1b"])
    hook = c.GitHubOAuthenticator.refresh_user_hook
    for pair in deploy.HEALTH_USERS.split(","):
        name = pair.split("=")[1]
        assert "_" in name, f"{name} could be a GitHub login"
        assert hook(None, types.SimpleNamespace(name=name), None) is True
    # a researcher (never an underscore) gets the default refresh, with or without auth state
    assert hook(None, types.SimpleNamespace(name="alice"), None) is None
    assert hook(None, types.SimpleNamespace(name="smoke_member"), {"access_token": "t"}) is None
