"""The one `main` of every consumer process (projector, tuner): settings read once, logging,
the probe server on its port, SIGTERM/SIGINT to a clean stop."""

from __future__ import annotations

import asyncio
import signal
import socket
from collections.abc import Callable
from typing import Protocol

from adapters.kafka_security import client_options
from adapters.logs import configure_logging
from adapters.probes import Checks, bind, serve_probes
from adapters.settings import Settings


class Consumer(Protocol):
    checks: Checks

    async def run(self) -> None: ...

    def stop(self) -> None: ...


async def run_consumer(consumer: Consumer, probe_socket: socket.socket) -> None:
    """Run until stopped (a signal, or the probe server failing)."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, consumer.stop)
    probes = serve_probes(probe_socket, consumer.checks, consumer.stop)
    try:
        await consumer.run()
    finally:
        probes.cancel()


def consumer_main(build: Callable[[Settings], Consumer], probe_port: Callable[[Settings], int],
                  before: Callable[[Settings], None] | None = None) -> None:
    try:
        settings = Settings.from_env()
        client_options(settings)  # TLS files that do not load: refused here, not deep in a Kafka client
    except ValueError as exc:  # a contradictory setting (adapters/kafka_security.py): one line, no secret
        raise SystemExit(f"refused to start: {exc}") from None
    configure_logging(settings.log_format, settings.log_level)
    # The port is bound before anything else starts: a taken port stops the process at once.
    probe_socket = bind(settings.probe_host, probe_port(settings))
    if before is not None:
        before(settings)

    async def main() -> None:
        await run_consumer(build(settings), probe_socket)

    asyncio.run(main())
