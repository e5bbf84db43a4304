"""Every example of the researcher's guide (docs/), run as written inside a user's server on the target hub.

The code comes from the guide itself (tests/smoke/guide.py), so the guide shows exactly what was run. Each
example has one check below (CHECKS); tests/unit/test_guide_docs.py fails if an example has none.
Python examples run in a kernel, as in a notebook; bash examples run with bash from the home directory,
as in a JupyterLab terminal.
"""

import re

import pytest

from deployer import facts as cluster_facts
from tests.smoke import guide
from tests.smoke.kernel import Kernel, KernelError
from tests.smoke.target import scratch_of

pytestmark = pytest.mark.smoke

# Typed at ssh-keygen's and ssh-add's prompts, as a researcher would type their passphrase.
PASSPHRASE = "correct horse battery staple"
SSH_KEY = "~/.ssh/id_pangeo_github"
DASK_TIMEOUT = 600  # a cluster on Kubernetes waits for pods, maybe for a node


def largest_worker(facts, resource):
    return max(facts["sizes"][s][resource]["limit"] for s in facts["dask_gateway"]["worker_sizes"])


def run_example(kernel, name, stdin="", timeout=120, after=""):
    """Run the guide's example `name` in `kernel` unchanged (`after`: shell lines appended to clean up)."""
    block = guide.example(name)
    code = block.text if block.language == "python" else guide.as_shell_command(block.text + after, stdin)
    return kernel.run(code, timeout=timeout)


def lines(out):
    return [line.strip() for line in out.strip().splitlines()]


# What each example must print on any hub; `ctx` has the user's name and the cluster's facts.
CHECKS = {
    "which-cluster": lambda out, ctx: lines(out) == [ctx["facts"]["name"], scratch_of(ctx["facts"], ctx["user"])],
    "home-usage": lambda out, ctx: lines(out)[0].split()[:2] == ["Filesystem", "Size"],
    "ssh-key": lambda out, ctx: re.search(r"^ssh-ed25519 \S+ pangeo-cloud$", out, flags=re.M),
    "ssh-agent": lambda out, ctx: "Identity added" in out,
    "scratch-zarr": lambda out, ctx: lines(out) == ["45.0"],
    "scratch-list": lambda out, ctx: "/sub'" in out or '/sub"' in out,
    "fsspec-csv": lambda out, ctx: re.search(r"0\s+Boulder\s+11\.50*\s*\n1\s+Bergen\s+7\.25", out),
    "intake-catalog": lambda out, ctx: lines(out)[0] == "['stations']" and "Bergen" in out,
    "dask-adaptive": lambda out, ctx: abs(float(lines(out)[-1]) - 0.5) < 0.01,
    "dask-options": lambda out, ctx: re.fullmatch(r"\S+", lines(out)[-1]),
    "dask-cleanup": lambda out, ctx: all(line.startswith("stopping ") for line in lines(out)),
    "pip-user": lambda out, ctx: re.search(r"Successfully installed humanize-4\.17\.0", out),
    "pip-user-import": lambda out, ctx: (lines(out)[0] == "10.0 GiB"
                                         and "/.local/lib/python3" in lines(out)[1]),
    "dask-pip-install": lambda out, ctx: lines(out)[-1] == "0.9.0",
}


def check(name, out, ctx):
    assert CHECKS[name](out, ctx), f"{guide.example(name).where} ({name}) printed something else:\n{out}"


@pytest.fixture
def ctx(member_server, facts):
    return {"user": member_server.name, "facts": facts}


@pytest.fixture
def fresh_kernel(member_server):
    """A kernel of its own, as a reader opening a new notebook for each page."""
    with Kernel(member_server.url, member_server.token) as kernel:
        yield kernel


# Examples that need more than a running server (a passphrase typed, a restart, a Dask cluster) have tests of
# their own below; every other example runs with its page. tests/unit/test_guide_docs.py checks this covers all.
OWN_TESTS = {"ssh-key", "ssh-agent", "dask-adaptive", "dask-options", "dask-cleanup", "pip-user", "pip-user-import",
             "dask-pip-install"}
SERVER_PAGES = ("getting-started.md", "home.md")
BUCKET_PAGES = ("scratch.md", "data.md")  # these also need the scratch bucket
RUN_BY_PAGE = SERVER_PAGES + BUCKET_PAGES


def run_page(page, kernel, ctx):
    """A page's examples, in reading order, in one kernel."""
    for block in guide.examples(page):
        if block.name not in OWN_TESTS:
            check(block.name, run_example(kernel, block.name), ctx)


@pytest.mark.parametrize("page", SERVER_PAGES)
def test_page_examples(page, fresh_kernel, ctx):
    run_page(page, fresh_kernel, ctx)


@pytest.mark.parametrize("page", BUCKET_PAGES)
def test_bucket_page_examples(page, fresh_kernel, ctx):
    run_page(page, fresh_kernel, ctx)


def test_home_usage_reports_the_home_disk(fresh_kernel, facts):
    if facts["cloud"] == "local":
        pytest.skip("the local stack's homes are folders of this machine's disk, not volumes of their own")
    out = run_example(fresh_kernel, "home-usage")
    size = lines(out)[1].split()[1]  # df -h: 9.8G for a 10 GiB volume (filesystem overhead)
    assert size.endswith("G") and 0.9 * facts["notebook"]["home"]["size_gib"] <= float(size[:-1]) <= \
        facts["notebook"]["home"]["size_gib"], out


def test_dask_examples(fresh_kernel, ctx):
    """Dask Gateway as the guide calls it: adaptive cluster, worker options, then stopping what is left."""
    check("dask-adaptive", run_example(fresh_kernel, "dask-adaptive", timeout=DASK_TIMEOUT), ctx)
    asked = float(re.search(r"worker_memory = (\d+)", guide.example("dask-options").text).group(1))
    largest = largest_worker(ctx["facts"], "memory_gib")
    if asked <= largest:
        check("dask-options", run_example(fresh_kernel, "dask-options", timeout=DASK_TIMEOUT), ctx)
    else:
        # A hub whose workers are all smaller than the guide's example (kind) refuses it, as the guide says.
        with pytest.raises(KernelError, match=re.escape(f"worker_memory must be <= {largest:f}, got {asked}")):
            run_example(fresh_kernel, "dask-options", timeout=DASK_TIMEOUT)
    fresh_kernel.run("from dask_gateway import Gateway\ncluster = Gateway().new_cluster()", timeout=DASK_TIMEOUT)
    out = run_example(fresh_kernel, "dask-cleanup", timeout=DASK_TIMEOUT)
    check("dask-cleanup", out, ctx)
    assert len(lines(out)) >= 1, "dask-cleanup did not find the cluster left running"
    left = fresh_kernel.run("print(len(Gateway().list_clusters()))", timeout=DASK_TIMEOUT)
    assert lines(left) == ["0"], "clusters still running after dask-cleanup"


def shown_for(name, facts):
    """The guide's error `name`, copied from a run on the production cluster it names, as this hub says it."""
    production = cluster_facts.load(re.search(r"at once on (\S+)\.", guide.error("too-many-clusters").text).group(1))

    def clusters(f):
        return f["dask_gateway"]["limits_per_user"]["clusters"]

    shown = guide.error(name).text.strip()
    for theirs, ours in (
        (f"at most {largest_worker(production, 'memory_gib'):g} GiB", f"at most {largest_worker(facts, 'memory_gib'):g} GiB"),
        (f"have {clusters(production)} Dask", f"have {clusters(facts)} Dask"),
        (f"at most {clusters(production)} at once on {production['name']}.",
         f"at most {clusters(facts)} at once on {facts['name']}."),
    ):
        shown = shown.replace(theirs, ours)
    return shown


def test_limit_errors_are_the_ones_the_guide_shows(fresh_kernel, facts):
    """The three messages the guide shows past the limits, reproduced on this hub."""
    asked = re.search(r"worker_memory=(\d+)", guide.error("option-above-limit").text).group(1)
    fresh_kernel.run("import dask_gateway\ngateway = dask_gateway.Gateway()\noptions = gateway.cluster_options()",
                     timeout=DASK_TIMEOUT)
    # uncaught, as in a notebook: what the researcher reads first is what the guide shows
    shown = fresh_kernel.shown_error(f"options.worker_memory = {asked}", timeout=DASK_TIMEOUT)
    assert shown == shown_for("option-above-limit", facts)

    at_most = facts["dask_gateway"]["limits_per_user"]["clusters"]
    # gateway.submit() is what new_cluster() does first, without connecting a client to each scheduler:
    # the same requests and messages, a fraction of the threads on a busy machine.
    try:
        fresh_kernel.run(f"names = [gateway.submit() for _ in range({at_most})]", timeout=DASK_TIMEOUT)
        shown = fresh_kernel.shown_error("gateway.submit()", timeout=DASK_TIMEOUT)  # uncaught, as in a notebook
        # The names of the running clusters are random: the guide elides them.
        assert re.sub(r"starting \([^)]*\)", "starting (...)", shown) == shown_for("too-many-clusters", facts)

        requested = re.search(r"Scale request of (\d+)", guide.error("scale-above-limit").text).group(1)
        out = fresh_kernel.run(f"""
import time, warnings
deadline = time.monotonic() + 300
while gateway.get_cluster(names[0]).status.name != "RUNNING":
    assert time.monotonic() < deadline, f"cluster {{names[0]}} not running after 300 s"
    time.sleep(0.5)
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    gateway.scale_cluster(names[0], {requested})
for w in caught:
    print(f"{{w.category.__name__}}: {{w.message}}")
""", timeout=DASK_TIMEOUT)
        # The number of workers that fit depends on the cluster's sizes; the words must be the guide's.
        numbers = re.compile(r"limit of \d+ workers\. Scaling to \d+ instead")
        masked = "limit of N workers. Scaling to N instead"
        assert numbers.sub(masked, out.strip()) == numbers.sub(masked, shown_for("scale-above-limit", facts))
    finally:
        fresh_kernel.run("for report in gateway.list_clusters():\n    gateway.stop_cluster(report.name)",
                         timeout=DASK_TIMEOUT)


def restart(server):
    profile = server.spawn.profile
    server.stop()
    server.start(profile)
    return server.kernel()


def skip_without_user_site(kernel):
    """`pip install --user` needs the environment's own pip and user site-packages: the image has both."""
    ready = kernel.run(
        "import importlib.util, os, shutil, site, sys\n"
        "print(importlib.util.find_spec('pip') is not None and bool(site.ENABLE_USER_SITE)\n"
        "      and os.path.dirname(shutil.which('pip') or '') == os.path.dirname(sys.executable))\n")
    if ready.strip() != "True":
        pytest.skip("needs pip and user site-packages in the server's Python environment (the image has both); "
                    "the local stack's notebook venv .venv/user is a uv venv without pip, where user site-packages "
                    "are off")


def test_ssh_key_survives_a_restart(member2_server, facts):
    """The guide's SSH key, made once, is still there and still opens with its passphrase after a restart."""
    ctx = {"user": member2_server.name, "facts": facts}
    kernel = member2_server.kernel()
    # A key from an earlier run would make ssh-keygen ask whether to overwrite it.
    kernel.run(guide.as_shell_command(f"rm -f {SSH_KEY} {SSH_KEY}.pub\n"))
    check("ssh-key", run_example(kernel, "ssh-key", stdin=f"{PASSPHRASE}\n{PASSPHRASE}\n"), ctx)
    kernel = restart(member2_server)
    # ssh-add accepting the passphrase proves it is the same key; the agent is stopped afterwards.
    check("ssh-agent", run_example(kernel, "ssh-agent", stdin=f"{PASSPHRASE}\n", after="ssh-agent -k\n"), ctx)


def test_user_packages_survive_a_restart(member2_server, facts):
    """`pip install --user` lands in ~/.local and is importable after a restart."""
    ctx = {"user": member2_server.name, "facts": facts}
    kernel = member2_server.kernel()
    skip_without_user_site(kernel)
    # A package from an earlier run would make pip do nothing.
    kernel.run(guide.as_shell_command("rm -rf ~/.local/lib/python3*/site-packages/humanize*\n"))
    check("pip-user", run_example(kernel, "pip-user", timeout=300), ctx)
    kernel = restart(member2_server)
    check("pip-user-import", run_example(kernel, "pip-user-import"), ctx)


def test_workers_lack_user_packages_until_installed_on_them(fresh_kernel, ctx):
    """The guide says workers do not see `pip install --user` packages, and how to get one onto them."""
    skip_without_user_site(fresh_kernel)
    fresh_kernel.run(guide.as_shell_command(guide.example("pip-user").text), timeout=300)
    out = fresh_kernel.run("""
from dask.distributed import Client
from dask_gateway import Gateway
import importlib.util

gateway = Gateway()
cluster = gateway.new_cluster()
cluster.scale(1)
client = Client(cluster)
client.wait_for_workers(1, timeout=300)
print(client.submit(lambda: importlib.util.find_spec("humanize") is None).result())
client.close()
cluster.close()
""", timeout=DASK_TIMEOUT)
    assert lines(out)[-1] == "True", f"a Dask worker imports the user's ~/.local package: {out}"
    check("dask-pip-install", run_example(fresh_kernel, "dask-pip-install", timeout=DASK_TIMEOUT), ctx)
    # Where workers share the notebook's environment (local processes), PipInstall wrote into it: undo that.
    fresh_kernel.run("import importlib.util, subprocess, sys\n"
                     "spec = importlib.util.find_spec('tabulate')\n"
                     "if spec is not None and '/.local/' not in spec.origin:\n"
                     "    subprocess.run([sys.executable, '-m', 'pip', 'uninstall', '-q', '-y', 'tabulate'], check=True)\n")


FILL = "~/guide-fills-the-home.bin"


def test_a_full_home_still_starts(member2_server, facts):
    """The guide says a server still starts with a full home, so the user can log in and clean up."""
    if facts["cloud"] != "kind":
        pytest.skip("fills a home volume to the last byte: only on a throw-away kind cluster (needs kind)")
    kernel = member2_server.kernel()
    size = int(kernel.run(guide.as_shell_command("df --output=size -B1 ~ | tail -n 1")).strip())
    assert size <= 1.1 * facts["notebook"]["home"]["size_gib"] * 2**30, \
        f"the home is a {size / 2**30:.1f} GiB file system, not a {facts['notebook']['home']['size_gib']} GiB volume"
    try:
        out = kernel.run(guide.as_shell_command(
            f"fallocate -l $(df --output=avail -B1 ~ | tail -n 1) {FILL} || true\n"
            f"dd if=/dev/zero of={FILL}.rest bs=1M 2>/dev/null || true\n"
            "df --output=avail -B1 ~ | tail -n 1\n"), timeout=300)
        assert int(out.strip().splitlines()[-1]) < 2**20, f"the home is not full: {out}"
        usage = run_example(restart(member2_server), "home-usage")
        assert "100%" in lines(usage)[1], f"home-usage does not show a full home:\n{usage}"
    finally:
        member2_server.run(guide.as_shell_command(f"rm -f {FILL} {FILL}.rest\n"))
