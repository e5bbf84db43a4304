"""Starting a server: the profile list, the spawn and its progress, the size inside the server."""

import pytest

from .hub import page_text, profile_choices

pytestmark = pytest.mark.smoke


def test_profile_list_offers_the_sizes_smallest_first_and_selected(member_server, facts):
    html = member_server.spawn_page_html
    if html is None:
        pytest.skip("the spawn page needs a logged-in session (JupyterHub pages take no API token) and no GitHub "
                    "stand-in serves this hub's logins")
    choices = profile_choices(html)
    sizes = facts["notebook"]["sizes"]
    assert len(choices) == len(sizes), f"the form offers {choices}, the cluster file {sizes}"
    assert [chosen for _, chosen in choices] == [True] + [False] * (len(sizes) - 1), \
        f"the first (smallest) size must be the one selected: {choices}"
    text = page_text(html)
    positions = [text.find(facts["sizes"][size]["display_name"]) for size in sizes]
    assert -1 not in positions, f"display names {[facts['sizes'][s]['display_name'] for s in sizes]} not all on the page"
    assert positions == sorted(positions), f"sizes not in the cluster file's order {sizes}"
    memory = [facts["sizes"][size]["memory_gib"]["limit"] for size in sizes]
    assert memory == sorted(memory), f"the cluster file's sizes are not smallest first: {sizes}"


def test_spawn_reports_progress_to_ready(member_server, facts):
    events = member_server.spawn.events
    print(f"\nprogress events of {member_server.name}: {[(e.get('progress'), e.get('message')) for e in events]}")
    assert events, "the progress stream sent no event"
    assert not any(e.get("failed") for e in events), events
    progress = [e["progress"] for e in events if "progress" in e]
    assert progress == sorted(progress), f"progress went backwards: {progress}"
    assert events[-1].get("ready") is True and events[-1].get("progress") == 100, events[-1]
    assert member_server.spawn.profile == facts["notebook"]["sizes"][member_server.profile_index]


def test_server_has_the_chosen_size(member_server, facts):
    slug = facts["notebook"]["sizes"][member_server.profile_index]
    size = facts["sizes"][slug]
    env = member_server.run_json(
        "import json, os; print(json.dumps({k: os.environ.get(k) for k in ('PANGEO_SIZE', 'MEM_LIMIT', 'CPU_LIMIT')}))")
    assert env["PANGEO_SIZE"] == slug, f"PANGEO_SIZE={env['PANGEO_SIZE']!r}, the server was started as {slug!r}"
    # JupyterHub exports the spawner's limits as MEM_LIMIT (bytes) and CPU_LIMIT (cores).
    assert env["MEM_LIMIT"], "MEM_LIMIT is not set in the server"
    assert abs(int(env["MEM_LIMIT"]) - size["memory_gib"]["limit"] * 2**30) < 2**20, \
        f"MEM_LIMIT={env['MEM_LIMIT']}, the profile's limit is {size['memory_gib']['limit']} GiB"
    assert float(env["CPU_LIMIT"]) == size["cpu"]["limit"], f"CPU_LIMIT={env['CPU_LIMIT']}, profile {size['cpu']}"
