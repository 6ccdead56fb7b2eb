"""The server's log: text for people, or JSON lines for a log pipeline.

``skiff serve --log-format json`` writes one JSON object a line (python-json-logger's
formatter: ``time``, ``level``, ``logger``, ``message`` and the record's extra
fields), each line of a request carrying its ``request_id`` and ``correlation_id``
(:data:`skiff.api.tracing.REQUEST_IDS`), so that a client's
``x-ms-correlation-request-id`` finds every line its requests caused. The text format
carries them too, in brackets.

Secrets: skiff's messages are written without them (see ARCHITECTURE.md), and a
last filter masks what must never be in a log in any case: a bearer token, a JWT, a
``skf_`` token (:func:`mask`).
"""

from __future__ import annotations

import logging
import re
import sys
from typing import Literal

from pythonjsonlogger.json import JsonFormatter

from skiff.api.tracing import REQUEST_IDS

LogFormat = Literal["text", "json"]
#: What no log line may hold: a bearer credential, a JWT, an opaque skiff token.
_SECRETS = re.compile(r"(?i)(bearer\s+)\S+|eyJ[\w-]{4,}\.[\w-]{4,}\.[\w-]*|skf_[\w-]+")


def mask(text: str) -> str:
    """``text`` with every token in it replaced by ``***``."""
    return _SECRETS.sub(lambda m: (m.group(1) or "") + "***", text)


class RequestContext(logging.Filter):
    """Adds the request ids of the request being served (if any) to each record, and
    masks tokens in its message."""

    def filter(self, record: logging.LogRecord) -> bool:
        ids = REQUEST_IDS.get()
        if ids is not None and not hasattr(record, "request_id"):
            record.request_id = ids.request_id
            record.correlation_id = ids.correlation_id
        message = record.getMessage()
        masked = mask(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True


class _Text(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        request = getattr(record, "request_id", None)
        if request is None:
            return text
        return f"{text} [request {request} correlation {getattr(record, 'correlation_id', '')}]"


def configure(log_format: LogFormat, *, verbose: bool) -> logging.Handler:
    """Log to stderr in ``log_format``, at INFO with ``verbose`` (a line per request
    included), else WARNING. Returns the handler it installed."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RequestContext())
    if log_format == "json":
        handler.setFormatter(JsonFormatter(
            "{asctime}{levelname}{name}{message}", style="{",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"}))
    else:
        handler.setFormatter(_Text("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO if verbose else logging.WARNING)
    return handler
