"""Restart the local stack's processes when they exit, as Kubernetes restarts a Deployment's pod.

On Kubernetes the hub, the proxy and the gateway are separate pods: a `helm upgrade` or a crash of one
restarts that one, and the others (and the users' pods) live on. The supervisor gives the local stack the
same behaviour, so that the fault tests (tests/faults) test the service that is deployed. The hub's own
managed services (the idle culler) run in the hub's pod there and die with it; here they are separate
processes tagged POD_VAR=hub (hub_layer), and are stopped before the hub is started again.

A process that keeps exiting (CRASH_LIMIT restarts within CRASH_WINDOW_S) is left down and reported, as
Kubernetes reports CrashLoopBackOff.
"""

import os
import threading
import time

from deployer.local import processes

POD_VAR = "PANGEO_LOCAL_POD"
CRASH_LIMIT = 5
CRASH_WINDOW_S = 60.0
POLL_S = 0.2
BACKOFF_S = 1.0


class Supervisor(threading.Thread):
    """Watches `stack._processes`; restarts with `stack._respawn(name)`. Lives as long as the stack: the
    processes it restarts get SIGTERM when this thread ends (processes._prepare_child)."""

    def __init__(self, stack):
        super().__init__(name="local-stack-supervisor", daemon=True)
        self.stack = stack
        self.halt = threading.Event()
        self.held = set()
        self.events = []  # (monotonic time, name, what): restarts and give-ups, for `make dev` and the tests
        self.given_up = {}
        self._restarts = {}
        self._lock = threading.Lock()

    def run(self):
        while not self.halt.wait(POLL_S):
            with self._lock:
                for name, process in list(self.stack._processes.items()):
                    if name not in self.held and name not in self.given_up and process.exited():
                        self._restart(name, process)

    def _restart(self, name, process):
        now = time.monotonic()
        recent = [t for t in self._restarts.get(name, []) if now - t < CRASH_WINDOW_S]
        if len(recent) >= CRASH_LIMIT:
            self.given_up[name] = (f"{name} exited (code {process.popen.returncode}) {len(recent)} times within "
                                   f"{CRASH_WINDOW_S:.0f} s; last lines of {process.log_path}:\n{process.log_tail()}")
            self.events.append((now, name, "given up"))
            return
        if recent and now - recent[-1] < BACKOFF_S:
            return
        if name == "hub":
            # The hub's pod takes its managed services with it, at once (the kubelet kills a pod's containers).
            processes.sweep(self.stack.stack_id, grace_s=0.5, also=f"{POD_VAR}=hub")
        self._restarts[name] = recent + [now]
        self.events.append((now, name, f"exited (code {process.popen.returncode}), restarted"))
        self.stack._respawn(name)

    def restarts(self, name):
        return len(self._restarts.get(name, []))

    def hold(self, name):
        """Stop `name` and keep it down until release(name): an outage rather than a crash."""
        with self._lock:
            self.held.add(name)
            self.stack._processes[name].stop()

    def release(self, name):
        """The next poll starts `name` again (from this thread, which outlives it)."""
        with self._lock:
            self.held.discard(name)

    def stop(self):
        self.halt.set()
        if self.is_alive() and threading.current_thread() is not self:
            self.join(5)


def kill(process, sig):
    """A pod dying: its process group. What the process started in sessions of their own (user servers,
    Dask clusters) lives on, as pods of their own do on Kubernetes."""
    try:
        os.killpg(process.pid, sig)
    except ProcessLookupError:
        pass
