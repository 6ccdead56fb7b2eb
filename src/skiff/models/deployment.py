"""ACI's YAML deployment files (``az container create --file group.yaml``), read as ARM bodies.

A YAML file carries the same body as a PUT, plus ``apiVersion``, ``name`` and
``type`` beside ``location``, ``tags`` and ``properties``. Reading one gives
the name and the body the CLI sends; the body is then validated as any PUT.

YAML has types JSON has not: an unquoted ``apiVersion: 2019-12-01`` is a date,
``!!binary`` is bytes. Everything is turned into JSON's types here (dates as
ISO 8601 text, bytes as base64, keys as text), so the body can be sent and
stored as is. Error messages quote positions in the file, never its text,
which may hold secrets.
"""

from __future__ import annotations

import base64
import datetime
from typing import Any

import yaml  # type: ignore[import-untyped,unused-ignore]

from skiff.errors import ArmError

# Keys of the file that are not part of the ARM body.
_FILE_ONLY = frozenset({"apiversion", "name", "type"})


def parse_yaml_deployment(text: str) -> tuple[str | None, dict[str, Any]]:
    """``(name, body)`` of an ACI YAML file; the name is None when the file has none."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "malformed YAML"
        raise ArmError(400, "InvalidRequestContent",
                       f"The deployment file is not valid YAML{where}: {problem}.") from None
    if not isinstance(doc, dict):
        raise ArmError(400, "InvalidRequestContent",
                       "The deployment file must be a YAML mapping with location, name, "
                       "properties and tags.")
    doc = _jsonable(doc)
    name = next((v for k, v in doc.items() if k.lower() == "name"), None)
    if name is not None and not isinstance(name, str):
        raise ArmError(400, "InvalidRequestContent", "The name in the deployment file must be "
                       "a string.", "name")
    body = {k: v for k, v in doc.items() if k.lower() not in _FILE_ONLY}
    return name, body


def _jsonable(value: Any) -> Any:
    """``value`` with YAML's extra types turned into JSON's."""
    if isinstance(value, dict):
        return {_key(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime.date | datetime.datetime):
        return value.isoformat()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    return value


def _key(key: Any) -> str:
    if isinstance(key, bool | None):  # YAML's `yes:` or `~:` keys read as JSON would write them
        return {True: "true", False: "false", None: "null"}[key]
    if isinstance(key, datetime.date | datetime.datetime):
        return key.isoformat()
    return str(key)
