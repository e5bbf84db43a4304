"""A researcher's first visit, in a real browser: sign in with (the stand-in for) GitHub, pick a size, watch
the spawn (which names the size), land in JupyterLab; the cluster options form with its limits; a Dask
cluster made in a notebook listed in the Dask panel, its task stream in a dashboard pane, dropped once
closed. An outsider ends on the friendly page naming their account, and a reload of it leads back to the
login. Screenshots go to test-artifacts/."""

import re
import shutil
import time
from pathlib import Path

import pytest

from tests.smoke.hub import HubAPI, UserServer
from tests.smoke.kernel import Kernel
from tests.smoke.report import record

pytestmark = [pytest.mark.local, pytest.mark.browser]

CHROMIUM = "/usr/bin/chromium"
# Flags measured to work here (ENVIRONMENT.md): no sandbox as root, no GPU, nothing phoning home.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
SPAWN_TIMEOUT_MS = 180_000


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
        pytest.skip("needs chromium: Debian's package (`make browser` installs it); Playwright cannot download browsers here")
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.set_default_timeout(30_000)
    yield context.new_page()
    context.close()


def sign_in(page, hub_url, username):
    """From the hub's login page through the stand-in's user picker; returns once back at the hub."""
    page.goto(f"{hub_url}/hub/login")
    page.get_by_text("Sign in with GitHub").click()
    page.wait_for_url(re.compile(r"/login/oauth/authorize"))
    picker = page.locator(f'button[name="login"][value="{username}"]')
    picker.wait_for()
    return picker


def test_member_signs_in_picks_a_size_and_gets_jupyterlab(page, local_stack):
    hub_url, member, facts = local_stack.hub_url, local_stack.users["member"], local_stack.facts
    hub = HubAPI(hub_url, local_stack.api_token)

    def stop_server():
        if (hub.user(member) or {}).get("servers", {}).get(""):
            UserServer(hub, member).stop()

    stop_server()  # the browser must see the profile page, which a running server skips
    try:
        page.goto(f"{hub_url}/hub/login")
        page.get_by_text("Sign in with GitHub").wait_for()
        page.screenshot(path=ARTIFACTS / "01-hub-login.png")

        picker = sign_in(page, hub_url, member)
        page.screenshot(path=ARTIFACTS / "02-github-standin.png")
        started = time.monotonic()
        picker.click()
        page.wait_for_url(re.compile(r"/hub/spawn"))
        radios = page.locator('input[name="profile"]')
        radios.first.wait_for()
        assert radios.count() == len(facts["notebook"]["sizes"])
        assert radios.first.is_checked()
        page.screenshot(path=ARTIFACTS / "03-profiles.png", full_page=True)

        chosen = radios.nth(radios.count() - 1)
        chosen_slug = chosen.get_attribute("value")
        chosen.check()
        page.locator('form#spawn_form [type="submit"], form [type="submit"]').first.click()
        page.wait_for_url(re.compile(r"/hub/spawn-pending/"), timeout=SPAWN_TIMEOUT_MS)
        page.locator("#progress-message, .progress").first.wait_for()
        page.screenshot(path=ARTIFACTS / "04-spawn-progress.png")
        size_name = facts["sizes"][chosen_slug]["display_name"]
        assert size_name in page.locator("#pangeo-size").inner_text(), "the spawn page must name the size"

        page.wait_for_url(re.compile(rf"/user/{member}/lab"), timeout=SPAWN_TIMEOUT_MS)
        page.locator(".jp-Launcher").first.wait_for(timeout=SPAWN_TIMEOUT_MS)
        record("browser: picker click to JupyterLab launcher", time.monotonic() - started)
        page.screenshot(path=ARTIFACTS / "05-jupyterlab.png")
        server = hub.user(member)["servers"][""]
        assert server["user_options"].get("profile") == chosen_slug, f"picked {chosen_slug}, the hub started {server}"
        try:
            options_form_shows_the_limits(page, facts)
            dask_panel_follows_a_notebook_cluster(page, UserServer(hub, member))
        except Exception:
            page.screenshot(path=ARTIFACTS / "failed-jupyterlab.png")  # what the browser showed when it failed
            raise
    finally:
        stop_server()


def options_form_shows_the_limits(page, facts):
    """`gateway.cluster_options()` in a notebook is a form (ipywidgets) whose labels state each upper limit."""
    page.locator('.jp-LauncherCard[data-category="Notebook"]').first.click()
    cell = page.locator(".jp-Notebook .jp-Cell .cm-content").first
    cell.wait_for()
    # Run only once the kernel is up: a cell run while the kernel is still starting may be dropped.
    page.locator(".jp-StatusBar-Widget", has_text=re.compile(r"\| Idle")).first.wait_for(timeout=60_000)
    cell.click()
    page.keyboard.type("from dask_gateway import Gateway\nGateway().cluster_options()")
    page.keyboard.press("Shift+Enter")
    output = page.locator(".jp-OutputArea-output .jupyter-widgets").first
    output.wait_for(timeout=60_000)
    time.sleep(1)  # the form's widgets render one after the other
    labels = page.locator(".jp-OutputArea-output").first.inner_text()
    page.screenshot(path=ARTIFACTS / "07-cluster-options-form.png")
    gateway = facts["dask_gateway"]
    largest_memory = max(facts["sizes"][s]["memory_gib"]["limit"] for s in gateway["worker_sizes"])
    assert f"up to {largest_memory:g}" in labels, labels
    assert f"up to {gateway['idle_timeout_minutes']['maximum']:g}" in labels, labels
    # A cluster shows its scale/adapt widget (ipywidgets), then is closed again (it counts against the limit).
    page.keyboard.type("cluster = Gateway().new_cluster()\ncluster")
    page.keyboard.press("Shift+Enter")
    # (the Adapt button is in the widget's collapsed "Adaptive Scaling" section)
    page.locator(".jp-OutputArea-output button", has_text="Adapt").first.wait_for(state="attached", timeout=120_000)
    page.screenshot(path=ARTIFACTS / "07b-cluster-widget.png")
    page.keyboard.type("cluster.close()")
    page.keyboard.press("Shift+Enter")


def dask_panel_follows_a_notebook_cluster(page, server):
    """A cluster made in a notebook appears in the Dask panel, its dashboard pane shows the task stream of a
    computation, and it leaves the panel once the notebook closes it."""
    with Kernel(server.url, server.token) as kernel:
        name = kernel.run_json("""
import json
from dask_gateway import Gateway
gateway = Gateway()
cluster = gateway.new_cluster()
cluster.scale(1)
client = cluster.get_client()
client.wait_for_workers(1, timeout=180)
print(json.dumps(cluster.name))
""", timeout=240)
        page.locator('.jp-SideBar [data-id="dask-dashboard-launcher"]').click()
        listed = page.locator(".dask-ClusterListingItem", has_text=name)
        listed.wait_for(timeout=30_000)
        listed.click()  # makes it the panel's cluster: its dashboard's plots become buttons
        page.locator(".dask-DaskDashboardLauncher").get_by_text("Task Stream", exact=True).click()
        pane = page.frame_locator("iframe[src*='individual-task-stream']")
        pane.locator("canvas").first.wait_for(timeout=60_000)
        kernel.run("import dask.array as da\nfor _ in range(3): da.random.random((3000, 3000), chunks=500).sum().compute()",
                   timeout=180)
        time.sleep(2)  # the task stream redraws every second or so
        page.screenshot(path=ARTIFACTS / "08-dask-panel-task-stream.png")
        kernel.run("client.close()\ncluster.close()", timeout=120)
        listed.wait_for(state="detached", timeout=60_000)
        page.screenshot(path=ARTIFACTS / "09-dask-panel-after-close.png")


def test_outsider_ends_on_the_friendly_page(page, local_stack):
    facts = local_stack.facts
    sign_in(page, local_stack.hub_url, local_stack.users["outsider"]).click()
    page.wait_for_load_state()
    text = page.locator("body").inner_text()
    page.screenshot(path=ARTIFACTS / "06-outsider.png", full_page=True)
    assert any(team in text for team in facts["github"]["allowed_teams"]), text
    assert page.locator(f'a[href="{facts["support"]["apply_url"]}"]').count() >= 1, text
    assert "Traceback" not in text
    assert page.locator("#pangeo-account").inner_text() == local_stack.users["outsider"], "name the GitHub account"
    # The page stays at /hub/oauth_callback?code=...&state=...: a reload must lead somewhere usable.
    page.reload()
    page.locator("#pangeo-stale-sign-in").wait_for()
    page.screenshot(path=ARTIFACTS / "10-outsider-reload.png", full_page=True)
    page.locator("#pangeo-sign-in").click()
    page.get_by_text("Sign in with GitHub").wait_for()
