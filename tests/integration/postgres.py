"""A throwaway PostgreSQL server for tests: the distribution's binaries, a temporary data folder, a free port.

`find_bin_dir()` looks for initdb/pg_ctl under /usr/lib/postgresql/*/bin (Debian's layout) or on PATH and, as root
with apt, installs the `postgresql` package when they are missing (as `make postgres` does). `PostgresServer` runs
initdb (as the `postgres` user when the test runs as root: initdb refuses root), starts the server on 127.0.0.1 with
trust authentication and stops it (fast shutdown) and removes the folder on exit.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from serving.serve import free_port


def find_bin_dir(install: bool = True) -> tuple[Path | None, str]:
    """(folder holding initdb and pg_ctl, what happened), installing the package when allowed and needed."""
    for _ in range(2):
        dirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda d: int(Path(d).parent.name), reverse=True)
        for d in dirs:
            if (Path(d) / "initdb").exists() and (Path(d) / "pg_ctl").exists():
                return Path(d), f"found in {d}"
        on_path = shutil.which("initdb")
        if on_path and shutil.which("pg_ctl"):
            return Path(on_path).parent, f"found on PATH in {Path(on_path).parent}"
        if not install:
            break
        install = False
        if os.geteuid() != 0 or not shutil.which("apt-get"):
            return None, "PostgreSQL is not installed and cannot be (needs root and apt-get): run `make postgres`"
        t0 = time.perf_counter()
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        cmd = "apt-get update -qq && apt-get install -y -qq --no-install-recommends postgresql"
        done = subprocess.run(["sh", "-c", cmd], env=env, capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            return None, f"apt-get install postgresql failed: {done.stderr.strip()[-300:]}"
        print(f"installed postgresql in {time.perf_counter() - t0:.0f} s")
    return None, "PostgreSQL binaries (initdb, pg_ctl) not found"


class PostgresServer:
    """`with PostgresServer(bin_dir) as pg:` -> pg.url("db") after pg.create_database("db")."""

    user = "postgres"

    def __init__(self, bin_dir: Path) -> None:
        self.bin_dir = bin_dir
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="tailor-pg-"))  # under /tmp: reachable by the postgres user
        self.data = self.root / "data"
        self.sock = self.root / "sock"
        self.log = self.root / "server.log"
        self.started = False

    def _run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        cmd = [str(self.bin_dir / args[0]), *args[1:]]
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        if out.returncode != 0:
            raise RuntimeError(f"{' '.join(args[:1])} failed ({out.returncode}): {out.stderr.strip()[-1000:]}")
        return out

    def __enter__(self) -> PostgresServer:
        self.sock.mkdir()
        self.root.chmod(0o755)
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
            shutil.chown(self.sock, "postgres", "postgres")
        try:
            self._run("initdb", "-D", str(self.data), "-U", self.user, "--auth=trust", "-E", "UTF8", "--no-sync")
            opts = f"-p {self.port} -k {self.sock} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=100"
            self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", opts, "-w", "-t", "60", "start")
            self.started = True
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        if self.started:
            with contextlib.suppress(RuntimeError, subprocess.SubprocessError):
                self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop", timeout=60)
            self.started = False
        shutil.rmtree(self.root, ignore_errors=True)

    def url(self, db: str = "postgres") -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{db}"

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)
