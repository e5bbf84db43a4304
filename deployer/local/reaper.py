"""`python -m deployer.local.reaper STACK_ID`: stops every process of the stack when the launcher dies.

User servers and Dask clusters outlive the hub and the gateway on purpose (supervisor.py), so a launcher
killed without stopping (a test run's SIGKILL, a closed terminal) would leave them running. This process
gets SIGTERM when its launcher dies (processes._prepare_child) and then sweeps the stack's tag.
"""

import signal
import sys

from deployer.local import processes


def main(stack_id):
    signal.signal(signal.SIGTERM, lambda *_: None)
    signal.pause()
    processes.sweep(stack_id)


if __name__ == "__main__":
    main(sys.argv[1])
