"""structlog set-up shared by every process: JSON lines in services, readable in a terminal.

Third-party libraries log through the standard library (aiokafka, uvicorn, Ray, alembic);
their records go through the same structlog renderer, so an operator's log pipeline reads one
format from every line of a process.
"""

from __future__ import annotations

import logging
import re
import sys

import structlog

_SHARED = [
    structlog.contextvars.merge_contextvars,
    structlog.processors.add_log_level,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
]


def configure_logging(log_format: str | None = None, level: str = "INFO") -> None:
    """JSON when stderr is not a terminal (services, CI) unless log_format says otherwise
    (Settings.log_format: "json" or "console")."""
    json = log_format == "json" if log_format else not sys.stderr.isatty()
    level_no = getattr(logging, level.upper())
    renderer = (
        structlog.processors.JSONRenderer()
        if json
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[*_SHARED, structlog.processors.format_exc_info, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(level_no),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*_SHARED, structlog.stdlib.add_logger_name],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                renderer,
            ],
        )
    )
    handler.addFilter(RedactSecrets())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    # Libraries are chatty at INFO; their warnings and errors are what an operator needs.
    root.setLevel(max(level_no, logging.WARNING))


class RedactSecrets(logging.Filter):
    """aiokafka's DEBUG log prints every request, SASL's included: PLAIN's carries the password
    in clear (`sasl_auth_bytes=b'user\\x00user\\x00password'`). Redacted here so that turning
    a library's log up to DEBUG never writes a Kafka password."""

    _AUTH_BYTES = re.compile(r"""sasl_auth_bytes=b(?:'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")""")

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "sasl_auth_bytes" in message:
            record.msg, record.args = self._AUTH_BYTES.sub("sasl_auth_bytes=<redacted>", message), None
        return True


def adopt_library_logger(name: str) -> None:
    """Send a library logger that installs its own handlers (Ray does, at import) through
    ours instead."""
    logger = logging.getLogger(name)
    logger.handlers.clear()
    logger.propagate = True
