"""Real Apache Kafka 4 brokers (KRaft, no ZooKeeper) for local dev: one by default, or a
cluster of TUNIX_KAFKA_BROKERS (`tunix-tune services up --kafka-brokers 3`).

Why not Docker/testcontainers: the dev machines have no Docker, but they do
have Java 17 + Maven, so the broker's jars come straight from Maven Central
(see ``kafka-pom.xml``) and run as plain detached JVMs. Every node is a broker
and a KRaft controller; node i listens on TUNIX_KAFKA_PORT + 2(i-1) (clients)
and the port after it (controllers).

Layout under ``state_dir()``::

    kafka/lib/            resolved jars (+ .complete marker)
    kafka/cluster         the cluster id and node count, fixed at the first format
    kafka/server.properties, server-2.properties, ...
    kafka/data/, data-2/, ...   KRaft metadata + topic logs (kept across restarts)
    kafka.pid, kafka-2.pid, ...
    logs/kafka.log, kafka-2.log, ...   broker stdout/stderr (log4j2 -> stdout)
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import socket
import struct
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from . import kafka_sasl, processes
from .paths import logs_dir, settings, state_dir

_MARKER = b"kafka.Kafka"  # in the broker's command line

_HERE = Path(__file__).resolve().parent
_POM = _HERE / "kafka-pom.xml"
_LOG4J = _HERE / "kafka-log4j2.properties"


def bootstrap_servers() -> str:
    return settings().local_kafka


def _home() -> Path:
    return state_dir() / "kafka"


def _lib() -> Path:
    return _home() / "lib"


@dataclass(frozen=True)
class Node:
    """One broker-and-controller process of the local cluster."""

    id: int

    @property
    def port(self) -> int:
        return settings().kafka_port + 2 * (self.id - 1)

    @property
    def controller_port(self) -> int:
        return self.port + 1

    def _named(self, stem: str, suffix: str = "") -> str:
        return f"{stem}{suffix}" if self.id == 1 else f"{stem}-{self.id}{suffix}"  # node 1 keeps the old names

    @property
    def data(self) -> Path:
        return _home() / self._named("data")

    @property
    def config(self) -> Path:
        return _home() / self._named("server", ".properties")

    @property
    def pid_file(self) -> Path:
        return state_dir() / self._named("kafka", ".pid")

    @property
    def log(self) -> Path:
        return logs_dir() / self._named("kafka", ".log")


def nodes() -> list[Node]:
    return [Node(i) for i in range(1, settings().kafka_brokers + 1)]


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


def node_pid(node: Node) -> int | None:
    """Pid of the running node started by this module, else None."""
    try:
        value = int(node.pid_file.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    return value if _alive(value) else None


def pid() -> int | None:
    """Pid of the first running node."""
    return next((p for p in map(node_pid, nodes()) if p is not None), None)


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
        if kafka_sasl.enabled(settings()):
            kafka_sasl.authenticate(sock, settings(), _recv)
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
    """Every node is registered and unfenced (each one's metadata lists them all)."""
    want = settings().kafka_brokers
    try:
        return all(_broker_count(node.port) >= want for node in nodes())
    except (OSError, struct.error):
        return False


def is_running() -> bool:
    return all(node_pid(n) is not None and _port_open(n.port) for n in nodes())


# ---------------------------------------------------------------- start/stop

def _replication(count: int) -> dict[str, str]:
    """Internal topics and defaults: 3 replicas with 2 in sync from 3 nodes up."""
    factor = min(3, count)
    isr = "2" if factor >= 3 else "1"
    return {
        "offsets.topic.replication.factor": str(factor),
        "transaction.state.log.replication.factor": str(factor),
        "transaction.state.log.min.isr": isr,
        "share.coordinator.state.topic.replication.factor": str(factor),
        "share.coordinator.state.topic.min.isr": isr,
        "default.replication.factor": str(factor),
        "min.insync.replicas": isr,
    }


def _write_config(node: Node) -> Path:
    """(Re)write the node's properties each start so port env changes apply."""
    voters = ",".join(f"{n.id}@127.0.0.1:{n.controller_port}" for n in nodes())
    sasl = kafka_sasl.enabled(settings())
    props = {
        "process.roles": "broker,controller",
        "node.id": str(node.id),
        # Static voter set: no endpoint is baked into the formatted metadata
        # log, so changing TUNIX_KAFKA_PORT later doesn't strand the data dir.
        "controller.quorum.voters": voters,
        "listeners": f"PLAINTEXT://127.0.0.1:{node.port},CONTROLLER://127.0.0.1:{node.controller_port}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{node.port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "log.dirs": str(node.data),
        "num.partitions": "3",
        "auto.create.topics.enable": "false",
        **_replication(len(nodes())),
        # Consumers join immediately instead of waiting 3s for more members.
        "group.initial.rebalance.delay.ms": "0",
        # The log cleaner allocates its dedupe buffer (128 MB by default) when the node starts: a
        # node with a small heap (the 3-node test cluster's have 256 MB) once died of it
        # (OutOfMemoryError in SkimpyOffsetMap). The compacted topics here are small.
        "log.cleaner.dedupe.buffer.size": str(32 * 2**20),
        # SASL_PLAINTEXT: every listener asks for a password, ACLs decide (kafka_sasl.py).
        **(kafka_sasl.server_properties(settings(), node.port, node.controller_port) if sasl else {}),
    }
    # Owner-only: with SASL the file holds the users' passwords.
    fd = os.open(node.config, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w") as config:
        config.write("".join(f"{k}={v}\n" for k, v in props.items()))
    return node.config


def _java(main: str, *args: str) -> list[str]:
    return [
        "java", *settings().kafka_heap_opts.split(), "-XX:+UseG1GC", "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={_LOG4J}",
        "-cp", f"{_lib()}/*", main, *args,
    ]


def _cluster_id() -> str:
    """The cluster's id, chosen once with its node count: nodes formatted for one voter set
    must not be started with another."""
    marker = _home() / "cluster"
    count = settings().kafka_brokers
    if marker.is_file():
        cluster_id, formatted = marker.read_text().split()
        if int(formatted) != count:
            raise RuntimeError(
                f"Kafka under {_home()} was set up with {formatted} broker(s), not {count}: run "
                f"`tunix-tune services down` and remove {_home()}/data* (the event log with it) to change that")
        return cluster_id
    legacy = _home() / "data" / "meta.properties"  # a single node formatted before this file existed
    if legacy.is_file() and count != 1:
        raise RuntimeError(
            f"Kafka under {_home()} was set up with 1 broker, not {count}: run `tunix-tune services down` "
            f"and remove {_home()}/data* (the event log with it) to change that")
    if legacy.is_file():
        return next(line.split("=", 1)[1].strip() for line in legacy.read_text().splitlines()
                    if line.startswith("cluster.id="))
    cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    _home().mkdir(parents=True, exist_ok=True)
    marker.write_text(f"{cluster_id} {count}\n")
    return cluster_id


def _format_storage(node: Node, config: Path) -> None:
    """Format the node's KRaft log dir once. Skipped when meta.properties exists:
    re-formatting an existing dir is refused by Kafka, and the data must survive restarts."""
    cluster_id = _cluster_id()
    if (node.data / "meta.properties").exists():
        return
    subprocess.run(
        _java("kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(config)),
        check=True, stdout=subprocess.DEVNULL,
    )


def _log_tail(node: Node, lines: int = 30) -> str:
    try:
        return "\n".join(node.log.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return ""


def _start_node(node: Node) -> int:
    current = node_pid(node)
    if current is not None:
        return current
    if _port_open(node.port):
        raise RuntimeError(f"port {node.port} is taken by a process not started from {state_dir()}")
    config = _write_config(node)
    _format_storage(node, config)
    with open(node.log, "ab") as log:
        proc = subprocess.Popen(
            _java("kafka.Kafka", str(config)),
            cwd=_home(), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,  # survive the CLI exiting / Ctrl-C
        )
    node.pid_file.write_text(f"{proc.pid}\n")
    return proc.pid


def start(timeout: float = 90) -> None:
    """Install if needed, then start every node that is not running and wait until each one
    serves metadata listing them all.

    Idempotent: running nodes (ours, port open) are left alone; ones still booting are just
    waited for; a node that died (kill -9) is started again with its data.
    """
    install()
    started = {node: _start_node(node) for node in nodes()}
    deadline = time.monotonic() + timeout
    while not _ready():
        for node, node_process in started.items():
            if not _alive(node_process):
                node.pid_file.unlink(missing_ok=True)
                raise RuntimeError(f"Kafka node {node.id} exited during startup; see {node.log}:\n{_log_tail(node)}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"Kafka not ready on {bootstrap_servers()} after {timeout}s:\n{_log_tail(nodes()[0])}")
        time.sleep(0.25)


def stop(timeout: float = 30) -> None:
    """SIGTERM (controlled shutdown, flushes logs), SIGKILL after ``timeout``; every node
    with a pid file, whatever the node count is now."""
    for pid_file in sorted(state_dir().glob("kafka*.pid")):
        node_id = 1 if pid_file.stem == "kafka" else int(pid_file.stem.rsplit("-", 1)[1])
        current = node_pid(Node(node_id))
        if current is not None:
            processes.terminate(current, _MARKER, timeout)
        pid_file.unlink(missing_ok=True)
