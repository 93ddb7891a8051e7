"""A throwaway PostgreSQL cluster for the test session: Debian's binaries, a temporary directory, a free port.

As root (CI), initdb and postgres run as the ``postgres`` system user, which the Debian package creates; the
directory is a fresh one under /tmp (not pytest's tmp dirs, which that user cannot enter). fsync is off: the cluster
dies with the session anyway. Each test gets a fresh database (``CREATE DATABASE`` takes a few milliseconds).
"""

from __future__ import annotations

import glob
import itertools
import os
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import psycopg

PG_PARENT = "/tmp"
START_ATTEMPTS = 5  # another process may take the free port between our look and postgres's bind
MISSING = (
    "PostgreSQL's server binaries (initdb, pg_ctl) were not found: install Debian's postgresql package "
    "(./scripts/test does it) or set PG_BIN to their directory."
)


def pg_bin() -> Path:
    """The directory of initdb and pg_ctl: PG_BIN, else Debian's newest /usr/lib/postgresql/<version>/bin."""
    if os.environ.get("PG_BIN"):
        return Path(os.environ["PG_BIN"])
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if not found:
        raise RuntimeError(MISSING)
    return Path(found[-1]).parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _as_postgres(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


@dataclass
class Cluster:
    """A running cluster: where it lives, its port, and how to make a new database in it."""

    base: Path
    port: int
    bin: Path

    def __post_init__(self) -> None:
        self._numbers = itertools.count(1)
        self._template: str | None = None

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def new_database(self, *, migrated: bool = True) -> str:
        """A fresh database, already at the playground's schema (copied from a template) unless not ``migrated``."""
        name = f"test_{next(self._numbers)}"
        template = self._migrated_template() if migrated else "template1"
        with psycopg.connect(self.url(), autocommit=True) as db:
            db.execute(f"CREATE DATABASE {name} TEMPLATE {template}")
        return self.url(name)

    def _migrated_template(self) -> str:
        if self._template is None:
            from playground.history.postgres_schema import migrate

            with psycopg.connect(self.url(), autocommit=True) as db:
                db.execute("CREATE DATABASE playground_template")
            with psycopg.connect(self.url("playground_template")) as db:
                migrate(db)
            self._template = "playground_template"
        return self._template

    def stop(self) -> None:
        pg_ctl = [str(self.bin / "pg_ctl"), "-D", str(self.base / "data"), "-m", "immediate", "-w", "stop"]
        subprocess.run(_as_postgres(pg_ctl), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        shutil.rmtree(self.base, ignore_errors=True)


def start_cluster() -> Cluster:
    """initdb in a temporary directory and start postgres on a free loopback port."""
    binaries = pg_bin()
    # /tmp, not $TMPDIR (./test-artifacts under the checkout): the postgres user must be able to reach it, and
    # the checkout's parents may be closed to it (a clone under /root).
    base = Path(tempfile.mkdtemp(prefix="playground-pg-", dir=PG_PARENT if os.path.isdir(PG_PARENT) else None))
    if os.geteuid() == 0:
        shutil.chown(base, "postgres", "postgres")
    initdb = [str(binaries / "initdb"), "-D", str(base / "data"), "-U", "postgres", "-A", "trust", "-E", "UTF8"]
    initdb += ["--locale=C.UTF-8", "--no-sync", "--no-instructions"]
    subprocess.run(_as_postgres(initdb), check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    for _ in range(START_ATTEMPTS):
        port = _free_port()
        options = f"-p {port} -c listen_addresses=127.0.0.1 -k {base} -c fsync=off -c synchronous_commit=off"
        options += " -c full_page_writes=off -c max_connections=200"
        # -l: with the server's output on our pipes, pg_ctl would wait for them to close (never).
        pg_ctl = [str(binaries / "pg_ctl"), "-D", str(base / "data"), "-l", str(base / "server.log"), "-w"]
        started = subprocess.run(_as_postgres([*pg_ctl, "-t", "30", "-o", options, "start"]), capture_output=True)
        if started.returncode == 0:
            return Cluster(base, port, binaries)
    log = (base / "server.log").read_text() if (base / "server.log").exists() else ""
    shutil.rmtree(base, ignore_errors=True)
    raise RuntimeError(f"PostgreSQL did not start:\n{log[-2000:]}")
