"""The service processes (api, projector, tuner) run in the background with pid files and logs.

Each component is a Python module run as its own process, so the CLI never imports the
consumers: the process boundary is the architecture's boundary.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from .paths import logs_dir, settings, state_dir


@dataclass(frozen=True)
class Component:
    name: str
    module: str


COMPONENTS = {
    "api": Component("api", "app.main"),
    "projector": Component("projector", "consumers.projector"),
    "tuner": Component("tuner", "consumers.tuner"),
}


def _pid_file(name: str) -> Path:
    folder = state_dir() / "pids"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{name}.pid"


def log_file(name: str) -> Path:
    return logs_dir() / f"{name}.log"


def alive(pid: int, marker: bytes) -> bool:
    """True if `pid` is a live (non-zombie) process whose command line contains `marker`.

    The command line check keeps a recycled pid from passing for ours; a zombie child is
    reaped, since it still answers kill 0.
    """
    try:
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    except ChildProcessError:
        pass
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    # The command line reads empty for a moment while a launcher execs.
    return state != "Z" and (not cmdline or marker in cmdline)


def terminate(pid: int, marker: bytes, timeout: float) -> None:
    """SIGTERM, then SIGKILL if the process is still there after `timeout` seconds."""
    os.kill(pid, signal.SIGTERM)
    for sig, wait_s in ((signal.SIGKILL, timeout), (None, 10)):
        deadline = time.monotonic() + wait_s
        while alive(pid, marker) and time.monotonic() < deadline:
            time.sleep(0.1)
        if sig is None or not alive(pid, marker):
            return
        os.kill(pid, sig)


def pid(name: str) -> int | None:
    try:
        value = int(_pid_file(name).read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    return value if alive(value, COMPONENTS[name].module.encode()) else None


def start(name: str) -> int:
    """Start a component in the background unless it already runs; return its pid."""
    running = pid(name)
    if running:
        return running
    with open(log_file(name), "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", COMPONENTS[name].module],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env={**os.environ, "TUNIX_LOG_FORMAT": "json"},
        )
    _pid_file(name).write_text(str(proc.pid))
    return proc.pid


def stop(name: str, timeout: float = 20) -> None:
    running = pid(name)
    if running:
        terminate(running, COMPONENTS[name].module.encode(), timeout)
    _pid_file(name).unlink(missing_ok=True)


def api_url() -> str:
    return settings().api_url


def probe_url(name: str) -> str:
    """Where a process answers /healthz, /readyz and /metrics."""
    if name == "api":
        return api_url()
    port = settings().projector_probe_port if name == "projector" else settings().tuner_probe_port
    return f"http://{settings().probe_host}:{port}"


def healthy(name: str) -> bool:
    try:
        with urllib.request.urlopen(f"{probe_url(name)}/healthz", timeout=2) as resp:
            return resp.status == 200
    except OSError:
        return False


def api_healthy() -> bool:
    return healthy("api")


def wait_for_api(timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not api_healthy():
        if not pid("api"):
            raise RuntimeError(f"the api exited; see {log_file('api')}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"the api did not answer in {timeout}s; see {log_file('api')}")
        time.sleep(0.2)
