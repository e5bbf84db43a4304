"""After everything else against the local stack (tests/local/conftest.py runs this file last): the hub's
log, which holds the gateway's too (a hub-managed service), shows no traceback and none of the noise that
normal use used to leave there. A traceback here is a bug to fix at its cause, not a line to filter here
(one upstream traceback of the local gateway's proxy is dropped where it is logged, with the reason:
deployer/local/gateway_local_config.py)."""

import re

import pytest

pytestmark = pytest.mark.local

# Lines that normal use must not produce (each was seen once, and fixed at its cause):
NOISE = {
    "a traceback": re.compile(r"^\s*Traceback \(most recent call last\)"),
    "an unhandled user option (the spawner must apply the profile)": re.compile(r"Received unhandled user_options"),
    "the hub's service check hitting the gateway's root": re.compile(r"DaskGateway.*\b404 GET / "),
    "a connection reset logged as an error": re.compile(r"ClientConnectionResetError"),
}


# Upstream's, and why they are left: (what the traceback holds, the reason).
UPSTREAM = [
    ((r"jupyter_server_proxy/handlers\.py\S*, line \d+, in proxy_open", r"HTTPClientError: HTTP (404|502)"),
     "a Dask dashboard pane left open after its cluster stopped: its websocket reconnects through the user's "
     "server, and jupyter-server-proxy 4.6.0 logs the refused backend connection (502 while the cluster stops, "
     "404 once its route is gone) as an uncaught exception"),
]


def upstream_reason(traceback_lines):
    text = "\n".join(traceback_lines)
    for patterns, reason in UPSTREAM:
        if all(re.search(p, text) for p in patterns):
            return reason
    return None


def test_the_logs_hold_no_traceback_and_no_known_noise(local_stack):
    log = local_stack.data_dir / "logs" / "hub.log"
    lines = log.read_text(errors="replace").splitlines()
    found = []
    for number, line in enumerate(lines, 1):
        for what, pattern in NOISE.items():
            if pattern.search(line):
                following = lines[number - 1:number + 25]
                # a traceback ends at its exception's line, the first one not indented after it
                end = next((i for i, text in enumerate(following[1:], 1) if not text.startswith(" ")), len(following))
                if what == "a traceback" and upstream_reason(following[:end + 1]):
                    continue
                context = "\n".join(lines[max(0, number - 3):number + 25])
                found.append(f"{log}:{number}: {what}:\n{context}")
    assert not found, f"{len(found)} unexpected line(s) in the hub's log; the first:\n{found[0]}"
