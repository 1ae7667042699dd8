"""Structured logging: JSON lines in a container, readable lines on a terminal."""

from __future__ import annotations

import logging
import sys

import structlog

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


FIELD_MAX = 512
# A traceback keeps its end (where the cause is), up to this much.
TRACEBACK_MAX = 8192


def bound_fields(
    logger: object, method: str, event: structlog.typing.EventDict
) -> structlog.typing.EventDict:
    """Cut every text field to ``FIELD_MAX`` characters, so no input makes a line long; a
    traceback to its last ``TRACEBACK_MAX``, where its cause is."""
    for key, value in event.items():
        if key == "exception" and isinstance(value, str):
            if len(value) > TRACEBACK_MAX:
                event[key] = (
                    f"({len(value) - TRACEBACK_MAX} characters cut) ..." + value[-TRACEBACK_MAX:]
                )
        elif isinstance(value, str) and len(value) > FIELD_MAX:
            event[key] = f"{value[:FIELD_MAX]}... ({len(value) - FIELD_MAX} more characters)"
    return event


def configure(level: str = "info", fmt: str = "auto") -> None:
    """Set up structlog for the process.

    :param level: ``debug``, ``info``, ``warning`` or ``error``.
    :param fmt: ``json``, ``console``, or ``auto`` (console when stderr is a terminal).
    """
    console = fmt == "console" or (fmt == "auto" and sys.stderr.isatty())
    renderer: structlog.typing.Processor = (
        structlog.dev.ConsoleRenderer() if console else structlog.processors.JSONRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            bound_fields,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS[level]),
        # one write per line (message and newline together), so the lines of worker processes
        # sharing stderr never run into each other
        logger_factory=structlog.WriteLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )


def get_logger(name: str) -> structlog.typing.FilteringBoundLogger:
    """A logger whose lines carry ``module=name``; configured lazily, so safe at import time."""
    logger: structlog.typing.FilteringBoundLogger = structlog.get_logger(module=name)
    return logger
