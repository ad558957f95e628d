"""Who runs what: the live tuner group (from Kafka) joined with the jobs each one owns (from
the read model, by the tuner named in each job's latest JobClaimed)."""

from __future__ import annotations

from aiokafka.errors import KafkaError

from adapters.event_log import Security, group_members
from adapters.publisher import Unavailable
from schemas.api import TunerOut
from service.read.queries import Queries


async def list_tuners(bootstrap_servers: str, group_id: str, queries: Queries,
                      security: Security = None) -> list[TunerOut]:
    try:
        members = await group_members(bootstrap_servers, group_id, security)
    except (KafkaError, OSError) as exc:
        raise Unavailable("kafka", f"{type(exc).__name__}: {exc}") from exc
    owned = await queries.jobs_by_owner()
    return sorted((TunerOut(tuner_id=m["client_id"], host=m["host"], partitions=m["partitions"],
                            jobs=owned.get(m["client_id"], [])) for m in members), key=lambda t: t.tuner_id)
