"""How the local stack runs a user's processes (servers, Dask schedulers and workers): in their own mount and PID
namespaces, where confine.sh hides the stack's own state, as a pod cannot see the hub's volumes, Secrets or
processes. Standard library only: the hub and the gateway both import it."""

from pathlib import Path

CONFINE = Path(__file__).resolve().parent / "confine.sh"


# unshare ignores SIGINT and SIGTERM while it waits for its child; only its SIGKILL works, and --kill-child
# then passes SIGTERM on, which stops the confined process cleanly. Stops must go straight to SIGKILL.
SKIP_TO_KILL = 0


def confined(data_dir, keep_cwd=False):
    """The command prefix; --kill-child passes a stop on to the confined process."""
    return ["unshare", "--mount", "--pid", "--fork", "--mount-proc", "--kill-child=SIGTERM",
            "/bin/sh", str(CONFINE), str(data_dir)] + (["--keep-cwd"] if keep_cwd else [])
