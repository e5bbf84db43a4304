"""The researcher's guide (docs/) offline: every code block is a tested example, and every number or address
it states is the one the cluster files say. Running the examples is tests/smoke/test_guide.py's job."""

import ast
import re
import subprocess

import pytest
import yaml

import gateway_config
from deployer import facts as cluster_facts
from tests.smoke import guide

# Researchers use the production hubs; staging mirrors them for operators.
PUBLIC_STAGES = ("production",)
GIB = 2**30


def public_clusters():
    loaded = [cluster_facts.load(name) for name in cluster_facts.cluster_names()]
    return [f for f in loaded if f["stage"] in PUBLIC_STAGES]


def page_text(page):
    return (guide.DOCS / page).read_text()


def all_text():
    return "\n".join(page_text(page) for page in guide.PAGES)


def test_every_page_is_listed_and_linked_from_the_index():
    on_disk = {p.name for p in guide.DOCS.glob("*.md")}
    assert on_disk == set(guide.PAGES), "tests/smoke/guide.py PAGES must list every page of docs/"
    index = page_text("README.md")
    for page in guide.PAGES[1:]:
        assert f"]({page})" in index, f"docs/README.md does not link to {page}"


def test_every_code_block_is_a_named_example_or_error():
    names = {}
    for block in guide.all_blocks():
        assert block.kind, f"{block.where}: code block without an `<!-- example: name -->` line before it"
        wanted = ("python", "bash") if block.kind == "example" else ("text",)
        assert block.language in wanted, f"{block.where}: a {block.kind} block is ```{'/'.join(wanted)}, not ```{block.language}"
        key = (block.kind, block.name)
        assert key not in names, f"{block.where}: {block.kind} {block.name!r} already at {names[key]}"
        names[key] = block.where
    assert len([k for k in names if k[0] == "example"]) >= 10


@pytest.mark.parametrize("block", guide.examples(), ids=lambda b: b.name)
def test_example_is_valid_code(block):
    if block.language == "python":
        ast.parse(block.text, filename=block.where)
    else:
        result = subprocess.run(["bash", "-n"], input=block.text, capture_output=True, text=True)
        assert result.returncode == 0, f"{block.where}: {result.stderr}"


def test_scratch_paths_are_built_with_the_variable_not_its_name():
    # The service's old docs wrote f'PANGEO_SCRATCH/sub/path' (no braces): a local folder, not the bucket.
    for block in guide.examples():
        assert not re.search(r"(?<![{\w])PANGEO_SCRATCH/", block.text), f"{block.where}: PANGEO_SCRATCH used as text"
    assert not re.search(r"f['\"]PANGEO_SCRATCH/", all_text())
    assert 'f"{PANGEO_SCRATCH}/sub/path"' in guide.example("scratch-zarr").text


def test_clusters_table_matches_the_cluster_files():
    rows = {row["Cluster"]: row for row in guide.table("README.md", "Cluster")}
    clusters = {f["name"]: f for f in public_clusters()}
    assert set(rows) == set(clusters), "docs/README.md must list exactly the production clusters"
    for name, f in clusters.items():
        assert rows[name]["Address"] == f"https://{f['hub']['host']}"
        assert rows[name]["Scratch bucket"] == f"`{f['scratch']['bucket']}`"
        assert f["scratch"]["bucket"] in page_text("getting-started.md"), "which-cluster must name every bucket"


def largest(f, resource):
    return max(f["sizes"][size][resource]["limit"] for size in f["dask_gateway"]["worker_sizes"])


def number(value):
    return float(value)


def pair(value):
    first, second = value.split("/")
    return number(first), number(second)


def test_dask_limits_table_matches_the_cluster_files():
    rows = {row["Cluster"]: row for row in guide.table("dask.md", "Cluster")}
    # the local stack's limits too: `make dev` is where a researcher may try the guide first
    clusters = {f["name"]: f for f in public_clusters() + [cluster_facts.load("local")]}
    assert set(rows) == set(clusters)
    for name, f in clusters.items():
        gateway, row = f["dask_gateway"], rows[name]
        limits, idle = gateway["limits_per_user"], gateway["idle_timeout_minutes"]
        share = gateway_config.per_cluster_share(f)
        assert number(row["Worker cores, up to"]) == largest(f, "cpu"), name
        assert number(row["Worker memory (GiB), up to"]) == largest(f, "memory_gib"), name
        assert number(row["Clusters at once"]) == limits["clusters"], name
        assert pair(row["Cores: per user / per cluster"]) == (limits["cores"], share["cores"]), name
        assert pair(row["Memory (GiB): per user / per cluster"]) == (limits["memory_gib"], share["memory_gib"]), name
        assert pair(row["Idle timeout (minutes): default / maximum"]) == (idle["default"], idle["maximum"]), name


def test_dask_options_table_lists_the_gateway_options():
    rows = [row["Option"].strip("`") for row in guide.table("dask.md", "Option")]
    options = gateway_config.cluster_options(public_clusters()[0])
    assert rows == [field.field for field in options.fields]


def default_worker_count_cap(f):
    """How many default workers one cluster's share holds next to its scheduler (the gateway's own arithmetic)."""
    share, scheduler = gateway_config.per_cluster_share(f), gateway_config.scheduler_resources(f)
    default = f["sizes"][f["dask_gateway"]["worker_sizes"][0]]
    cores = gateway_config.worker_cores_counted(f, default["cpu"]["limit"])
    by_cores = (share["cores"] - scheduler["scheduler_cores"]) // cores
    by_memory = (share["memory_gib"] * GIB - scheduler["scheduler_memory"]) // (default["memory_gib"]["limit"] * GIB)
    return int(min(by_cores, by_memory))


def test_shown_errors_state_the_production_limits():
    # The messages were copied from a run on one production cluster, which the count message names.
    named = re.search(r"at once on (\S+)\.", guide.error("too-many-clusters").text).group(1)
    f = {c["name"]: c for c in public_clusters()}[named]
    option = guide.error("option-above-limit").text
    asked = float(re.search(r"worker_memory=(\d+)", option).group(1))
    assert option.strip() == "ValueError: " + gateway_config.option_refusal("worker_memory", asked,
                                                                           largest(f, "memory_gib"), "GiB")
    clusters = guide.error("too-many-clusters").text
    at_most = f["dask_gateway"]["limits_per_user"]["clusters"]
    assert f"You already have {at_most} Dask" in clusters and f"at most {at_most} at once on {f['name']}." in clusters
    cap = default_worker_count_cap(f)
    assert f"resource limit of {cap} workers. Scaling to {cap} instead." in guide.error("scale-above-limit").text


def only(values, what):
    assert len(set(values)) == 1, f"the clusters differ in {what}: the guide states one value ({values})"
    return values[0]


def test_stated_numbers_match_the_cluster_files():
    clusters = public_clusters()
    home = only([f["notebook"]["home"]["size_gib"] for f in clusters], "home size")
    expiry = only([f["scratch"]["expire_after_days"] for f in clusters], "scratch expiry")
    idle = only([f["notebook"]["culling"]["idle_minutes"] for f in clusters], "idle culling")
    max_age = only([f["notebook"]["culling"]["max_age_minutes"] for f in clusters], "maximum server age")
    assert f"{home:g} GB" in page_text("home.md")
    assert f"{home:g} GB" in page_text("home.md").split("## When it is full")[1]
    assert f"deleted {expiry} days after" in page_text("scratch.md")
    assert f"{expiry}-day" in page_text("README.md")
    assert idle == 60 and "after an hour without activity" in page_text("getting-started.md")
    assert max_age == 7 * 24 * 60 and "after 7 days in any case" in page_text("getting-started.md")


def test_support_addresses_match_the_cluster_files():
    support = only([yaml.safe_dump(f["support"]) for f in public_clusters()], "support addresses")
    support = yaml.safe_load(support)
    assert support["forum_url"] in page_text("help.md")
    assert support["apply_url"] in page_text("getting-started.md")
    # The hub's pages link researchers here: the default must point at this very file.
    assert support["guide_url"].endswith("/blob/main/" + str(guide.INDEX.relative_to(guide.DOCS.parent)))


def slug(heading):
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_links_between_pages_resolve():
    for page in guide.PAGES:
        for target in re.findall(r"\]\(([^)#:]*\.md)?(#[^)]*)?\)", page_text(page)):
            file, anchor = target
            linked = file or page
            assert (guide.DOCS / linked).is_file(), f"docs/{page} links to missing {linked}"
            if anchor:
                headings = re.findall(r"^#+ (.+)$", page_text(linked), flags=re.M)
                assert anchor[1:] in {slug(h) for h in headings}, f"docs/{page}: no heading for {linked}{anchor}"


def test_every_example_is_run_and_checked_by_the_smoke_suite():
    from tests.smoke.test_guide import CHECKS, OWN_TESTS, RUN_BY_PAGE

    assert set(CHECKS) == {block.name for block in guide.examples()}, "tests/smoke/test_guide.py CHECKS"
    for block in guide.examples():
        assert block.name in OWN_TESTS or block.page in RUN_BY_PAGE, f"{block.where}: no smoke test runs {block.name}"
