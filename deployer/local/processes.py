"""Child processes of the local stack: start each in its own session, stop with a grace period, leave none.

Processes that ours start in turn (user servers, kernels, the proxy, Dask schedulers and workers) are in
sessions of their own too, so signals to our process groups do not reach them. Every one of them carries
STACK_ID_VAR=<this stack's id> in its environment (the hub and gateway layers pass it on), and `sweep`
finds them by it: that is how a stop leaves no orphan. If the launcher itself is killed, our direct
children get SIGTERM from the kernel (PR_SET_PDEATHSIG) and stop theirs; the next start on the same data
directory sweeps whatever a crash left.
"""

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

STACK_ID_VAR = "PANGEO_LOCAL_STACK_ID"
_PR_SET_PDEATHSIG = 1


def _prepare_child():
    """In the child before exec: SIGTERM when the process (thread) that started it dies, even by SIGKILL,
    so a killed launcher or test run still lets the hub stop its servers and services. And SIGINT back to
    its default: a launcher started in the background by a shell ignores SIGINT, every descendant would
    inherit that, and the hub stops its services (the idle culler) with SIGINT, waiting 10 s for each."""
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_free(port):
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


class Process:
    """One child process in its own session, logging to a file."""

    def __init__(self, name, cmd, log_path, env=None, cwd=None, grace_s=10.0):
        self.name, self.cmd, self.log_path, self.grace_s = name, [str(a) for a in cmd], Path(log_path), grace_s
        self._deadline = None
        with open(self.log_path, "ab") as log:
            self.popen = subprocess.Popen(self.cmd, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=log,
                                          stderr=subprocess.STDOUT, start_new_session=True,
                                          preexec_fn=_prepare_child)

    @property
    def pid(self):
        return self.popen.pid

    def exited(self):
        return self.popen.poll() is not None

    def log_tail(self, lines=15):
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def terminate(self):
        if not self.exited():
            _signal_group(self.pid, signal.SIGTERM)
            self._deadline = time.monotonic() + self.grace_s

    def wait_or_kill(self):
        """Wait out the grace period that terminate() began, then SIGKILL the process group."""
        if self._deadline is not None:
            try:
                self.popen.wait(max(0.0, self._deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(self.pid, signal.SIGKILL)
                self.popen.wait(5)
        # Helpers left in the group (weed's children, a shell's) go too.
        _signal_group(self.pid, signal.SIGKILL)

    def stop(self):
        """SIGTERM to the process group, SIGKILL after the grace period."""
        self.terminate()
        self.wait_or_kill()


def _signal_group(pid, sig):
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def tagged_pids(stack_id, also=None):
    """Pids of live processes whose environment holds STACK_ID_VAR=stack_id (any of our descendants), and
    also the variable `also` ("NAME=value") when given."""
    needles = {f"{STACK_ID_VAR}={stack_id}".encode()} | ({also.encode()} if also else set())
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if needles <= set((entry / "environ").read_bytes().split(b"\0")):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def sweep(stack_id, grace_s=5.0, also=None):
    """Stop every process tagged with stack_id (and `also`): SIGTERM, then SIGKILL what is left after grace_s."""
    pids = tagged_pids(stack_id, also)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while pids and time.monotonic() < deadline:
        time.sleep(0.2)
        pids = [pid for pid in pids if _alive(pid)]
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return pids


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def http_status(url, timeout=2.0, headers=None):
    """The HTTP status of GET url, or None when nothing answers."""
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status
    except urllib.error.HTTPError as e:
        return e.code
    except (urllib.error.URLError, OSError):
        return None


def wait_until(check, what, timeout_s, processes=(), interval_s=0.2):
    """Poll check() until true; fail early, with the log, if one of `processes` exits meanwhile."""
    deadline = time.monotonic() + timeout_s
    while True:
        if check():
            return
        for process in processes:
            if process.exited():
                raise ChildExited(process, what)
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not answer within {timeout_s:.0f} s")
        time.sleep(interval_s)


class ChildExited(RuntimeError):
    def __init__(self, process, what):
        self.process = process
        super().__init__(f"{process.name} exited (code {process.popen.returncode}) before {what}; "
                         f"last lines of {process.log_path}:\n{process.log_tail()}")
