"""A real local PostgreSQL (Debian packages) for dev, with its own cluster.

Why not the distro's ``postgresql`` service: no systemd here, and a private
cluster under ``state_dir()`` on a non-default port never collides with, or
depends on, a system-wide one.

PostgreSQL refuses to run as root, so when we are root every server-side
command goes through ``runuser -u postgres --`` and the cluster folder is
owned by the ``postgres`` OS user. As a normal user the commands run as-is.

Layout under ``state_dir()``::

    postgres/data/        the cluster (initdb once, kept across restarts)
    postgres/run/         unix socket dir (never /var/run/postgresql)
    logs/postgres.log     server log (pg_ctl -l)
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import stat
import subprocess
import time
from pathlib import Path

from .paths import logs_dir, settings, state_dir

USER = PASSWORD = DATABASE = "tunix"
_OS_USER = "postgres"


def _port() -> int:
    return settings().pg_port


def database_url() -> str:
    return settings().local_database_url


def _home() -> Path:
    return state_dir() / "postgres"


def _data() -> Path:
    return _home() / "data"


def _sock() -> Path:
    return _home() / "run"


def _log() -> Path:
    return logs_dir() / "postgres.log"


def _root() -> bool:
    return os.geteuid() == 0


def _bin_dir() -> Path | None:
    """bin/ of the newest installed server version (e.g. /usr/lib/postgresql/15/bin)."""
    found = glob.glob("/usr/lib/postgresql/*/bin/postgres")
    if not found:
        return None
    return max((Path(p).parent for p in found), key=lambda p: int(p.parent.name.split(".")[0]))


def _bin(name: str) -> str:
    bin_dir = _bin_dir()
    if bin_dir is None:
        raise RuntimeError("PostgreSQL is not installed; call install()")
    return str(bin_dir / name)


def _run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    """Run a server-side tool as the postgres OS user when we are root."""
    if _root():
        cmd = ["runuser", "-u", _OS_USER, "--", *cmd]
    return subprocess.run(cmd, check=True, **kwargs)


# --------------------------------------------------------------------- install

def install() -> None:
    """apt-get install postgresql unless some server version is already there."""
    if _bin_dir() is not None:
        return
    if not _root():
        raise RuntimeError("PostgreSQL is missing; run as root or: sudo apt-get install -y postgresql")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", "postgresql"], check=True, env=env)


def _prepare_dirs() -> None:
    """Make the cluster folders usable by the postgres OS user.

    The postgres user must be able to traverse every ancestor of the state dir
    (e.g. a 700 /root would block it), so a missing o+x bit is added there;
    nothing is made readable, only traversable.
    """
    _sock().mkdir(parents=True, exist_ok=True)
    _log().touch()
    if not _root():
        return
    for d in reversed(_home().parents):
        mode = d.stat().st_mode
        if not mode & stat.S_IXOTH:
            d.chmod(mode | stat.S_IXOTH)
    for p in (_home(), _sock(), _log()):
        shutil.chown(p, _OS_USER, _OS_USER)
    if _data().exists():
        shutil.chown(_data(), _OS_USER, _OS_USER)


def _initdb() -> None:
    """Create the cluster once: trust on the unix socket (admin tasks here),
    scram passwords on TCP (what the app's DATABASE_URL uses)."""
    if (_data() / "PG_VERSION").exists():
        return
    _run([_bin("initdb"), "-D", str(_data()), "-U", "postgres", "-E", "UTF8", "--no-locale",
          "--auth-local=trust", "--auth-host=scram-sha-256"], stdout=subprocess.DEVNULL)
    with open(_data() / "postgresql.conf", "a") as conf:
        conf.write("\ninclude_if_exists = 'tunix.conf'\n")


def _write_conf() -> None:
    """Per-start settings (so a changed TUNIX_PG_PORT applies); quoting-safe,
    unlike passing a socket path through ``pg_ctl -o``."""
    conf = _data() / "tunix.conf"
    conf.write_text(
        "listen_addresses = '127.0.0.1'\n"
        f"port = {_port()}\n"
        f"unix_socket_directories = '{_sock()}'\n"
    )
    if _root():
        shutil.chown(conf, _OS_USER, _OS_USER)


# ----------------------------------------------------------------- processes

def pid() -> int | None:
    """Postmaster pid from postmaster.pid if that process is alive."""
    try:
        value = int((_data() / "postmaster.pid").read_text().split("\n", 1)[0])
        os.kill(value, 0)
    except (FileNotFoundError, ValueError, ProcessLookupError, PermissionError):
        return None
    return value


def _port_open() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", _port()), timeout=1):
            return True
    except OSError:
        return False


def is_running() -> bool:
    return pid() is not None and _port_open()


def _psql(sql: str) -> None:
    _run([_bin("psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", str(_sock()), "-p", str(_port()),
          "-U", "postgres", "-d", "postgres"], input=sql, text=True, stdout=subprocess.DEVNULL)


def _ensure_role_and_db() -> None:
    """Create role + database if missing; re-assert the password every start so
    the DATABASE_URL credentials are always valid."""
    _psql(
        f"SELECT 'CREATE ROLE {USER}' WHERE NOT EXISTS "
        f"(SELECT FROM pg_roles WHERE rolname = '{USER}')\\gexec\n"
        f"ALTER ROLE {USER} WITH LOGIN CREATEDB PASSWORD '{PASSWORD}';\n"
        f"SELECT 'CREATE DATABASE {DATABASE} OWNER {USER}' WHERE NOT EXISTS "
        f"(SELECT FROM pg_database WHERE datname = '{DATABASE}')\\gexec\n"
    )


def _log_tail(lines: int = 30) -> str:
    return "\n".join(_log().read_text(errors="replace").splitlines()[-lines:])


def start(timeout: float = 60) -> None:
    """Install, initdb once, start the server, wait until it accepts TCP
    connections, then ensure role/database. Idempotent."""
    if not is_running():
        install()
        _prepare_dirs()
        _initdb()
        _write_conf()
        try:
            # pg_ctl -w blocks until the postmaster reports ready (or -t passes);
            # the postmaster is detached into its own session by pg_ctl.
            _run([_bin("pg_ctl"), "-D", str(_data()), "-l", str(_log()), "-w", "-t", str(int(timeout)),
                  "start"], stdout=subprocess.DEVNULL, start_new_session=True)
        except subprocess.CalledProcessError as exc:
            raise RuntimeError(f"PostgreSQL failed to start; see {_log()}:\n{_log_tail()}") from exc

    deadline = time.monotonic() + timeout
    while subprocess.run([_bin("pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(_port())]).returncode != 0:
        if time.monotonic() > deadline:
            raise TimeoutError(f"PostgreSQL not ready on 127.0.0.1:{_port()} after {timeout}s:\n{_log_tail()}")
        time.sleep(0.25)
    _ensure_role_and_db()


def stop(timeout: float = 30) -> None:
    """Fast shutdown (disconnect clients, checkpoint); immediate as a fallback."""
    if pid() is None:
        return
    ctl = [_bin("pg_ctl"), "-D", str(_data()), "-w", "-t", str(int(timeout)), "stop"]
    try:
        _run([*ctl, "-m", "fast"], stdout=subprocess.DEVNULL)
    except subprocess.CalledProcessError:
        _run([*ctl, "-m", "immediate"], stdout=subprocess.DEVNULL)
