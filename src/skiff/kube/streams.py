"""A Pod's container output and exec sessions, through the Kubernetes API's streams.

The local engine reads what conmon wrote to a file and runs ``runc exec`` behind a pty;
on a cluster the same three things are subresources of the Pod, served by the API server
(which relays the kubelet):

- **logs** (:func:`pod_logs`): ``GET .../pods/{pod}/log`` with ``tailLines``,
  ``timestamps`` and ``previous``. The kubelet stamps each line with RFC 3339 and nine
  digits, in the zone its runtime wrote (``Z`` from containerd, an offset from CRI-O);
  the local engine gives conmon's stamps, ``2026-12-04T10:00:00.000000000+00:00``, so a
  stamp is rewritten to that form, in UTC. A container not started yet, or without a
  previous instance, has no output: the API server answers 400 and the local engine an
  empty log, so this is ``""`` too.
- **attach** (:func:`follow_logs`): the same with ``follow=true``, a chunked answer the
  kubelet ends when the container exits; read line by line, and closable from another
  thread (the socket is shut, so a read waiting on a quiet container returns).
- **exec** (:func:`open_exec`): the ``exec`` subresource upgraded to a websocket with the
  ``v4.channel.k8s.io`` subprotocol. Every binary frame begins with its channel: 0 stdin,
  1 stdout, 2 stderr, 3 the error channel (one JSON ``Status`` when the command ended:
  ``Success``, or ``NonZeroExitCode`` with the code as its ``ExitCode`` cause), 4 the
  terminal's size as ``{"Width": cols, "Height": rows}``. :class:`KubeExec` is an
  :class:`~skiff.core.engine.ExecStream` over it, as the local engine's session is.

The official client (``kubernetes``) opens the websocket (URL, credentials, TLS, proxy:
``kubernetes.stream.stream`` with ``_preload_content=False``); its ``WSClient`` reads a
frame at a time behind ``poll()``, which misses data TLS already decrypted, so
:class:`KubeExec` reads the client's websocket (``websocket-client``) on a thread of its
own. ``stream()`` swaps its ``ApiClient``'s ``request`` method while it connects, which
would send another thread's ordinary call down a websocket: each exec gets an ApiClient
of its own, on the caller's configuration.

What a cluster does that a local exec does not: closing the session closes the
websocket, and the runtime then closes the command's terminal, so a shell gets SIGHUP;
a command without a terminal loses its stdin only, and one that does not read it runs on
(the exec API has no kill). ``v4`` has no way to close stdin alone either.

The ``kubernetes`` package is imported inside the functions: ``skiff --help`` and the
manifests (:mod:`skiff.kube.objects`) never load it. Its errors, the websocket's and the
socket's, become :class:`~skiff.errors.SkiffError` here.
"""

from __future__ import annotations

import contextlib
import json
import queue
import re
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from skiff.errors import GroupNotFound, RuntimeFailure, SkiffError

#: The exec subprotocol's channels.
STDIN, STDOUT, STDERR, ERROR, RESIZE = 0, 1, 2, 3, 4
#: How long a log read may take (connect, read) before the API server counts as gone.
LOG_TIMEOUT_S = (10.0, 60.0)
#: A follow waits for the next line as long as the container is quiet: connect only.
FOLLOW_TIMEOUT_S = (10.0, None)
#: What a command that could not be started exits with: ``runc exec``'s own code then,
#: which the local engine passes on.
NOT_STARTED = 255
#: How long :meth:`KubeExec.close` waits for the API server to answer its close frame.
_CLOSE_S = 2.0

#: An RFC 3339 stamp as the kubelet writes it, then the line.
_STAMPED = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d) (.*)",
                      re.DOTALL)


def pod_logs(core_api: Any, namespace: str, pod: str, container: str, *, tail: int | None,
             timestamps: bool, previous: bool) -> str:
    """The container's output (its previous instance's with ``previous``): the last
    ``tail`` lines, or all the kubelet keeps; each line stamped as the local engine
    stamps it with ``timestamps``. GroupNotFound for no such Pod or container."""
    if tail is not None and tail < 0:
        return ""
    try:
        response = core_api.read_namespaced_pod_log(
            pod, namespace, container=container, tail_lines=tail, timestamps=timestamps,
            previous=previous, _preload_content=False, _request_timeout=LOG_TIMEOUT_S)
        try:
            body: bytes = response.data
        finally:
            response.release_conn()
    except _failures() as exc:
        if _no_output(exc):
            return ""
        raise _mapped(exc, f"the logs of {namespace}/{pod}/{container}") from exc
    text = body.decode(errors="replace")
    return restamp(text) if timestamps else text


def follow_logs(core_api: Any, namespace: str, pod: str, container: str) -> LogFollower:
    """The container's output line by line, from its start, as it is written, until the
    container exits (the API server ends the answer). Closable, from another thread too.
    GroupNotFound for no such Pod or container; nothing for one not started yet."""
    try:
        response = core_api.read_namespaced_pod_log(
            pod, namespace, container=container, follow=True, _preload_content=False,
            _request_timeout=FOLLOW_TIMEOUT_S)
    except _failures() as exc:
        if _no_output(exc):
            return LogFollower(None, "")
        raise _mapped(exc, f"the logs of {namespace}/{pod}/{container}") from exc
    return LogFollower(response, f"{namespace}/{pod}/{container}")


def open_exec(core_api: Any, namespace: str, pod: str, container: str, command: list[str], *,
              tty: bool, terminal_size: tuple[int, int] | None) -> KubeExec:
    """Run ``command`` in the container over the exec websocket, behind a terminal with
    ``tty`` (of ``terminal_size``, rows and columns, sent before anything else).
    GroupNotFound for no such Pod or container; RuntimeFailure when the API server
    refuses (the container not running) or cannot be reached."""
    from kubernetes import client as k8s
    from kubernetes.stream import stream

    what = f"exec in {namespace}/{pod}/{container}"
    # stream() swaps its ApiClient's request method while it connects: an ApiClient of
    # this call's own keeps the caller's other threads on plain HTTP.
    try:
        with k8s.ApiClient(core_api.api_client.configuration) as api_client:
            ws = stream(k8s.CoreV1Api(api_client).connect_get_namespaced_pod_exec, pod,
                        namespace, command=list(command), container=container, stdin=True,
                        stdout=True, stderr=not tty, tty=tty, _preload_content=False,
                        binary=True)
    except _failures() as exc:
        raise _mapped(exc, what) from exc
    session = KubeExec(ws.sock, what, tty=tty)
    if tty and terminal_size is not None:
        session.resize(*terminal_size)
    return session


class LogFollower(Iterator[str]):
    """A followed log's lines, as they come; :meth:`close` ends it (from any thread)."""

    def __init__(self, response: Any, what: str) -> None:
        self._response = response
        self._what = what
        self._chunks: Iterator[bytes] = iter(()) if response is None else response.stream(
            65536, decode_content=True)
        self._buffer = b""
        self._closed = response is None

    def __next__(self) -> str:
        while b"\n" not in self._buffer:
            if self._closed:
                return self._end()
            try:
                chunk = next(self._chunks, None)
            except Exception as exc:
                if self._closed:
                    return self._end()
                self.close()
                raise RuntimeFailure(f"the logs of {self._what} broke off: {exc}") from exc
            if chunk is None:
                self._closed = True
                self._release()
                return self._end()
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line.decode(errors="replace") + "\n"

    def _end(self) -> str:
        """The last line if it had no newline yet, then StopIteration."""
        rest, self._buffer = self._buffer, b""
        if rest:
            return rest.decode(errors="replace")
        raise StopIteration

    def close(self) -> None:
        """Stop following: a read waiting for the next line returns (the socket is shut)."""
        if self._closed or self._response is None:
            self._closed = True
            return
        self._closed = True
        shutdown = getattr(self._response, "shutdown", None)  # urllib3 2.3: any thread
        with contextlib.suppress(Exception):
            if shutdown is not None:
                shutdown()
        self._release()

    def _release(self) -> None:
        with contextlib.suppress(Exception):
            self._response.close()
        with contextlib.suppress(Exception):
            self._response.release_conn()


class KubeExec:
    """An exec session over the ``v4.channel.k8s.io`` websocket: an
    :class:`~skiff.core.engine.ExecStream`. Output (stdout and stderr as they come, or
    the terminal's) is read until ``b""``; the exit code comes from the Status on the
    error channel. A thread reads the websocket, so :meth:`wait` works without a reader."""

    def __init__(self, ws: Any, what: str, *, tty: bool) -> None:
        from websocket import ABNF

        self._ws = ws
        self._what = what
        self._tty = tty
        self._binary, self._text, self._close_op = (ABNF.OPCODE_BINARY, ABNF.OPCODE_TEXT,
                                                     ABNF.OPCODE_CLOSE)
        # websocket-client answers pings and close frames from the reading thread: a real
        # lock for every send (the client's is a no-op unless made multithreaded).
        ws.lock = threading.Lock()
        self._output: queue.SimpleQueue[bytes] = queue.SimpleQueue()
        self._pending = b""
        self._read_lock = threading.Lock()
        self._status = b""
        self._exit_code: int | None = None
        #: What ended the reading, if not the API server's close frame.
        self._lost: Exception | None = None
        self._done = threading.Event()
        self._closed = False
        self._reader = threading.Thread(target=self._receive, name="kube-exec", daemon=True)
        self._reader.start()

    # ---- ExecStream ------------------------------------------------------------

    def read(self, size: int = 65536) -> bytes:
        """The next output; ``b""`` once the command ended (or the session closed)."""
        with self._read_lock:
            if not self._pending:
                self._pending = self._output.get()
                if not self._pending:
                    self._output.put(b"")  # the end, for every later read too
                    return b""
            chunk, self._pending = self._pending[:size], self._pending[size:]
            return chunk

    def write(self, data: bytes) -> None:
        """Send ``data`` to the command's stdin (its terminal with a TTY); dropped once
        the command ended, as nothing reads it any more."""
        if data and not self._done.is_set():
            self._send(bytes([STDIN]) + data)

    def wait(self, timeout_s: float | None = None) -> int | None:
        """The exit code once the API server sent the command's Status; None while it
        runs at the timeout, or if the session ended without one (closed, or the
        connection lost)."""
        if not self._done.wait(timeout_s):
            return None
        return self._exit_code

    def close(self) -> None:
        """End the session: a close frame, then the socket. The runtime closes the
        command's terminal (SIGHUP) or its stdin; see the module's note."""
        if self._closed:
            return
        self._closed = True
        if not self._done.is_set():
            with contextlib.suppress(Exception):
                self._ws.send_close()
            self._done.wait(_CLOSE_S)
        with contextlib.suppress(OSError, AttributeError):
            raw: socket.socket | None = self._ws.sock
            if raw is not None:
                raw.shutdown(socket.SHUT_RDWR)  # wakes the reading thread
        self._reader.join(_CLOSE_S)
        with contextlib.suppress(Exception):
            self._ws.shutdown()

    # ---- beyond ExecStream -------------------------------------------------------

    def resize(self, rows: int, cols: int) -> None:
        """Set the command's terminal to ``rows`` by ``cols`` (the resize channel)."""
        if not self._done.is_set():
            self._send(bytes([RESIZE]) + json.dumps({"Width": cols, "Height": rows}).encode())

    # ---- the websocket -----------------------------------------------------------

    def _send(self, payload: bytes) -> None:
        try:
            self._ws.send(payload, opcode=self._binary)
        except Exception as exc:
            if self._done.is_set() or self._closed:
                return  # the command ended meanwhile: nothing reads it any more
            raise RuntimeFailure(f"{self._what}: the session broke off: {exc}") from exc

    def _receive(self) -> None:
        """The reading thread: output to the queue, the Status kept, until the close."""
        try:
            while True:
                opcode, frame = self._ws.recv_data_frame(True)
                if opcode == self._close_op:
                    return
                if opcode not in (self._binary, self._text):
                    continue
                data = frame.data.encode() if isinstance(frame.data, str) else frame.data
                if len(data) < 2:
                    continue  # an empty frame: the API server's "the channel is open"
                channel, payload = data[0], data[1:]
                if channel in (STDOUT, STDERR):
                    self._output.put(bytes(payload))
                elif channel == ERROR:
                    self._status += payload
        except Exception as exc:  # closed here, or the connection lost: the end either way
            self._lost = exc
        finally:
            self._finish()

    def _finish(self) -> None:
        if self._status:
            self._exit_code, message = exit_status(self._status)
            if message:
                end = "\r\n" if self._tty else "\n"
                self._output.put(message.encode(errors="replace") + end.encode())
        self._output.put(b"")
        self._done.set()


def exit_status(status: bytes) -> tuple[int, str | None]:
    """A command's exit code from the error channel's Status, and a message to show when
    the command did not run at all (``NOT_STARTED`` then, as ``runc exec`` exits)."""
    try:
        doc = json.loads(status)
    except ValueError:
        doc = None
    if not isinstance(doc, dict):  # an older protocol's plain error text
        return NOT_STARTED, status.decode(errors="replace").strip()
    if doc.get("status") == "Success":
        return 0, None
    if doc.get("reason") == "NonZeroExitCode":
        for cause in (doc.get("details") or {}).get("causes") or []:
            if isinstance(cause, dict) and cause.get("reason") == "ExitCode":
                with contextlib.suppress(TypeError, ValueError):
                    return int(str(cause.get("message"))), None
    return NOT_STARTED, str(doc.get("message") or "the command could not be run")


def restamp(text: str) -> str:
    """``text`` with each line's kubelet stamp rewritten as conmon's, in UTC."""
    return "".join(_restamp_line(line) for line in text.splitlines(keepends=True))


def _restamp_line(line: str) -> str:
    match = _STAMPED.fullmatch(line)
    if not match:
        return line
    seconds, fraction, zone, rest = match.groups()
    try:
        moment = datetime.fromisoformat(seconds + ("+00:00" if zone == "Z" else zone))
    except ValueError:
        return line
    utc = moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{utc}.{(fraction or '').ljust(9, '0')}+00:00 {rest}"


# ---- errors ----------------------------------------------------------------------

def _failures() -> tuple[type[BaseException], ...]:
    """What a call of the API server raises when it fails: the client's ApiException
    (which ``stream()`` wraps every websocket failure in), urllib3's errors (no answer, a
    timeout, a broken answer) and the socket's."""
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError
    from websocket import WebSocketException

    return ApiException, HTTPError, WebSocketException, OSError


def _answer(exc: BaseException) -> tuple[int | None, str]:
    """The HTTP status and the Status message of the API server's refusal in ``exc`` (an
    ApiException, or the websocket handshake's refusal that the client wraps in one);
    (None, text) for anything else."""
    seen: BaseException | None = exc
    while seen is not None:
        status = getattr(seen, "status_code", None) or getattr(seen, "status", None)
        body = getattr(seen, "resp_body", None) or getattr(seen, "body", None)
        if isinstance(status, int) and status > 0:
            return status, _status_message(body) or str(getattr(seen, "reason", "") or "")
        seen = seen.__cause__ or seen.__context__
    return None, str(exc)


def _status_message(body: object) -> str:
    if isinstance(body, bytes):
        body = body.decode(errors="replace")
    if not isinstance(body, str):
        return ""
    try:
        doc = json.loads(body)
    except ValueError:
        return body.strip()[:500]
    return str(doc.get("message") or "") if isinstance(doc, dict) else ""


def _no_output(exc: BaseException) -> bool:
    """Whether the API server said the container has no such output: not started yet
    (waiting), or no previous instance. The local engine has no log file then: ``""``."""
    status, message = _answer(exc)
    return status == 400 and ("is waiting to start" in message
                              or "previous terminated container" in message)


def _mapped(exc: BaseException, what: str) -> SkiffError:
    """The SkiffError for a failed call of the API server."""
    status, message = _answer(exc)
    if status == 404 or (status == 400 and "is not valid for pod" in message):
        return GroupNotFound(f"{what}: {message}")
    if status is not None:
        return RuntimeFailure(f"{what}: the Kubernetes API server answered {status}: {message}")
    return RuntimeFailure(f"{what}: the Kubernetes API server cannot be reached: {message}")
