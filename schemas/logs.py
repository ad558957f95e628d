"""structlog set-up shared by every process: JSON lines in services, readable in a terminal."""

from __future__ import annotations

import logging
import os
import sys

import structlog


def configure_logging(json: bool | None = None, level: str | None = None) -> None:
    """JSON when stderr is not a terminal (services, CI) unless TUNIX_LOG_FORMAT says otherwise."""
    if json is None:
        fmt = os.environ.get("TUNIX_LOG_FORMAT")
        json = fmt == "json" if fmt else not sys.stderr.isatty()
    level_no = getattr(logging, (level or os.environ.get("TUNIX_LOG_LEVEL", "INFO")).upper())
    renderer = (
        structlog.processors.JSONRenderer()
        if json
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level_no),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    logging.basicConfig(level=max(level_no, logging.WARNING), stream=sys.stderr)
