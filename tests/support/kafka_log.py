"""Reading the event log directly, as an auditor would."""

from __future__ import annotations

from adapters.event_log import read_to_end


async def read_all(bootstrap: str, topic: str) -> list:
    return [r async for batch in read_to_end(bootstrap, topic) for r in batch]
