"""Storage inside a server: the user's own scratch prefix, nobody else's, and a home that persists."""

import uuid

import pytest

from .report import record
from .target import scratch_of

pytestmark = pytest.mark.smoke


def test_pangeo_scratch_is_the_users_prefix(member_server, facts):
    out = member_server.run("import os; print(os.environ['PANGEO_SCRATCH'])").strip()
    assert out == scratch_of(facts, member_server.name)


def test_scratch_write_and_read_with_fsspec(member_server):
    path_code = f"path = os.environ['PANGEO_SCRATCH'] + '/smoke/{uuid.uuid4().hex}.txt'"
    out = member_server.run(f"""
import os, fsspec
{path_code}
with fsspec.open(path, "w") as f:
    f.write("written by the smoke suite")
with fsspec.open(path) as f:
    print(f.read().decode())
fsspec.filesystem(path.split("://")[0]).rm(path)
""")
    assert out.strip() == "written by the smoke suite"


def test_another_users_prefix_is_refused(member_server, member2_server, facts):
    if not facts["scratch"]["private_prefixes"]:
        pytest.skip(f"{facts['name']}: scratch.private_prefixes is false here, so another user's prefix is not "
                    "refused")
    # The neighbour writes a file of their own, so that a refused read cannot be a missing object.
    theirs = f"{scratch_of(facts, member2_server.name)}/smoke/{uuid.uuid4().hex}.txt"
    member2_server.run(f"""
import fsspec
with fsspec.open({theirs!r}, "w") as f:
    f.write("private")
""")
    try:
        result = member_server.run_json(f"""
import fsspec, json
fs = fsspec.filesystem({theirs.split('://')[0]!r}, skip_instance_cache=True)
outcome = {{}}
for action, call in (("read", lambda: fs.cat_file({theirs!r})),
                     ("write", lambda: fs.pipe_file({theirs!r} + ".intruder", b"x")),
                     ("overwrite", lambda: fs.pipe_file({theirs!r}, b"overwritten")),
                     ("delete", lambda: fs.rm({theirs!r})),
                     ("list", lambda: fs.ls({theirs.rsplit('/', 1)[0]!r}, refresh=True))):
    try:
        call()
        outcome[action] = "allowed"
    except Exception as e:
        outcome[action] = f"{{type(e).__name__}}: {{e}}"
print(json.dumps(outcome))
""")
        for action in ("read", "write", "overwrite", "list"):
            assert result[action] != "allowed", f"{member_server.name} could {action} {theirs}"
            assert result[action].startswith("PermissionError"), f"{action} failed, but not as refused: {result[action]}"
        # s3fs's rm hides a refused delete: the owner checks that nothing changed.
        still = member2_server.run_json(f"""
import fsspec, json
fs = fsspec.filesystem({theirs.split('://')[0]!r}, skip_instance_cache=True)
print(json.dumps({{"content": fs.cat_file({theirs!r}).decode(), "intruder": fs.exists({theirs!r} + ".intruder")}}))
""")
        assert still == {"content": "private", "intruder": False}
        # Uncaught, as in a notebook: the first line names the cause and the researcher's own prefix.
        shown = member_server.kernel().shown_error(f"import fsspec\nwith fsspec.open({theirs!r}) as f:\n    f.read()")
        assert shown == (f"PermissionError: access denied to {theirs}: it is not in your scratch prefix. Each user may "
                         f"read and write only their own prefix, yours is {scratch_of(facts, member_server.name)} "
                         "(os.environ['PANGEO_SCRATCH']).")
    finally:
        member2_server.run(f"import fsspec; fsspec.filesystem({theirs.split('://')[0]!r}).rm({theirs!r})")


def test_home_survives_a_server_restart(member2_server):
    name = f"smoke-home-{uuid.uuid4().hex}.txt"
    member2_server.run(f"import pathlib; (pathlib.Path.home() / {name!r}).write_text('still here')")
    profile = member2_server.spawn.profile
    member2_server.stop()
    spawn = member2_server.start(profile)
    record(f"spawn member2 again ({member2_server.name}, same home)", spawn.seconds)
    out = member2_server.run_json(f"""
import json, pathlib
p = pathlib.Path.home() / {name!r}
print(json.dumps(p.read_text() if p.exists() else None))
p.unlink(missing_ok=True)
""")
    assert out == "still here", f"~/{name} did not survive the restart"
