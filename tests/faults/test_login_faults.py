"""GitHub down, slow, or no longer vouching for a user, in the middle of a login (issue 13).

A stack of its own whose GitHub stand-in knows one more team member, carol, whose membership the test revokes
(the benchmarks' stand-in users file, benchmarks/variants.py, with carol added to the allowed team).
"""

import signal

import pytest
import yaml

from benchmarks.variants import bench_stack
from tests.faults.reliability import Stopwatch, figure, wait_for
from tests.smoke.hub import page_text
from tests.smoke.login import callback_url, standin_login

pytestmark = pytest.mark.faults

USER = "carol"
TIMEOUT = 60


@pytest.fixture(scope="module")
def login_stack(tmp_path_factory):
    with bench_stack(tmp_path_factory.mktemp("login-faults"), "ours", logins=[USER], notes=[]) as stack:
        yield stack


def _logs_in(stack):
    session = standin_login(stack.hub_url, USER)
    return session.login_response.status_code == 200 and "/hub/" in session.login_response.url


def _assert_github_unreachable_page(page):
    text = page_text(page.text)
    assert "GitHub could not be reached" in text, f"HTTP {page.status_code}: {text[:600]}"
    assert "Traceback" not in page.text
    assert page.status_code in (502, 503, 504, 500), page.status_code


def test_github_down_at_login_gives_a_clear_page(login_stack, request):
    """GitHub (the stand-in) down when the hub exchanges the login code: the hub's error page says GitHub could
    not be reached (no traceback); login works once GitHub is back."""
    session, callback = callback_url(login_stack.hub_url, USER)
    login_stack.hold("github-standin")
    try:
        clock = Stopwatch()
        page = session.get(callback, timeout=TIMEOUT)
        figure(request, "error page shown after", clock.seconds())
    finally:
        login_stack.release("github-standin")
    _assert_github_unreachable_page(page)
    wait_for(lambda: _logs_in(login_stack), "a login once GitHub is back", 60, interval_s=1)


def test_github_slow_at_login_gives_a_clear_page(login_stack, request):
    """GitHub (the stand-in) answering nothing (stopped, SIGSTOP) at the code exchange: the hub gives up after its
    timeout with the same page."""
    session, callback = callback_url(login_stack.hub_url, USER)
    clock = Stopwatch()
    login_stack.kill("github-standin", signal.SIGSTOP)
    try:
        page = session.get(callback, timeout=TIMEOUT)
    finally:
        login_stack.kill("github-standin", signal.SIGCONT)
    figure(request, "error page shown after", clock.seconds())
    _assert_github_unreachable_page(page)
    wait_for(lambda: _logs_in(login_stack), "a login once GitHub answers again", 60, interval_s=1)


def test_revoked_membership_refuses_the_next_login(login_stack):
    """Membership revoked on GitHub: the user's next login is refused with the not-a-member page."""
    assert _logs_in(login_stack)
    users_file = next(p for p in login_stack.data_dir.glob("*standin-users.yaml"))
    data = yaml.safe_load(users_file.read_text())
    for org in data["orgs"].values():
        for members in org["teams"].values():
            if USER in members:
                members.remove(USER)
    users_file.write_text(yaml.safe_dump(data, sort_keys=False))
    login_stack.kill("github-standin")  # the stand-in reads its users at start, as GitHub's API answers now
    wait_for(lambda: login_stack.supervisor.restarts("github-standin") > 0, "the stand-in restarted", 30)
    page = wait_for(lambda: standin_login(login_stack.hub_url, USER).login_response, "a login attempt", 60)
    assert page.status_code == 403, f"HTTP {page.status_code} at {page.url}: {page_text(page.text)[:400]}"
    assert "not a member" in page_text(page.text).lower()
