"""The client's errors, and what an HTTP answer means: the ARM error it stands
for, or the JSON object it holds.

Every failure the client raises is an :class:`ApiError` (a
:class:`~skiff.errors.SkiffError`) with the HTTP status and the ARM code the
server sent; nothing of httpx or websockets leaks out (their exceptions are
mapped at the boundary to ``ApiError(0, "ConnectionFailed", ...)``)::

    SkiffError
     ├── ApiError             status, ARM code, message, target
     │    └── OperationFailed a long-running operation ended Failed or Canceled
     └── ClientConfigError    no token, an unreadable CA file
"""

from __future__ import annotations

from typing import Any

import httpx

from skiff.errors import SkiffError


class ApiError(SkiffError):
    """The API refused (``status`` and the ARM ``code`` it answered), or could
    not be reached (``status`` 0, code ``ConnectionFailed``)."""

    def __init__(self, status: int, code: str, message: str, target: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.target = target

    def __str__(self) -> str:
        return f"({self.code}) {self.message}"


class OperationFailed(ApiError):
    """A long-running operation ended Failed or Canceled, or a deployment ended
    with ``provisioningState`` Failed; code and message are the operation's error."""


class ClientConfigError(SkiffError):
    """The client's configuration is unusable: no token, an unreadable CA file."""

    code = "InvalidClientConfiguration"


def one_line(text: str) -> str:
    return " ".join(text.split())


def error_from(response: httpx.Response) -> ApiError:
    """The :class:`ApiError` an error answer stands for (ARM body, or its status line)."""
    status = response.status_code
    code = response.reason_phrase.replace(" ", "") or f"Http{status}"
    message = f"HTTP {status} {response.reason_phrase}".strip()
    target = None
    try:
        data = response.json()
    except ValueError:
        text = response.text.strip()
        if text:
            message = f"{message}: {one_line(text)[:500]}"
        return ApiError(status, code, message)
    error = data.get("error", data) if isinstance(data, dict) else None
    if isinstance(error, dict):
        code = str(error.get("code") or code)
        message = str(error.get("message") or message)
        target = error.get("target")
    return ApiError(status, code, message, str(target) if target is not None else None)


def json_object(response: httpx.Response) -> dict[str, Any]:
    """A successful answer's JSON object ({} for no body); InvalidResponse if it is none."""
    if not response.content:
        return {}
    try:
        data = response.json()
    except ValueError as exc:
        raise ApiError(response.status_code, "InvalidResponse",
                       f"{response.request.method} {response.request.url.path} answered "
                       f"HTTP {response.status_code} with a body that is not JSON") from exc
    if not isinstance(data, dict):
        raise ApiError(response.status_code, "InvalidResponse",
                       f"{response.request.method} {response.request.url.path} answered "
                       "JSON that is not an object")
    return data
