"""A real single-node Apache Kafka 4 broker (KRaft, no ZooKeeper) for local dev.

Why not Docker/testcontainers: the dev machines have no Docker, but they do
have Java 17 + Maven, so the broker's jars come straight from Maven Central
(see ``kafka-pom.xml``) and run as a plain detached JVM.

Layout under ``state_dir()``::

    kafka/lib/            resolved jars (+ .complete marker)
    kafka/server.properties
    kafka/data/           KRaft metadata + topic logs (kept across restarts)
    kafka.pid
    logs/kafka.log        broker stdout/stderr (log4j2 -> stdout)
"""

from __future__ import annotations

import base64
import hashlib
import shutil
import socket
import struct
import subprocess
import time
import uuid
from pathlib import Path

from . import processes
from .paths import logs_dir, settings, state_dir

_MARKER = b"kafka.Kafka"  # in the broker's command line

_HERE = Path(__file__).resolve().parent
_POM = _HERE / "kafka-pom.xml"
_LOG4J = _HERE / "kafka-log4j2.properties"


def _port() -> int:
    return settings().kafka_port


def bootstrap_servers() -> str:
    return settings().local_kafka


def _home() -> Path:
    return state_dir() / "kafka"


def _lib() -> Path:
    return _home() / "lib"


def _data() -> Path:
    return _home() / "data"


def _pid_file() -> Path:
    return state_dir() / "kafka.pid"


# --------------------------------------------------------------------- install

def install() -> None:
    """Resolve the broker jars into ``kafka/lib`` unless already done.

    The marker holds a hash of the pom, so bumping the Kafka version in the pom
    re-resolves. Jars land in a temp folder first and are swapped in whole, so
    an interrupted download never leaves a half-filled lib that looks complete.
    """
    want = hashlib.sha256(_POM.read_bytes()).hexdigest()
    marker = _lib() / ".complete"
    if marker.is_file() and marker.read_text().strip() == want:
        return
    if shutil.which("mvn") is None or shutil.which("java") is None:
        raise RuntimeError("Kafka needs Java 17+ and Maven on PATH (apt-get install openjdk-17-jre-headless maven)")
    tmp = _home() / "lib.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    # -q still prints ANSI resets on stdout; keep it quiet unless mvn fails.
    mvn = subprocess.run(
        ["mvn", "-q", "-B", "-f", str(_POM), "dependency:copy-dependencies", f"-DoutputDirectory={tmp}"],
        capture_output=True, text=True,
    )
    if mvn.returncode != 0:
        raise RuntimeError(f"resolving Kafka jars with Maven failed:\n{mvn.stdout[-4000:]}{mvn.stderr[-4000:]}")
    (tmp / ".complete").write_text(want + "\n")
    shutil.rmtree(_lib(), ignore_errors=True)
    tmp.rename(_lib())


# ----------------------------------------------------------------- processes

def _alive(pid: int) -> bool:
    return processes.alive(pid, _MARKER)


def pid() -> int | None:
    """Pid of the running broker started by this module, else None."""
    try:
        value = int(_pid_file().read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    return value if _alive(value) else None


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def _broker_count(port: int) -> int:
    """Send a real Metadata request (v4, no topics) and count live brokers.

    A KRaft broker only lists itself once it is registered and unfenced, i.e.
    it can actually serve produce/fetch, which a bare TCP connect doesn't prove.
    Hand-rolled wire format so this works without any Kafka client installed.
    """
    client_id = b"tunix-stack"
    body = struct.pack(">hhih", 3, 4, 7, len(client_id)) + client_id  # header v1
    body += struct.pack(">i?", 0, False)  # topics=[] , allow_auto_topic_creation
    with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
        sock.settimeout(2)
        sock.sendall(struct.pack(">i", len(body)) + body)
        size = struct.unpack(">i", _recv(sock, 4))[0]
        resp = _recv(sock, size)
    correlation_id, _throttle, brokers = struct.unpack(">iii", resp[:12])
    return brokers if correlation_id == 7 else 0


def _recv(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("broker closed the connection")
        buf += chunk
    return buf


def _ready() -> bool:
    try:
        return _broker_count(_port()) > 0
    except (OSError, struct.error):
        return False


def is_running() -> bool:
    return pid() is not None and _port_open(_port())


# ---------------------------------------------------------------- start/stop

def _write_config() -> Path:
    """(Re)write server.properties each start so port env changes apply."""
    props = {
        "process.roles": "broker,controller",
        "node.id": "1",
        # Static voter set: no endpoint is baked into the formatted metadata
        # log, so changing TUNIX_KAFKA_PORT later doesn't strand the data dir.
        "controller.quorum.voters": f"1@127.0.0.1:{_port() + 1}",
        "listeners": f"PLAINTEXT://127.0.0.1:{_port()},CONTROLLER://127.0.0.1:{_port() + 1}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{_port()}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "log.dirs": str(_data()),
        "num.partitions": "3",
        "auto.create.topics.enable": "false",
        # Single node: internal topics must not ask for 3 replicas.
        "offsets.topic.replication.factor": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        # Consumers join immediately instead of waiting 3s for more members.
        "group.initial.rebalance.delay.ms": "0",
    }
    path = _home() / "server.properties"
    path.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
    return path


def _java(main: str, *args: str) -> list[str]:
    return [
        "java", *settings().kafka_heap_opts.split(), "-XX:+UseG1GC", "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={_LOG4J}",
        "-cp", f"{_lib()}/*", main, *args,
    ]


def _format_storage(config: Path) -> None:
    """Format the KRaft log dir once (fresh cluster id). Skipped when
    meta.properties exists: re-formatting an existing dir is refused by Kafka,
    and the data must survive restarts anyway."""
    if (_data() / "meta.properties").exists():
        return
    cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    subprocess.run(
        _java("kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(config)),
        check=True, stdout=subprocess.DEVNULL,
    )


def _log_tail(lines: int = 30) -> str:
    try:
        return "\n".join((logs_dir() / "kafka.log").read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return ""


def start(timeout: float = 90) -> None:
    """Install if needed, then start the broker and wait until it serves metadata.

    Idempotent: a running broker (ours, port open) is left alone; one still
    booting is just waited for.
    """
    current = pid()
    if current is None:
        if _port_open(_port()):
            raise RuntimeError(f"port {_port()} is taken by a process not started from {state_dir()}")
        install()
        config = _write_config()
        _format_storage(config)
        with open(logs_dir() / "kafka.log", "ab") as log:
            proc = subprocess.Popen(
                _java("kafka.Kafka", str(config)),
                cwd=_home(), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,  # survive the CLI exiting / Ctrl-C
            )
        _pid_file().write_text(f"{proc.pid}\n")
        current = proc.pid

    deadline = time.monotonic() + timeout
    while not _ready():
        if not _alive(current):
            _pid_file().unlink(missing_ok=True)
            raise RuntimeError(f"Kafka exited during startup; see {logs_dir() / 'kafka.log'}:\n{_log_tail()}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"Kafka not ready on {bootstrap_servers()} after {timeout}s:\n{_log_tail()}")
        time.sleep(0.25)


def stop(timeout: float = 30) -> None:
    """SIGTERM (controlled shutdown, flushes logs), SIGKILL after ``timeout``."""
    current = pid()
    if current is not None:
        processes.terminate(current, _MARKER, timeout)
    _pid_file().unlink(missing_ok=True)
