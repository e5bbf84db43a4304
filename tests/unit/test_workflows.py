"""The CI workflows, checked offline: they parse, call only real make targets, deploy every cluster exactly
once (staging before production, one deploy at a time), and take secrets only from the CI secret store."""

import re

import pytest
import yaml

from deployer import facts
from deployer.facts import REPO

WORKFLOWS = REPO / ".github" / "workflows"
MAKE_CALL = re.compile(r"(?:^|[;&|]\s*|\n\s*)make\s+((?:[A-Za-z_]+=\S+\s+)*)([a-z][a-z0-9-]*)")
EXPRESSION = re.compile(r"^\$\{\{\s*(secrets|vars|inputs|matrix|github)\.[A-Za-z0-9_.]+\s*\}\}$")


def load(name):
    data = yaml.safe_load((WORKFLOWS / name).read_text())
    # YAML 1.1 reads the key `on` as True.
    data["on"] = data.pop(True, data.get("on"))
    return data


@pytest.fixture(scope="module")
def workflows():
    return {path.name: load(path.name) for path in sorted(WORKFLOWS.glob("*.y*ml"))}


def makefile_targets():
    text = (REPO / "Makefile").read_text()
    return set(re.findall(r"^([a-z][a-z0-9-]*)\s*:(?!=)", text, re.MULTILINE))


def steps(workflow):
    for job_name, job in workflow["jobs"].items():
        for step in job.get("steps", []):
            yield job_name, step


def make_targets_called(workflow):
    return [match.group(2) for _, step in steps(workflow) for match in MAKE_CALL.finditer(step.get("run", ""))]


def deploy_jobs(workflows):
    """(job name, stage, cluster, matrix entry, job) of every cluster deploy in deploy.yaml."""
    out = []
    for job_name, job in workflows["deploy.yaml"]["jobs"].items():
        assert job.get("uses") == "./.github/workflows/deploy-cluster.yaml", f"{job_name} does not deploy"
        for entry in job["strategy"]["matrix"]["include"]:
            out.append((job_name, job["with"]["stage"], entry["cluster"], entry, job))
    return out


def test_every_workflow_is_valid_yaml_with_triggers_and_jobs(workflows):
    assert set(workflows) >= {"test.yaml", "deploy.yaml", "deploy-cluster.yaml", "image.yaml"}
    for name, workflow in workflows.items():
        assert workflow["on"], f"{name} has no trigger"
        assert workflow["jobs"], f"{name} has no job"
        for job_name, job in workflow["jobs"].items():
            assert "uses" in job or ("runs-on" in job and job.get("steps")), f"{name}: {job_name} runs nothing"


def test_every_make_target_the_workflows_call_exists(workflows):
    targets = makefile_targets()
    called = {name: make_targets_called(workflow) for name, workflow in workflows.items()}
    assert called["test.yaml"] and called["deploy-cluster.yaml"] and called["image.yaml"]
    for name, names in called.items():
        missing = sorted(set(names) - targets)
        assert not missing, f"{name} calls make targets the Makefile lacks: {missing}"


def test_the_make_call_pattern_sees_variables_and_chains():
    assert [m.group(2) for m in MAKE_CALL.finditer('make deploy CLUSTER="$C"\ncd x && make health')] \
        == ["deploy", "health"]
    assert [m.group(2) for m in MAKE_CALL.finditer("make CLUSTER=x diff")] == ["diff"]


def test_pull_requests_run_make_test_and_make_test_kind(workflows):
    test = workflows["test.yaml"]
    assert "pull_request" in test["on"] and "push" in test["on"]
    called = make_targets_called(test)
    assert "test" in called and "test-kind" in called
    kind_job = next(job for job in test["jobs"].values()
                    if any("make test-kind" in step.get("run", "") for step in job["steps"]))
    # kind needs a Docker engine: the job runs on the VM, not in a container
    assert "container" not in kind_job
    assert any(step.get("uses", "").startswith("helm/kind-action@") for step in kind_job["steps"])


def test_every_deployed_cluster_is_deployed_by_exactly_one_job_of_its_stage(workflows):
    jobs = deploy_jobs(workflows)
    deployed = [cluster for _, _, cluster, _, _ in jobs]
    expected = {name for name in facts.cluster_names()
                if facts.read_yaml(facts.cluster_file(name))["stage"] in ("staging", "production")}
    assert sorted(deployed) == sorted(expected), "each staging/production cluster exactly once, nothing else"
    for job_name, stage, cluster, _, _ in jobs:
        assert facts.load(cluster)["stage"] == stage, f"{cluster} is deployed by {job_name} as {stage}"


def test_production_waits_for_every_staging_job(workflows):
    jobs = workflows["deploy.yaml"]["jobs"]
    stages = {name: job["with"]["stage"] for name, job in jobs.items()}
    assert "staging" in stages.values() and "production" in stages.values()

    def needs(name):
        direct = jobs[name].get("needs", [])
        direct = [direct] if isinstance(direct, str) else direct
        return set(direct).union(*(needs(n) for n in direct)) if direct else set()

    staging = {name for name, stage in stages.items() if stage == "staging"}
    for name, stage in stages.items():
        if stage == "production":
            assert staging <= needs(name), f"{name} must need every staging job"
            # skipped, not run, when a staging deploy or its health check failed
            assert "if" not in jobs[name] or "always()" not in str(jobs[name]["if"])
        else:
            assert not any(stages[n] == "production" for n in needs(name))


def test_a_deploy_job_runs_make_deploy_which_ends_with_the_health_check(workflows):
    called = make_targets_called(workflows["deploy-cluster.yaml"])
    assert called == ["deploy"]
    run = next(step["run"] for _, step in steps(workflows["deploy-cluster.yaml"]) if "make deploy" in step.get("run", ""))
    assert 'CLUSTER="$CLUSTER"' in run
    # that `make deploy` ends with the smoke suite is tested in test_deploy.py (the happy path's last command)


def test_one_deploy_at_a_time(workflows):
    concurrency = workflows["deploy.yaml"]["concurrency"]
    assert concurrency == {"group": "deploy", "cancel-in-progress": False}
    assert workflows["deploy.yaml"]["on"]["push"]["branches"] == ["main"]


def test_cloud_logins_match_each_clusters_kubernetes_context(workflows):
    for _, _, cluster, entry, _ in deploy_jobs(workflows):
        context = facts.load(cluster)["kubernetes"]["context"]
        if entry["cloud"] == "gcp":
            assert context == f"gke_{entry['gke_project']}_{entry['gke_location']}_{entry['k8s_cluster']}"
        else:
            assert entry["cloud"] == "aws"
            assert re.fullmatch(rf"arn:aws:eks:{entry['aws_region']}:\d{{12}}:cluster/{entry['k8s_cluster']}", context)
        assert entry["cloud"] == facts.load(cluster)["cloud"]
    uses = [step.get("uses", "") for _, step in steps(workflows["deploy-cluster.yaml"])]
    assert any(u.startswith("google-github-actions/auth@") for u in uses)
    assert any(u.startswith("aws-actions/configure-aws-credentials@") for u in uses)
    for job in workflows["deploy.yaml"]["jobs"].values():
        assert job["permissions"]["id-token"] == "write"


def test_secrets_come_only_from_the_ci_secret_store(workflows):
    secret_name = re.compile(r"(SECRET|TOKEN|PASSWORD|KEY|CREDENTIAL)", re.IGNORECASE)
    for name in workflows:
        text = (WORKFLOWS / name).read_text()
        for pattern in (r"AGE-SECRET-KEY-1", r"-----BEGIN [A-Z ]*PRIVATE KEY-----", r"\bAKIA[0-9A-Z]{16}\b",
                        r"\bgh[pousr]_[A-Za-z0-9]{20,}"):
            assert not re.search(pattern, text), f"{name} holds a secret literal ({pattern})"

    def walk(node, path=()):
        if isinstance(node, dict):
            for key, value in node.items():
                yield from walk(value, (*path, str(key)))
        elif isinstance(node, list):
            for value in node:
                yield from walk(value, path)
        else:
            yield path, node

    for name, workflow in workflows.items():
        for path, value in walk(workflow):
            passed_in = len(path) >= 2 and path[-2] in ("env", "with", "secrets")
            if passed_in and secret_name.search(path[-1]) and isinstance(value, str):
                assert EXPRESSION.match(value.strip()), f"{name}: {'.'.join(path)} must come from ${{{{ secrets.* }}}}"
    deploy_env = next(step["env"] for _, step in steps(workflows["deploy-cluster.yaml"]) if "make deploy" in step.get("run", ""))
    assert deploy_env["SOPS_AGE_KEY"] == "${{ secrets.SOPS_AGE_KEY }}"


def test_image_changes_build_and_push_the_image(workflows):
    image = workflows["image.yaml"]
    for trigger in ("push", "pull_request"):
        assert image["on"][trigger]["paths"] == ["images/**"]
    called = make_targets_called(image)
    assert called == ["image", "image-push"]
    push_step = next(step for _, step in steps(image) if "make image-push" in step.get("run", ""))
    assert push_step["if"] == "github.event_name == 'push'"
