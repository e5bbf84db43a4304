"""A throw-away PostgreSQL server for the database comparison: Debian's `postgresql` (`make postgres`),
initdb'd in a temporary directory, listening on 127.0.0.1 only, removed on exit.

The server's defaults are kept (fsync and synchronous commit on, as SQLite's defaults are durable too).
PostgreSQL refuses to run as root: as root, it runs as the `postgres` account the package creates.
"""

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

from .common import log

START_TIMEOUT_S = 60
DATABASE = "jupyterhub"
ROLE = "bench"


def bin_dir():
    """Debian's PostgreSQL programs (the newest installed major version), or None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[4]))
    return Path(found[-1]).parent if found else None


def missing():
    """Why the comparison cannot run here, in one line, or None."""
    if bin_dir() is None:
        return "PostgreSQL's server is not installed (/usr/lib/postgresql/*/bin/initdb): run `make postgres`"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no `postgres` account to run the server as"
    return None


@contextlib.contextmanager
def server(port):
    """A started server on 127.0.0.1:port; yields the SQLAlchemy URL of its database (psycopg2 driver)."""
    why = missing()
    if why:
        raise RuntimeError(why)
    programs = bin_dir()
    account = pwd.getpwnam("postgres") if os.geteuid() == 0 else None
    run_as = {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []} if account else {}
    top = Path(tempfile.mkdtemp(prefix="pangeo-bench-pg-"))
    data, logfile = top / "data", top / "server.log"
    if account:
        os.chown(top, account.pw_uid, account.pw_gid)

    def run(*args, timeout=120):
        return subprocess.run([str(programs / args[0]), *map(str, args[1:])], check=True, capture_output=True,
                              text=True, timeout=timeout, cwd=top, **run_as)

    try:
        run("initdb", "-D", data, "-U", ROLE, "-A", "trust", "-E", "UTF8", "--locale=C.UTF-8")
        run("pg_ctl", "-D", data, "-l", logfile, "-w", "-t", START_TIMEOUT_S, "-o",
            f"-h 127.0.0.1 -p {port} -k {top}", "start", timeout=START_TIMEOUT_S + 10)
        try:
            run("createdb", "-h", "127.0.0.1", "-p", port, "-U", ROLE, DATABASE)
            log(f"PostgreSQL ({programs.parent.name}) on 127.0.0.1:{port}, data in {data}")
            yield f"postgresql+psycopg2://{ROLE}@127.0.0.1:{port}/{DATABASE}"
        finally:
            run("pg_ctl", "-D", data, "-m", "fast", "-w", "stop")
    except subprocess.CalledProcessError as e:
        raise RuntimeError(f"PostgreSQL: {' '.join(e.cmd[:2])} failed ({e.returncode}): {e.stderr[-800:]}; "
                           f"server log {logfile}") from None
    finally:
        shutil.rmtree(top, ignore_errors=True)
