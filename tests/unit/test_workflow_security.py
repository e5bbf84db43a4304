"""The workflows' supply chain and tokens (issue 13): zizmor finds nothing of medium severity or higher, every
action is pinned to a full commit SHA with its tag beside it, and only jobs that log in to a cloud may mint an
OIDC token."""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.unit.test_workflows import WORKFLOWS, load

ZIZMOR = Path(sys.executable).parent / "zizmor"
CLOUD_LOGINS = ("google-github-actions/auth@", "aws-actions/configure-aws-credentials@")
PINNED = re.compile(r"^\s*(?:- )?uses: [\w.-]+/[\w./-]+@[0-9a-f]{40}  # v\d+\.\d+\.\d+$")


def test_zizmor_finds_nothing_of_medium_severity_or_more():
    zizmor = ZIZMOR if ZIZMOR.exists() else shutil.which("zizmor")
    if zizmor is None:
        pytest.fail("zizmor is not installed: it is pinned in requirements/dev.txt (`make setup`)")
    result = subprocess.run([str(zizmor), "--offline", "--min-severity", "medium", "--format", "json", str(WORKFLOWS)],
                            capture_output=True, text=True, timeout=120)
    if not result.stdout.strip():
        pytest.fail(f"zizmor did not run (exit code {result.returncode}):\n{result.stderr[-2000:]}")
    findings = json.loads(result.stdout)
    described = [f"{f['ident']} ({f['determinations']['severity']}): "
                 f"{json.dumps(f['locations'][0]['symbolic']['key'])} {f['desc']}" for f in findings]
    assert not findings, "zizmor findings:\n" + "\n".join(described) + "\n" + result.stderr[-2000:]


def test_every_action_is_pinned_to_a_commit_with_its_tag():
    for path in sorted(WORKFLOWS.glob("*.y*ml")):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if re.match(r"^\s*(- )?uses: ", line) and "uses: ./" not in line:
                assert PINNED.match(line), f"{path.name}:{number}: not `owner/repo@<40-hex sha>  # vX.Y.Z`: {line.strip()}"


def test_only_jobs_that_log_in_to_a_cloud_mint_oidc_tokens():
    for path in sorted(WORKFLOWS.glob("*.y*ml")):
        workflow = load(path.name)
        assert "id-token" not in workflow.get("permissions", {}), f"{path.name}: id-token granted to every job"
        for name, job in workflow["jobs"].items():
            logs_in = any(step.get("uses", "").startswith(CLOUD_LOGINS) for step in job.get("steps", []))
            calls_a_deploy = job.get("uses", "").endswith("deploy-cluster.yaml")
            grants = job.get("permissions", {}).get("id-token") == "write"
            assert grants == (logs_in or calls_a_deploy), f"{path.name}: job {name}: id-token {grants}, cloud login {logs_in}"
