"""The tuner's Ray: started locally with this machine's CPUs (or joined at RAY_ADDRESS), its
files under the state folder, and no process of it outliving its tuner for long.

A tuner killed with -9 leaves Ray's agents behind. Every Ray process a tuner starts inherits
an owner mark in its environment; the next tuner with the same Ray folder (or this one, at its
end) finds the marked processes in /proc and removes them.
"""

from __future__ import annotations

import hashlib
import os
import signal
from pathlib import Path

from adapters.logs import adopt_library_logger

RAY_OWNER_ENV = "TUNIX_RAY_OWNER"


def start_ray(state_dir: Path, ray_address: str | None) -> None:
    """Local Ray with this machine's CPUs, or the cluster `ray_address` names."""
    import ray

    os.environ.setdefault("TUNE_DISABLE_STRICT_METRIC_CHECKING", "1")  # the metric comes at the end
    owner = str(ray_temp_dir(state_dir))
    os.environ[RAY_OWNER_ENV] = owner  # inherited by every Ray process we start
    kill_orphaned_ray(owner)
    adopt_library_logger("ray")
    if ray_address:
        ray.init(address=ray_address, log_to_driver=False)
    else:
        ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False, _temp_dir=owner)
    adopt_library_logger("ray")  # Ray sets its handlers again when it starts
    import consumers.tuner.runner  # noqa: F401  (Ray Tune, Optuna, training: loaded now, not by the first job)


def stop_ray(state_dir: Path) -> None:
    import ray

    ray.shutdown()
    kill_orphaned_ray(str(ray_temp_dir(state_dir)))


def ray_temp_dir(state_dir: Path) -> Path:
    """Ray's files go under the state folder, unless its path would make Ray's unix socket
    paths longer than the 107 bytes Linux allows: then under /tmp, named after it."""
    state = state_dir.resolve()
    if len(str(state / "ray")) <= 40:
        return state / "ray"
    return Path("/tmp") / f"tunix-ray-{hashlib.sha256(str(state).encode()).hexdigest()[:10]}"


def ray_processes_left(owner: str) -> list[int]:
    """Pids of processes a tuner with this Ray folder started, other than this one."""
    marker = f"{RAY_OWNER_ENV}={owner}".encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if marker in (entry / "environ").read_bytes().split(b"\0"):
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids


def kill_orphaned_ray(owner: str) -> None:
    for pid in ray_processes_left(owner):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
