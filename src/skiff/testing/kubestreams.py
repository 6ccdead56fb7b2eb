"""A loopback server answering a Pod's ``log`` and ``exec`` subresources as the API server
does, for :mod:`skiff.kube.streams`' unit tests without a cluster.

Nothing here was recorded from a cluster: the answers are built from the Kubernetes API
reference and from the code of the clients that speak to it (the official Python client's
``kubernetes.stream.ws_client``, ``websocket-client``), and from what the kubelet is
documented to send: the Status messages of its refusals, the ``v4.channel.k8s.io``
framing, the empty frame that says the streams are open, the Status that carries an exit
code. It is a real server (HTTP/1.1 on a free port, websockets written here after RFC
6455), so the official client connects to it as to an API server: point a
``kubernetes.client.Configuration``'s ``host`` at :attr:`KubeStreams.host`, with
:attr:`KubeStreams.token` as the bearer token.

- ``GET /api/v1/namespaces/{ns}/pods/{pod}/log``: ``container``, ``tailLines``,
  ``timestamps`` (containerd's stamps, RFC 3339 with nine digits and ``Z``, or a stamp
  the test gives), ``previous``, and ``follow`` as a chunked answer that ends when the
  container is no longer running. A Pod, container, previous instance or started
  container that is missing is refused with the API server's Status and message.
- ``GET /api/v1/namespaces/{ns}/pods/{pod}/exec``: the websocket upgrade with the
  ``v4.channel.k8s.io`` subprotocol; the command runs as a LOCAL process (no container),
  stdin, stdout and stderr on channels 0 to 2, or a pty with ``tty`` whose size follows
  channel 4 (``TIOCSWINSZ``), and a Status on channel 3 at its end. A client that leaves
  takes the command's terminal with it (SIGHUP, as a runtime closing the pty does) or its
  stdin. Before it starts a TTY command the server waits up to a second for the client's
  first size, so a command that asks at once sees it: a cluster's runtime applies the
  size as it comes, and may start the command first.

Pods are declared by the test (:meth:`KubeStreams.add_pod`), their output written with
:meth:`KubeStreams.log`; every exec is kept in :attr:`KubeStreams.execs`.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import io
import json
import os
import re
import secrets
import select
import signal
import socket
import struct
import subprocess
import tempfile
import termios
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

SUBPROTOCOL = "v4.channel.k8s.io"
_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455's key suffix
_LOG = re.compile(r"/api/v1/namespaces/([^/]+)/pods/([^/]+)/log")
_EXEC = re.compile(r"/api/v1/namespaces/([^/]+)/pods/([^/]+)/exec")
_TEXT, _BINARY, _CLOSE, _PING, _PONG = 0x1, 0x2, 0x8, 0x9, 0xA
#: How long a TTY command waits for the client's first terminal size.
_FIRST_SIZE_S = 1.0
#: How long a finished session waits for the client's answer to its close frame.
_CLOSE_S = 5.0


def stamp_now() -> str:
    """Now as containerd stamps a log line: RFC 3339, nine digits, ``Z``."""
    ns = time.time_ns()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 10**9)) + f".{ns % 10**9:09d}Z"


@dataclass
class FakeContainer:
    """A container of a declared Pod: its state and the output of its instances."""

    #: "waiting", "running" or "terminated" (a follow ends when it is not running).
    state: str = "running"
    #: The waiting reason the API server names.
    reason: str = "ContainerCreating"
    #: The current instance's lines: (stamp, text with its newline).
    lines: list[tuple[str, str]] = field(default_factory=list)
    #: The previous instance's lines; None: there was none.
    previous: list[tuple[str, str]] | None = None


@dataclass
class ExecRecord:
    """One exec the server ran."""

    command: list[str]
    container: str
    tty: bool
    #: The local process (None if it could not be started).
    process: subprocess.Popen[bytes] | None = None
    #: Every size the client set, (rows, cols), in order.
    sizes: list[tuple[int, int]] = field(default_factory=list)
    #: Whether the client left (its close frame, or the connection) before the end.
    client_left: bool = False


class KubeStreams:
    """The server: ``with KubeStreams() as api: ...``; pods declared, output written."""

    def __init__(self, token: str | None = None) -> None:
        self.token = token or secrets.token_urlsafe(16)
        self.pods: dict[tuple[str, str], dict[str, FakeContainer]] = {}
        self.execs: list[ExecRecord] = []
        #: The follows being answered now.
        self.followers = 0
        self.changed = threading.Condition()
        self._workdir = tempfile.TemporaryDirectory(prefix="skiff-kubestreams-")
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.api = self
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True,
                                        name="kubestreams")
        self._open: set[socket.socket] = set()
        self._closing = False

    @property
    def host(self) -> str:
        """The base URL, for ``Configuration.host``."""
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def workdir(self) -> str:
        """The directory exec'd commands run in."""
        return self._workdir.name

    def __enter__(self) -> KubeStreams:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop serving, kill every command still running, end every connection. Once."""
        with self.changed:
            if self._closing:
                return
            self._closing = True
            self.changed.notify_all()
        self._server.shutdown()
        self._server.server_close()
        for record in self.execs:
            if record.process is not None and record.process.poll() is None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(record.process.pid, signal.SIGKILL)
                record.process.wait(10)
        self.drop_connections()
        self._thread.join(5)
        self._workdir.cleanup()

    # ---- what the test declares -----------------------------------------------------

    def add_pod(self, namespace: str, pod: str, containers: Iterable[str], *,
                state: str = "running") -> None:
        """Declare a Pod whose containers are all in ``state``."""
        with self.changed:
            self.pods[(namespace, pod)] = {c: FakeContainer(state=state) for c in containers}

    def container(self, namespace: str, pod: str, container: str) -> FakeContainer:
        return self.pods[(namespace, pod)][container]

    def log(self, namespace: str, pod: str, container: str, text: str, *,
            stamp: str | None = None) -> None:
        """The container writes ``text`` (its lines stamped ``stamp``, or now)."""
        with self.changed:
            lines = self.container(namespace, pod, container).lines
            lines += [(stamp or stamp_now(), line) for line in text.splitlines(keepends=True)]
            self.changed.notify_all()

    def set_state(self, namespace: str, pod: str, container: str, state: str) -> None:
        """The container is now ``state`` (a follow of it ends unless it is running)."""
        with self.changed:
            self.container(namespace, pod, container).state = state
            self.changed.notify_all()

    def restart(self, namespace: str, pod: str, container: str) -> None:
        """The container's instance ends and a new one runs: its output is the previous."""
        with self.changed:
            found = self.container(namespace, pod, container)
            found.previous, found.lines, found.state = found.lines, [], "running"
            self.changed.notify_all()

    def drop_connections(self) -> None:
        """Cut every open connection, as a network lost would (commands keep running)."""
        with self.changed:
            sockets = list(self._open)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def closing(self) -> bool:
        return self._closing

    def opened(self, sock: socket.socket) -> None:
        with self.changed:
            self._open.add(sock)

    def ended(self, sock: socket.socket) -> None:
        with self.changed:
            self._open.discard(sock)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    api: KubeStreams


def _status(code: int, reason: str, message: str, **extra: Any) -> dict[str, Any]:
    """A ``meta/v1`` Status as the API server refuses with it."""
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, **extra, "code": code}


class _Refused(Exception):
    def __init__(self, code: int, reason: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = _status(code, reason, message, **extra)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass  # a test's output stays the test's

    def do_GET(self) -> None:
        api = self.server.api
        api.opened(self.connection)
        try:
            url = urlsplit(self.path)
            query = parse_qs(url.query, keep_blank_values=True)
            if self.headers.get("Authorization") != f"Bearer {api.token}":
                raise _Refused(401, "Unauthorized", "Unauthorized")
            if match := _LOG.fullmatch(url.path):
                self._logs(api, match[1], match[2], query)
            elif match := _EXEC.fullmatch(url.path):
                self._exec(api, match[1], match[2], query)
            else:
                raise _Refused(404, "NotFound", "the server could not find the requested "
                               "resource")
        except _Refused as refused:
            self._json(refused.status["code"], refused.status)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        finally:
            api.ended(self.connection)

    def _json(self, code: int, doc: dict[str, Any]) -> None:
        body = json.dumps(doc).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    # ---- log ------------------------------------------------------------------------

    def _logs(self, api: KubeStreams, namespace: str, pod: str,
              query: dict[str, list[str]]) -> None:
        with api.changed:
            name, found = _container(api, namespace, pod, query)
            previous = _flag(query, "previous")
            if previous and found.previous is None:
                raise _Refused(400, "BadRequest", f'previous terminated container "{name}" in '
                               f'pod "{pod}" not found')
            if not previous and found.state == "waiting":
                raise _Refused(400, "BadRequest", f'container "{name}" in pod "{pod}" is '
                               f"waiting to start: {found.reason}")
            lines = list(found.previous if previous and found.previous is not None
                         else found.lines)
        tail = _int(query, "tailLines")
        if tail is not None:
            lines = lines[-tail:] if tail > 0 else []
        stamps = _flag(query, "timestamps")

        def text(chosen: list[tuple[str, str]]) -> bytes:
            return "".join(f"{s} {t}" if stamps else t for s, t in chosen).encode()

        if not _flag(query, "follow"):
            body = text(lines)
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        self._follow(api, found, text, len(found.lines) - len(lines))

    def _follow(self, api: KubeStreams, found: FakeContainer, text: Any, start: int) -> None:
        """The container's lines from ``start`` as a chunked answer, until it stops."""
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        sent = start
        with api.changed:
            api.followers += 1
        try:
            while True:
                with api.changed:
                    if sent == len(found.lines) and found.state == "running" \
                            and not api.closing():
                        api.changed.wait(0.05)
                    fresh = found.lines[sent:]
                    sent += len(fresh)
                    over = (found.state != "running" or api.closing()) and not fresh
                if fresh:
                    chunk = text(fresh)
                    self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                if over:
                    self.wfile.write(b"0\r\n\r\n")
                    return
                if _peer_gone(self.connection):
                    self.close_connection = True
                    return
        finally:
            with api.changed:
                api.followers -= 1
                api.changed.notify_all()

    # ---- exec -----------------------------------------------------------------------

    def _exec(self, api: KubeStreams, namespace: str, pod: str,
              query: dict[str, list[str]]) -> None:
        command = query.get("command", [])
        if not command:
            raise _Refused(400, "BadRequest", "you must specify at least 1 command")
        streams = {s: _flag(query, s) for s in ("stdin", "stdout", "stderr")}
        if not any(streams.values()):
            raise _Refused(400, "BadRequest",
                           "you must specify at least 1 of stdin, stdout, stderr")
        with api.changed:
            name, found = _container(api, namespace, pod, query)
            if found.state != "running":
                raise _Refused(500, "InternalError", "unable to upgrade connection: container "
                               f'not found ("{name}")')
        key = self.headers.get("Sec-WebSocket-Key", "")
        offered = [p.strip() for p in self.headers.get("Sec-WebSocket-Protocol", "").split(",")]
        if self.headers.get("Upgrade", "").lower() != "websocket" or not key:
            raise _Refused(400, "BadRequest", "Upgrade request required")
        if SUBPROTOCOL not in offered:
            raise _Refused(400, "BadRequest", f"the protocols offered ({offered}) do not include "
                           f"{SUBPROTOCOL}")
        digest = hashlib.sha1((key + _GUID).encode(), usedforsecurity=False).digest()
        accept = base64.b64encode(digest).decode()
        self.wfile.write(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                          f"Connection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n"
                          f"Sec-WebSocket-Protocol: {SUBPROTOCOL}\r\n\r\n").encode())
        self.close_connection = True
        # tty and stderr are not both given: the kubelet drops stderr then.
        tty = _flag(query, "tty")
        record = ExecRecord(command, name, tty)
        with api.changed:
            api.execs.append(record)
        _Session(api, _WebSocket(self.rfile, self.connection), record,
                 stdin=streams["stdin"], stdout=streams["stdout"],
                 stderr=streams["stderr"] and not tty).run()


def _container(api: KubeStreams, namespace: str, pod: str,
               query: dict[str, list[str]]) -> tuple[str, FakeContainer]:
    containers = api.pods.get((namespace, pod))
    if containers is None:
        raise _Refused(404, "NotFound", f'pods "{pod}" not found',
                       details={"name": pod, "kind": "pods"})
    name = (query.get("container") or [""])[0]
    if not name:
        if len(containers) != 1:
            raise _Refused(400, "BadRequest", f"a container name must be specified for pod "
                           f"{pod}, choose one of: [{' '.join(containers)}]")
        name = next(iter(containers))
    if name not in containers:
        raise _Refused(400, "BadRequest", f"container {name} is not valid for pod {pod}")
    return name, containers[name]


def _flag(query: dict[str, list[str]], key: str) -> bool:
    return (query.get(key) or ["false"])[0].lower() in ("true", "1")


def _int(query: dict[str, list[str]], key: str) -> int | None:
    values = query.get(key)
    if not values:
        return None
    try:
        value = int(values[0])
    except ValueError:
        value = -1
    if value < 0:
        raise _Refused(422, "Invalid", f"PodLogOptions \"\" is invalid: {key}: Invalid value: "
                       f"{values[0]}: must be greater than or equal to 0")
    return value


def _peer_gone(sock: socket.socket) -> bool:
    """Whether the client closed its end (readable, and nothing to read)."""
    readable, _, _ = select.select([sock], [], [], 0)
    if not readable:
        return False
    try:
        return sock.recv(1, socket.MSG_PEEK) == b""
    except OSError:
        return True


class _WebSocket:
    """The server's end of a websocket (RFC 6455): unmasked frames out, masked ones in."""

    def __init__(self, rfile: io.BufferedIOBase, sock: socket.socket) -> None:
        self.rfile, self.sock = rfile, sock
        self._lock = threading.Lock()
        self.closed = False  # a close frame was sent

    def send(self, opcode: int, payload: bytes) -> bool:
        """Send one frame; False if the connection is gone."""
        size = len(payload)
        if size < 126:
            header = struct.pack("!BB", 0x80 | opcode, size)
        elif size < 1 << 16:
            header = struct.pack("!BBH", 0x80 | opcode, 126, size)
        else:
            header = struct.pack("!BBQ", 0x80 | opcode, 127, size)
        with self._lock:
            if self.closed:
                return False
            if opcode == _CLOSE:
                self.closed = True
            try:
                self.sock.sendall(header + payload)
            except OSError:
                return False
        return True

    def channel(self, channel: int, data: bytes) -> bool:
        return self.send(_BINARY, bytes([channel]) + data)

    def receive(self) -> tuple[int, bytes] | None:
        """The next message (opcode, payload), pings answered; None when the client
        closed (its close frame, answered) or the connection is gone."""
        message, first = b"", None
        while True:
            head = self._exact(2)
            if head is None:
                return None
            fin, opcode = head[0] & 0x80, head[0] & 0x0F
            masked, size = head[1] & 0x80, head[1] & 0x7F
            if size >= 126:
                extended = self._exact(2 if size == 126 else 8)
                if extended is None:
                    return None
                size = int.from_bytes(extended, "big")
            mask = self._exact(4) if masked else b"\0\0\0\0"
            payload = self._exact(size)
            if mask is None or payload is None or not masked:
                return None  # a client's frames are masked (RFC 6455 5.1)
            data = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
            if opcode == _CLOSE:
                self.send(_CLOSE, data[:2])
                return None
            if opcode == _PING:
                self.send(_PONG, data)
                continue
            if opcode == _PONG:
                continue
            first = first if opcode == 0 else opcode
            message += data
            if fin:
                return first or _BINARY, message

    def _exact(self, size: int) -> bytes | None:
        try:
            data = self.rfile.read(size) if size else b""
        except OSError:
            return None
        return data if data is not None and len(data) == size else None


class _Session:
    """One exec: the local process, its streams on the channels, its Status at the end."""

    def __init__(self, api: KubeStreams, ws: _WebSocket, record: ExecRecord, *, stdin: bool,
                 stdout: bool, stderr: bool) -> None:
        self.api, self.ws, self.record = api, ws, record
        self.stdin, self.stdout, self.stderr = stdin, stdout, stderr
        self.master: int | None = None
        self.sized = threading.Event()
        self.started = threading.Event()
        self.pumps: list[threading.Thread] = []
        #: Why the command could not be started.
        self.error: str | None = None

    def run(self) -> None:
        # The kubelet writes an empty frame on the first channel the client reads: open.
        self.ws.channel(1 if self.stdout else 2 if self.stderr else 3, b"")
        reader = threading.Thread(target=self._client, daemon=True, name="kubestreams-in")
        try:
            if self.record.tty:
                self.master, slave = os.openpty()
                reader.start()
                self.sized.wait(_FIRST_SIZE_S)
                self._start(stdin=slave, stdout=slave, stderr=slave, tty=slave)
                os.close(slave)
            else:
                pipe = subprocess.PIPE
                self._start(stdin=pipe if self.stdin else subprocess.DEVNULL,
                            stdout=pipe if self.stdout else subprocess.DEVNULL,
                            stderr=pipe if self.stderr else subprocess.DEVNULL)
                reader.start()
            self.started.set()
            process = self.record.process
            status = self._exit_status(process.wait() if process is not None else None)
            for pump in self.pumps:
                pump.join()
            self.ws.channel(3, json.dumps(status).encode())
            self.ws.send(_CLOSE, struct.pack("!H", 1000))
            reader.join(_CLOSE_S)
        finally:
            self.started.set()
            with contextlib.suppress(OSError):
                self.ws.sock.shutdown(socket.SHUT_RDWR)
            reader.join(_CLOSE_S)
            if self.master is not None:
                os.close(self.master)

    def _start(self, *, stdin: int, stdout: int, stderr: int, tty: int | None = None) -> None:
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": self.api.workdir}
        if tty is not None:
            env["TERM"] = "xterm"  # what the CRI sets for a TTY exec
        try:
            self.record.process = subprocess.Popen(
                self.record.command, stdin=stdin, stdout=stdout, stderr=stderr,
                cwd=self.api.workdir, env=env, start_new_session=True,
                preexec_fn=_controlling_tty if tty is not None else None)
        except OSError as exc:
            self.error = f'exec: "{self.record.command[0]}": {exc.strerror}'
            return
        process = self.record.process
        if self.master is not None:
            self._pump(self.master, 1)
            return
        if process.stdout is not None:
            self._pump(process.stdout.fileno(), 1)
        if process.stderr is not None:
            self._pump(process.stderr.fileno(), 2)

    def _pump(self, fd: int, channel: int) -> None:
        def copy() -> None:
            while True:
                try:
                    data = os.read(fd, 65536)
                except OSError:  # EIO: the terminal's last holder is gone
                    return
                if not data or not self.ws.channel(channel, data):
                    return
        thread = threading.Thread(target=copy, daemon=True, name="kubestreams-out")
        thread.start()
        self.pumps.append(thread)

    def _exit_status(self, code: int | None) -> dict[str, Any]:
        """The Status the kubelet sends on the error channel."""
        if code is None:
            message = f"error executing command in container: {self.error}"
            return _status(500, "InternalError", f"Internal error occurred: {message}",
                           details={"causes": [{"message": message}]})
        if code < 0:
            code = 128 - code  # killed by a signal: the runtime's 128 + n
        if code == 0:
            return {"metadata": {}, "status": "Success"}
        return {"metadata": {}, "status": "Failure",
                "message": "command terminated with non-zero exit code: error executing "
                           f"command {self.record.command}, exit code {code}",
                "reason": "NonZeroExitCode",
                "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]}}

    def _client(self) -> None:
        """What the client sends: stdin, sizes; its leaving ends the command's terminal."""
        while True:
            message = self.ws.receive()
            if message is None:
                break
            _, data = message
            if not data:
                continue
            channel, payload = data[0], data[1:]
            if channel == 0 and self.stdin:
                self._stdin(payload)
            elif channel == 4:
                self._resize(payload)
        process = self.record.process
        if process is None or process.poll() is not None:
            return
        self.record.client_left = True
        if self.record.tty:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGHUP)  # the terminal is gone
        elif process.stdin is not None:
            with contextlib.suppress(OSError):
                process.stdin.close()

    def _stdin(self, data: bytes) -> None:
        try:
            if self.master is not None:
                os.write(self.master, data)
                return
            self.started.wait()
            process = self.record.process
            if process is not None and process.stdin is not None:
                process.stdin.write(data)
                process.stdin.flush()
        except OSError:
            pass  # the command ended: nothing reads its input any more

    def _resize(self, payload: bytes) -> None:
        try:
            size = json.loads(payload)
            rows, cols = int(size["Height"]), int(size["Width"])
        except (ValueError, KeyError, TypeError):
            return
        self.record.sizes.append((rows, cols))
        if self.master is not None:
            fcntl.ioctl(self.master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        self.sized.set()


def _controlling_tty() -> None:
    """In the child, a session leader already: make its stdin its controlling terminal, so
    the terminal's end and ^C reach it as they would in a container."""
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)
