"""Kafka with SASL/PLAIN and ACLs on a real broker: the local Kafka started with
TUNIX_KAFKA_SECURITY_PROTOCOL=SASL_PLAINTEXT (one JVM on ports of its own, in a temp folder),
the principals and ACLs of docs/operations.md ("Security model"), every client built from
Settings.from_env as the processes build theirs.

- the gateway principal publishes; the real projector process, as its principal, projects the
  event and dead-letters a bad record; the tuner principal saves and loads its state and
  joins its group, which the gateway principal lists;
- a read-only principal reads the log but cannot write to it, and the projector principal
  cannot write events (only dead letters);
- a wrong password is refused by authentication, and no password reaches a log or an error.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import subprocess
import sys
import uuid

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from confluent_kafka.admin import AclBinding, AclBindingFilter, AclOperation, AclPermissionType, AdminClient
from confluent_kafka.admin import ResourcePatternType, ResourceType
from sqlalchemy import text

from adapters.database import create_database, drop_database, make_engine
from adapters.event_log import end_offsets, ensure_topics, group_members, read_to_end
from adapters.kafka_security import client_options
from adapters.logs import RedactSecrets
from adapters.publisher import EventPublisher, Unavailable
from adapters.settings import Settings
from provisioning.paths import state_dir
from consumers.tuner.snapshots import Snapshots
from consumers.tuner.state import TunerJob
from schemas import events as ev
from schemas.job_spec import JobSpec
from schemas.topics import DLQ_REASON_HEADER, Topics
from tests.conftest import REPO, Process
from tests.support.specs import example_spec
from tests.support.waiting import eventually, wait_until

RUN = uuid.uuid4().hex[:8]
TOPICS = Topics(f"sasl-{RUN}.tuning")
PASSWORDS = {user: secrets.token_urlsafe(16) for user in ("admin", "gateway", "projector", "tuner", "auditor")}
PROJECTOR_GROUP, TUNER_GROUP = f"sasl-{RUN}-projector", f"sasl-{RUN}-tuner"


def _free_pair() -> int:
    """A client port with a free controller port after it."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        try:
            with socket.socket() as s:
                s.bind(("127.0.0.1", port + 1))
            return port
        except OSError:
            continue
    raise RuntimeError("no two free ports in a row")


def _cli(env: dict, *args: str) -> None:
    done = subprocess.run([sys.executable, "-m", "app.cli.main", *args], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr


def _env(bootstrap: str, user: str, password: str | None = None) -> dict[str, str]:
    return {"KAFKA_BOOTSTRAP_SERVERS": bootstrap, "TUNIX_TOPIC_PREFIX": TOPICS.prefix,
            "TUNIX_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "TUNIX_KAFKA_SASL_MECHANISM": "PLAIN",
            "TUNIX_KAFKA_SASL_USERNAME": user, "TUNIX_KAFKA_SASL_PASSWORD": password or PASSWORDS[user]}


def _as(bootstrap: str, user: str, password: str | None = None) -> Settings:
    """A process's settings for this principal, read the way every entry point reads them."""
    return Settings.from_env(_env(bootstrap, user, password))


def _acl(user: str, kind: ResourceType, name: str, operation: AclOperation,
         pattern: ResourcePatternType = ResourcePatternType.LITERAL) -> AclBinding:
    return AclBinding(kind, name, pattern, f"User:{user}", "*", operation, AclPermissionType.ALLOW)


def _recommended_acls() -> list[AclBinding]:
    """docs/operations.md's table: the service principals may see the deployment's topics (the
    publisher checks they exist); each writes and reads only what its role needs."""
    topic, group, op = ResourceType.TOPIC, ResourceType.GROUP, AclOperation
    describe = [_acl(u, topic, f"{TOPICS.prefix}.", op.DESCRIBE, ResourcePatternType.PREFIXED)
                for u in ("gateway", "projector", "tuner")]
    return describe + [
        _acl("gateway", topic, TOPICS.events.name, op.WRITE),
        _acl("gateway", group, TUNER_GROUP, op.DESCRIBE),  # GET /api/tuners lists the tuner group
        _acl("projector", topic, TOPICS.events.name, op.READ),
        _acl("projector", group, PROJECTOR_GROUP, op.READ),
        _acl("projector", topic, TOPICS.dead_letter.name, op.WRITE),
        _acl("tuner", topic, TOPICS.events.name, op.READ), _acl("tuner", topic, TOPICS.events.name, op.WRITE),
        _acl("tuner", topic, TOPICS.tuner_state.name, op.READ),
        _acl("tuner", topic, TOPICS.tuner_state.name, op.WRITE),
        _acl("tuner", group, TUNER_GROUP, op.READ),
        _acl("auditor", topic, TOPICS.events.name, op.READ),
    ]


def _grant(bootstrap: str, acls: list[AclBinding]) -> None:
    """Create the ACLs as the super user (aiokafka has no ACL API; librdkafka has) and wait
    until the broker enforces them."""
    admin = AdminClient({"bootstrap.servers": bootstrap, "security.protocol": "SASL_PLAINTEXT",
                         "sasl.mechanism": "PLAIN", "sasl.username": "admin", "sasl.password": PASSWORDS["admin"]})
    for created in admin.create_acls(acls).values():
        created.result(timeout=30)
    everything = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, None, None,
                                  AclOperation.ANY, AclPermissionType.ANY)
    # The broker answers DescribeAcls from the authorizer that enforces them.
    wait_until(lambda: len(admin.describe_acls(everything).result(timeout=30)) == len(acls), 30,
               "the ACLs in force on the broker")


@pytest.fixture(scope="module")
async def sasl_kafka(stack, tmp_path_factory):
    """A SASL_PLAINTEXT broker with the recommended ACLs; `admin` is its super user."""
    others = ",".join(f"{u}:{p}" for u, p in PASSWORDS.items() if u != "admin")
    state = tmp_path_factory.mktemp("sasl-kafka")
    jars = state_dir() / "kafka" / "lib"
    if (jars / ".complete").is_file():  # the local stack's jars: no Maven run for this broker
        (state / "kafka").mkdir()
        (state / "kafka" / "lib").symlink_to(jars)
    env = {**os.environ, "TUNIX_STATE_DIR": str(state),
           "TUNIX_KAFKA_PORT": str(_free_pair()), "TUNIX_KAFKA_BROKERS": "1",
           "TUNIX_KAFKA_HEAP_OPTS": "-Xmx256m -Xms128m", "TUNIX_KAFKA_LOCAL_USERS": others,
           "DATABASE_URL": stack.database_url}  # an external database: `services up` starts only Kafka
    env.pop("KAFKA_BOOTSTRAP_SERVERS", None)
    env.update({k: v for k, v in _env("", "admin").items() if k.startswith("TUNIX_KAFKA_")})
    _cli(env, "services", "up")
    bootstrap = f"127.0.0.1:{env['TUNIX_KAFKA_PORT']}"
    try:
        admin_options = client_options(_as(bootstrap, "admin"))
        await ensure_topics(bootstrap, TOPICS.all, admin_options)
        _grant(bootstrap, _recommended_acls())
        yield {"bootstrap": bootstrap, "admin": admin_options, "log": env["TUNIX_STATE_DIR"] + "/logs/kafka.log"}
    finally:
        _cli(env, "services", "down")


def _created(name: str) -> ev.JobCreated:
    return ev.JobCreated(job_id=uuid.uuid4(), source="test-sasl",
                         payload=ev.JobCreatedPayload(spec=JobSpec.model_validate(example_spec(name=name))))


async def _publish_as(bootstrap: str, user: str, event: ev.Event, password: str | None = None) -> None:
    publisher = EventPublisher(bootstrap, TOPICS, 15, client_options(_as(bootstrap, user, password)))
    try:
        await publisher.publish(event)
    finally:
        await publisher.close()


def _ready(process: Process) -> bool:
    assert process.proc.poll() is None, process.output()
    try:
        return httpx.get(f"{process.probe_url}/readyz", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


async def test_each_service_principal_does_its_part(sasl_kafka, stack, tmp_path):
    bootstrap = sasl_kafka["bootstrap"]
    database = await create_database(stack.database_url, f"sasl_{RUN}")
    projector = Process("consumers.projector", {**os.environ, **_env(bootstrap, "projector"), "DATABASE_URL": database,
                                                "TUNIX_PROJECTOR_GROUP": PROJECTOR_GROUP, "TUNIX_LOG_FORMAT": "json"},
                        tmp_path)
    engine = make_engine(database)
    try:
        # Ready: it joined its group (READ on the group and the topic) and migrated the read model.
        wait_until(lambda: _ready(projector), 90, f"the projector ready as `projector`:\n{projector.output()}")
        created = _created("over sasl")
        await _publish_as(bootstrap, "gateway", created)
        # A record no consumer can read, written by an allowed writer: the projector's DLQ write.
        garbage = AIOKafkaProducer(bootstrap_servers=bootstrap, **client_options(_as(bootstrap, "gateway")))
        await garbage.start()
        try:
            await garbage.send_and_wait(TOPICS.events.name, key=b"not-a-job", value=b"{not json")
        finally:
            await garbage.stop()

        async def projected():
            async with engine.connect() as conn:
                return await conn.scalar(text("select status from tunix_tuning_jobs where job_id = :id"),
                                         {"id": created.job_id})
        assert await eventually(projected, 90, f"the projector (as `projector`) projecting the job:\n"
                                               f"{projector.output()}") == "created"

        async def dead_letters():
            return [r async for batch in read_to_end(bootstrap, TOPICS.dead_letter.name, security=sasl_kafka["admin"])
                    for r in batch]
        (letter,) = await eventually(dead_letters, 30, "the bad record dead-lettered by the projector")
        assert letter.key == b"not-a-job" and dict(letter.headers)[DLQ_REASON_HEADER]

        # The tuner principal keeps its compact state on the tuner-state topic, joins its group,
        # and the gateway principal sees it there (GET /api/tuners).
        tuner = client_options(_as(bootstrap, "tuner"))
        snapshots = Snapshots(bootstrap, TOPICS.tuner_state.name, tuner)
        member = AIOKafkaConsumer(TOPICS.events.name, bootstrap_servers=bootstrap, group_id=TUNER_GROUP,
                                  client_id="tuner-1", **tuner)
        await snapshots.start()
        await member.start()
        try:
            state = TunerJob(job_id=created.job_id, spec=created.payload.spec)
            await snapshots.save({created.job_id: (2, state)}, partitions={2})  # with its FORMAT record
            assert (await snapshots.load({2}))[2] == {created.job_id: state}

            async def tuners():
                await member.getmany(timeout_ms=100)
                members = await group_members(bootstrap, TUNER_GROUP, client_options(_as(bootstrap, "gateway")))
                return [m["client_id"] for m in members if m["partitions"]]
            assert await eventually(tuners, 60, "the tuner in its group, as the gateway sees it") == ["tuner-1"]
        finally:
            await member.stop()
            await snapshots.close()
    finally:
        projector.stop()
        await engine.dispose()
        await drop_database(stack.database_url, f"sasl_{RUN}")
    assert not [p for p in PASSWORDS.values() if p in projector.log_path.read_text()], "a password in the log"


async def test_readers_cannot_write_events(sasl_kafka):
    bootstrap = sasl_kafka["bootstrap"]
    event = _created("read by the auditor")
    await _publish_as(bootstrap, "gateway", event)
    auditor = client_options(_as(bootstrap, "auditor"))
    seen = [r.key async for batch in read_to_end(bootstrap, TOPICS.events.name, security=auditor) for r in batch]
    assert event.key() in seen
    before = await end_offsets(bootstrap, TOPICS.events.name, sasl_kafka["admin"])

    # No WRITE on any topic: the idempotent producer is refused its producer id.
    with pytest.raises(Unavailable, match="ClusterAuthorizationFailed"):
        await _publish_as(bootstrap, "auditor", _created("forged by the auditor"))
    # WRITE on the dead-letter topic only: events are refused per topic.
    with pytest.raises(Unavailable, match="TopicAuthorizationFailed"):
        await _publish_as(bootstrap, "projector", _created("forged by the projector"))
    assert await end_offsets(bootstrap, TOPICS.events.name, sasl_kafka["admin"]) == before


async def test_a_wrong_password_is_refused_and_never_shown(sasl_kafka, caplog):
    bootstrap = sasl_kafka["bootstrap"]
    wrong = secrets.token_urlsafe(16)
    # aiokafka's DEBUG log prints the SASL request; the services' log handler redacts it.
    caplog.set_level(logging.DEBUG, logger="aiokafka")
    caplog.handler.addFilter(RedactSecrets())
    with pytest.raises(Unavailable) as refused:
        await _publish_as(bootstrap, "gateway", _created("wrong password"), password=wrong)
    # aiokafka says why in its log; the publisher's error is the connection it could not make.
    assert any("SaslAuthenticationFailed" in r.getMessage() for r in caplog.records), caplog.text
    assert "sasl_auth_bytes=<redacted>" in caplog.text
    shown = str(refused.value) + caplog.text + open(sasl_kafka["log"]).read()
    assert wrong not in shown and not [p for p in PASSWORDS.values() if p in shown]
    # The broker logged the failed authentication (an operator's trail), without the password.
    assert "Failed authentication" in open(sasl_kafka["log"]).read()
