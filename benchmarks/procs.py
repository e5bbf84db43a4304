"""Finding a user's server process by its environment, as the local stack tags it, and copying how it runs."""

import os
import threading
import time
from pathlib import Path

from .common import http_ok


def environ_of(pid):
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(item.split("=", 1) for item in raw.decode(errors="replace").split("\0") if "=" in item)


def find_server(username, tag_var, tag_value, skip=()):
    """Pid of the process whose environment says it is `username`'s server of this stack, or None."""
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) in skip:
            continue
        try:
            env = environ_of(entry.name)
        except OSError:
            continue
        if env.get(tag_var) == tag_value and env.get("JUPYTERHUB_USER") == username and "JUPYTERHUB_SERVICE_URL" in env:
            return int(entry.name)
    return None


def process_image(pid):
    """(argv, environment, cwd) of a running process, to start the same thing again by hand."""
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().rstrip(b"\0").decode().split("\0")
    return argv, environ_of(pid), os.readlink(f"/proc/{pid}/cwd")


class ServerWatcher(threading.Thread):
    """Watches, from outside the hub, when a spawn's server process appears and when it first answers itself.

    With the time of the start request and the time the hub reports the server ready, this splits a hub
    spawn into: the hub until the process exists / the server's own start-up / the hub until it says ready.
    """

    def __init__(self, username, tag_var, tag_value, timeout_s=120, interval_s=0.02):
        super().__init__(daemon=True)
        self.args = (username, tag_var, tag_value)
        self.timeout_s, self.interval_s = timeout_s, interval_s
        self.process_seen = self.answered = self.pid = None
        self.skip = {int(e.name) for e in os.scandir("/proc") if e.name.isdigit()}
        self._halt = threading.Event()

    def run(self):
        deadline = time.monotonic() + self.timeout_s
        while self.pid is None and not self._halt.is_set() and time.monotonic() < deadline:
            self.pid = find_server(*self.args, skip=self.skip)
            if self.pid is None:
                time.sleep(self.interval_s)
        if self.pid is None:
            return
        self.process_seen = time.monotonic()
        url = environ_of(self.pid)["JUPYTERHUB_SERVICE_URL"].rstrip("/") + "/api"
        while not self._halt.is_set() and time.monotonic() < deadline:
            if http_ok(url, timeout=1.0):
                self.answered = time.monotonic()
                return
            time.sleep(self.interval_s)

    def stop(self):
        self._halt.set()
        self.join(5)


def tagged_process(stack_id, argv_suffix):
    """Pid of this stack's process whose argv has an element ending in argv_suffix (e.g. "bin/jupyterhub")."""
    from deployer.local.processes import tagged_pids

    for pid in tagged_pids(stack_id):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(a.endswith(argv_suffix.encode()) for a in argv):
            return pid
    return None


def cpu_seconds(pid):
    """User + system CPU time of a live process so far, or None."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
