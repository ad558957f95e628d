"""Configuration read once from an environment mapping; the usual PostgreSQL URL forms; one log
format for our lines and the libraries'."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import structlog

from adapters.database import asyncpg_url
from adapters.logs import configure_logging
from adapters.settings import Settings


def test_settings_come_from_the_mapping_given_with_types():
    settings = Settings.from_env({"TUNIX_API_PORT": "9000", "TUNIX_CREATE_WAIT_S": "0.5",
                                  "TUNIX_TOPIC_PREFIX": "x.y", "TUNIX_DATASETS_DIR": "/data",
                                  "DATABASE_URL": "postgres://u:p@db:5432/d", "HF_HOME": "/hf"})
    assert settings.api_port == 9000 and settings.create_wait_s == 0.5
    assert settings.topics.events.name == "x.y.events" and settings.topics.dead_letter.name == "x.y.events.dlq"
    assert settings.training_folders.datasets == Path("/data")
    assert settings.training_folders.hf_cache == Path("/hf/hub")
    assert Settings.from_env({"HF_HUB_CACHE": "/c", "HF_HOME": "/hf"}).training_folders.hf_cache == Path("/c")
    assert settings.database_url == "postgresql+asyncpg://u:p@db:5432/d"
    assert Settings.from_env({}).kafka_bootstrap_servers == "127.0.0.1:19092"


@pytest.mark.parametrize("url", ["postgresql://u:p@h:5/d", "postgres://u:p@h:5/d", "postgresql+asyncpg://u:p@h:5/d",
                                 "postgresql+psycopg://u:p@h:5/d", "postgresql+psycopg2://u:p@h:5/d"])
def test_the_usual_postgresql_url_forms_are_accepted(url):
    assert asyncpg_url(url) == "postgresql+asyncpg://u:p@h:5/d"


def test_a_url_that_is_not_postgresql_is_refused_by_name():
    with pytest.raises(ValueError, match="not a PostgreSQL URL: mysql://"):
        asyncpg_url("mysql://u:p@h/d")


def test_library_log_records_are_json_lines_like_ours(capsys):
    configure_logging("json", "INFO")
    try:
        structlog.get_logger("ours").warning("our line", job_id="j1")
        logging.getLogger("aiokafka.consumer.group_coordinator").error("Heartbeat failed for group %s", "g")
        lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.strip()]
    finally:
        structlog.reset_defaults()
        logging.getLogger().handlers.clear()
    assert lines[0]["event"] == "our line" and lines[0]["job_id"] == "j1"
    assert lines[1]["event"] == "Heartbeat failed for group g"
    assert lines[1]["level"] == "error" and lines[1]["logger"] == "aiokafka.consumer.group_coordinator"
    assert "timestamp" in lines[1]


def test_named_tokens_are_parsed_and_a_bad_entry_is_named_without_its_token():
    from app.auth import Principal, parse_tokens

    found = parse_tokens("alice:write:tok-alice-1, rob:read:tok-rob-22", single="legacy-token")
    assert found == {"tok-alice-1": Principal("alice", True), "tok-rob-22": Principal("rob", False),
                     "legacy-token": Principal("api-token", True)}
    assert parse_tokens(None) == {}
    for bad in ("alice:admin:tok-alice-1", "alice:write:short", "no rights", "a b:read:tok-abcdefgh",
                "alice:write:tok-alice-1,bob:read:tok-alice-1"):
        with pytest.raises(ValueError) as refused:
            parse_tokens(bad)
        assert "TUNIX_API_TOKENS entry" in str(refused.value) and "tok-" not in str(refused.value)
