"""`python -m deployer.local --data DIR --port P`: start the whole service, print where it is, stop on Ctrl-C."""

import argparse
import signal
import sys
import threading
from pathlib import Path

from deployer.local.stack import LocalStack, LocalStackError


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m deployer.local", description=__doc__)
    parser.add_argument("--data", type=Path, default=Path(".dev-data"), help="state directory (kept across runs)")
    parser.add_argument("--port", type=int, default=8000, help="the hub's port on 127.0.0.1 (0: any free port)")
    args = parser.parse_args(argv)

    stop = threading.Event()
    # SIGTERM as Ctrl-C; both only set the event, so a signal during start-up cannot interrupt a half-made step.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())

    stack = LocalStack(args.data, port=args.port)
    print(f"Starting the local stack (state in {stack.data_dir}) ...", flush=True)
    try:
        stack.start()
    except LocalStackError as e:
        print(f"make dev: {e}", file=sys.stderr)
        return 2
    code = 0
    try:
        if not stop.is_set():
            _announce(stack)
        reported = 0
        while not stop.wait(2):
            for _, name, what in stack.supervisor.events[reported:]:
                print(f"make dev: {name} {what}", file=sys.stderr, flush=True)
            reported = len(stack.supervisor.events)
            failure = stack.exited()
            if failure:
                print(f"make dev: {failure}", file=sys.stderr)
                code = 1
                break
    finally:
        print("\nStopping the local stack ...", flush=True)
        stack.stop()
        print("Stopped.", flush=True)
    return code


def _announce(stack):
    users = stack.users
    print(f"""
Pangeo Cloud (local) is up at {stack.hub_url}   (started in {stack.timings['start_s']} s)
  Sign in with GitHub, then pick a user on the stand-in's page ({stack.github_url}):
    team member: {users['member']}, {users['member2']}   admin: {users['admin']}   outsider (refused): {users['outsider']}
  Scratch store (S3): {stack.s3_url}    logs: {stack.data_dir / 'logs'}
Press Ctrl-C to stop everything.""", flush=True)


if __name__ == "__main__":
    sys.exit(main())
