"""Structured logs: one line per event, `key=value` fields on a terminal, JSON lines with
`--log-format json` (for a collector).

Code logs an event with fields, never a formatted sentence that a parser would have to take
apart: `event(log, "batch.completed", batch_id=..., objects=...)`. Keys and bodies never go
into fields (the request log names a key by its id at most).
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import sys
from typing import Any, Literal

import orjson

LogFormat = Literal["text", "json"]

_RESERVED = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


def event(logger: logging.Logger, name: str, *, level: int = logging.INFO, **fields: Any) -> None:
    """Log `name` with structured `fields` (None values left out)."""
    if logger.isEnabledFor(level):
        clean = {k: v for k, v in fields.items() if v is not None}
        # As `Logger.log`, without its walk up the stack for the caller's file and line,
        # which no formatter here prints (every request logs a line).
        record = logger.makeRecord(
            logger.name, level, "", 0, name, (), None, extra={"fields": clean}
        )
        logger.handle(record)


def event_on_commit(session: Any, logger: logging.Logger, name: str, **fields: Any) -> None:
    """`event`, once the session's transaction commits (dropped if it rolls back): a state
    change is logged only when it happened."""
    session.info.setdefault(_PENDING, []).append((logger, name, fields))


_PENDING = "assay.log_on_commit"


def _install_commit_hooks() -> None:
    from sqlalchemy import event as sa_event
    from sqlalchemy.orm import Session

    def committed(session: Session) -> None:
        for logger, name, fields in session.info.pop(_PENDING, ()):
            event(logger, name, **fields)

    def rolled_back(session: Session) -> None:
        session.info.pop(_PENDING, None)

    sa_event.listen(Session, "after_commit", committed)
    sa_event.listen(Session, "after_soft_rollback", lambda s, _t: rolled_back(s))


_install_commit_hooks()


def configure(fmt: LogFormat = "text", level: str = "INFO") -> None:
    """Send Assay's logs to stderr in `fmt`; uvicorn's own error log goes the same way."""
    handler = _StderrHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    for name in ("assay", "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers = [handler]
        logger.setLevel(level.upper())
        logger.propagate = False


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever `sys.stderr` is when a line is logged, not to the stream it was
    when configured: a process that swaps stderr (a test runner capturing it, then closing
    the capture) must not make every later line fail to log."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    fields = dict(getattr(record, "fields", None) or {})
    for key, value in record.__dict__.items():  # `extra=` given without "fields"
        if key not in _RESERVED and key != "fields":
            fields.setdefault(key, value)
    return fields


class TextFormatter(logging.Formatter):
    """`2026-11-30T19:40:01.123Z INFO  request method=GET route=/v1/... status=200 ms=3.2`"""

    def format(self, record: logging.LogRecord) -> str:
        when = dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds")
        parts = [when.replace("+00:00", "Z"), f"{record.levelname:<5}", record.getMessage()]
        parts += [f"{k}={_text(v)}" for k, v in _fields(record).items()]
        line = " ".join(parts)
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, event, then the fields."""

    def format(self, record: logging.LogRecord) -> str:
        when = dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds")
        line: dict[str, Any] = {
            "ts": when.replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
            **_fields(record),
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(line, default=str).decode()


# What makes a value need quotes on a text line; one regex search, not a test per character
# (that test was half of each request's log line).
_QUOTED = re.compile(r'[\s"=]')


def _text(value: Any) -> str:
    text = str(value)
    if not text or _QUOTED.search(text):
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    return text
