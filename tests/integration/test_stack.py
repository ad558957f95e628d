"""The local stack as a user sees it: topics as declared, and `tunix-tune status --json`."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from tests.support.session import TOPICS
from adapters.event_log import partition_ids


@pytest.mark.parametrize("topic", TOPICS.all, ids=lambda t: t.name)
async def test_topics_have_their_declared_partitions_and_configs(stack, service_env, topic):
    """The log and its dead letters keep data forever; the tuners' state topic is compacted."""
    assert len(await partition_ids(stack.kafka, topic.name)) == topic.partitions
    admin = AIOKafkaAdminClient(bootstrap_servers=stack.kafka)
    await admin.start()
    try:
        (response,) = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, topic.name, configs=dict.fromkeys(topic.config))]
        )
    finally:
        await admin.close()
    (resource,) = response.resources
    configs = {entry[0]: entry[1] for entry in resource[4]}
    assert {key: configs[key] for key in topic.config} == topic.config
    expected = {"cleanup.policy": "compact"} if topic == TOPICS.tuner_state else {"retention.ms": "-1"}
    assert expected.items() <= topic.config.items()


def test_status_json_lists_each_component_with_pid_and_health(stack):
    if stack.origin != "local":
        pytest.skip("status describes the locally provisioned services")
    done = subprocess.run([sys.executable, "-m", "app.cli.main", "status", "--json"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    components = {c["name"]: c for c in json.loads(done.stdout)["components"]}
    assert set(components) == {"kafka", "postgres", "api", "projector", "tuner"}
    for name in ("kafka", "postgres"):
        assert components[name]["healthy"] is True and components[name]["pid"] > 0
    assert all(set(c) == {"name", "pid", "healthy", "address"} for c in components.values())
