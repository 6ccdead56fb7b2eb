"""Scrubbing what any engine says of a group before the control plane keeps or shows it.

The node's engine scrubs its own texts (:mod:`skiff.core.secrets`), but the
control plane holds an :class:`~skiff.core.engine.Engine` of any kind and
relies on none of them for that: every text an engine hands up (a view's
``detailStatus``, its events' messages, the group's failure, an error's
message) passes through here, with every secret of the group's definition,
before it is stored or answered.

Logs are the other way out: an unforeseen exception's text may quote what it
was given (a value, a body, a command line), and its traceback lands in the
server's log. :func:`describe_failure` writes a traceback for the log with the
known secrets scrubbed from every message in it, or, when the secrets cannot
be known, with the messages left out (the types and frames still tell where).
"""

from __future__ import annotations

import base64
import contextlib
import traceback
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import replace
from typing import Any

from skiff.core.secrets import scrub, secrets_of
from skiff.core.view import ContainerView, Event, GroupView, State
from skiff.errors import SkiffError
from skiff.models import ContainerGroupBody, to_engine_spec


def group_secrets(body: ContainerGroupBody | Mapping[str, Any], *, uid: str,
                  name: str) -> tuple[str, ...] | None:
    """Every secret of a stored group definition (``body`` as stored, or read), as
    :func:`~skiff.core.secrets.secrets_of` finds them in the engine's spec; None when
    the definition cannot be read (then nothing of it can be trusted to be clean)."""
    try:
        read = body if isinstance(body, ContainerGroupBody) \
            else ContainerGroupBody.from_stored(dict(body))
        return secrets_of(to_engine_spec(read, group_id=uid, name=name))
    except Exception:  # an unreadable definition: the caller withholds what it cannot scrub
        return None


#: What a text of an engine reads as when the secrets to scrub it of cannot be known.
WITHHELD = "(withheld: it may quote secrets that are not known here)"

_Clean = Callable[[str], str]


def _state(state: State | None, clean: _Clean) -> State | None:
    if state is None or not state.detail_status:
        return state
    return replace(state, detail_status=clean(state.detail_status))


def _events(events: list[Event], clean: _Clean) -> list[Event]:
    return [replace(e, message=clean(e.message)) for e in events]


def _container(view: ContainerView, clean: _Clean) -> ContainerView:
    current = _state(view.current, clean)
    assert current is not None
    return replace(view, current=current, previous=_state(view.previous, clean),
                   events=_events(view.events, clean))


def scrub_view(view: GroupView, secrets: Iterable[str] | None) -> GroupView:
    """A copy of ``view`` with every text an engine wrote in it (states' details, events'
    messages, the failure) scrubbed of ``secrets`` (None: unknown, so each text is
    :data:`WITHHELD`); ``view`` itself when there are no secrets."""
    found = None if secrets is None else tuple(secrets)
    if found == ():
        return view

    def clean(text: str) -> str:
        return WITHHELD if found is None else scrub(text, found)

    return replace(
        view, containers=[_container(c, clean) for c in view.containers],
        init_containers=[_container(c, clean) for c in view.init_containers],
        events=_events(view.events, clean),
        failure=None if view.failure is None else clean(view.failure))


@contextlib.contextmanager
def scrubbing_errors(secrets: Iterable[str] | None) -> Iterator[None]:
    """Scrub the message of any SkiffError raised inside (an engine's error that is
    answered to the caller) of ``secrets``; None: the secrets are unknown, so the
    message is replaced by its class's code."""
    try:
        yield
    except SkiffError as exc:
        message = (f"the engine failed ({exc.code})" if secrets is None
                   else scrub(exc.message, secrets))
        exc.message = message
        exc.args = (message,)
        raise


def describe_failure(exc: BaseException, secrets: Iterable[str] | None) -> str:
    """``exc``'s traceback (its causes and contexts too) for the log, every message in it
    scrubbed of ``secrets``; with ``secrets`` None, every message left out."""
    if secrets is None:
        return "".join(_frames_only(exc)).rstrip()
    return scrub("".join(traceback.format_exception(exc)), secrets).rstrip()


def _frames_only(exc: BaseException) -> Iterator[str]:
    """The traceback of ``exc`` and the exceptions chained to it, without their messages."""
    seen: set[int] = set()
    chain: list[tuple[BaseException, str]] = []
    current: BaseException | None = exc
    link = ""
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        chain.append((current, link))
        if current.__cause__ is not None:
            current, link = current.__cause__, "The above exception was the direct cause of " \
                "the following exception:"
        elif current.__context__ is not None and not current.__suppress_context__:
            current, link = current.__context__, "During handling of the above exception, " \
                "another exception occurred:"
        else:
            current = None
    for index, (item, _) in enumerate(reversed(chain)):
        if index:
            yield f"\n{chain[len(chain) - index][1]}\n\n"
        yield "Traceback (most recent call last):\n"
        yield from traceback.format_list(traceback.extract_tb(item.__traceback__))
        yield f"{type(item).__module__}.{type(item).__qualname__}: (message {WITHHELD[1:]}\n"


#: The keys under which an ARM body holds a secret as a string: an environment variable's
#: ``secureValue``, a registry credential's ``password``, a file share's account key.
_SECRET_KEYS = frozenset({"securevalue", "password", "storageaccountkey"})


def secrets_in_body(doc: Any) -> tuple[str, ...]:
    """Every secret an ARM request body (parsed JSON, read as is: it may be invalid) holds:
    the strings under :data:`_SECRET_KEYS` and a secret volume's contents (as given and
    decoded), wherever they are nested."""
    found: list[str] = []
    stack = [doc]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, dict):
            for key, value in item.items():
                lowered = str(key).lower()
                if lowered in _SECRET_KEYS and isinstance(value, str):
                    found.append(value)
                elif lowered == "secret" and isinstance(value, dict):
                    for content in value.values():
                        if isinstance(content, str):
                            found.append(content)
                            with contextlib.suppress(ValueError):
                                found.append(base64.b64decode(content, validate=True).decode())
                else:
                    stack.append(value)
    return tuple(found)
