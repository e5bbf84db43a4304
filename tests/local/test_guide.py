"""The researcher's guide against the local stack: its examples (tests/smoke/test_guide.py), and what only
the local store can show quickly, the scratch bucket's expiry."""

import subprocess
import time
import uuid

import pytest

from deployer.local import scratch
from deployer.local.stack import TOOLS
from tests.smoke.test_guide import *  # noqa: F401,F403

pytestmark = [pytest.mark.smoke, pytest.mark.local]

SHORT_TTL = "1m"  # SeaweedFS's shortest


def weed_shell(stack, commands):
    p = stack.ports
    shell = [str(TOOLS["weed"][0]), "shell", f"-master=127.0.0.1:{p['weed_master']}.{p['weed_master_grpc']}",
             f"-filer=127.0.0.1:{p['weed_filer']}.{p['weed_filer_grpc']}"]
    result = subprocess.run(shell, input="\n".join(commands) + "\n", capture_output=True, text=True, timeout=60)
    return result.stdout + result.stderr


def test_scratch_objects_expire(local_stack, member_server, facts):
    """The guide says scratch objects are deleted after 7 days. The store holds that rule for the whole bucket;
    the same rule with SeaweedFS's shortest TTL, on one folder of the user's prefix, shows objects do go."""
    bucket, prefix = scratch.bucket_and_prefix(scratch_of(facts, member_server.name))
    rules = weed_shell(local_stack, ["fs.configure"])
    ttl = scratch.ttl_spec(facts["scratch"]["expire_after_days"])
    assert f'"locationPrefix":  "/buckets/{bucket}/"' in rules and f'"ttl":  "{ttl}"' in rules, rules
    assert facts["scratch"]["expire_after_days"] == 7 and ttl == "7d"

    folder = f"expiry-{uuid.uuid4().hex[:8]}"
    location = f"/buckets/{bucket}/{prefix}/{folder}/"
    out = weed_shell(local_stack, [f"fs.configure -locationPrefix={location} -ttl={SHORT_TTL} -apply"])
    assert f'"ttl":  "{SHORT_TTL}"' in out, out
    try:
        url = f"{scratch_of(facts, member_server.name)}/{folder}/results.txt"
        member_server.run(f"import fsspec\nwith fsspec.open({url!r}, 'w') as f:\n    f.write('recomputable')")
        exists = f"import fsspec\nfs, path = fsspec.core.url_to_fs({url!r}, skip_instance_cache=True)\nprint(fs.exists(path))"
        assert member_server.run(exists).strip() == "True"
        started = time.monotonic()
        while member_server.run(exists).strip() == "True":
            assert time.monotonic() - started < 180, f"{url} still there 3 minutes after a {SHORT_TTL} TTL"
            time.sleep(5)
        record_seconds = time.monotonic() - started
        print(f"\n[guide] a scratch object with TTL {SHORT_TTL} was gone after {record_seconds:.0f} s")
    finally:
        weed_shell(local_stack, [f"fs.configure -locationPrefix={location} -delete -apply"])
