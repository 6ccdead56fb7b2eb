"""Liveness and readiness probes: exec and httpGet, with Kubernetes' timing rules.

A probe's bookkeeping (:class:`ProbeState`) is pure: when it is due, and
what a result means after ``successThreshold`` / ``failureThreshold``
results in a row. :func:`run_probe` does one check: an exec through the
group's runtime driver, or an HTTP GET to the group's address from inside
the group's network namespace: its port filter lets in what comes through
``lo``, so a probe reaches undeclared ports while the node itself, like any
address outside the group, does not. The socket is made in the namespace
(:func:`skiff.engine.network.netns.connect_in`), no process is started. The same
connection, without a request, tells whether a group serves a port (:func:`accepts`).
"""

from __future__ import annotations

import concurrent.futures
import http.client
import socket
import ssl
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from skiff.core.spec import ExecAction, HttpGetAction, Probe
from skiff.engine.network import netns
from skiff.engine.network.groups import Attachment
from skiff.engine.runtime.driver import RuntimeDriver
from skiff.errors import SkiffError


@dataclass
class ProbeState:
    """One probe of one container instance."""

    started_at: float
    next_at: float = 0.0
    successes: int = 0
    failures: int = 0
    pending: concurrent.futures.Future[tuple[bool, str]] | None = field(default=None,
                                                                       repr=False)

    def due(self, probe: Probe, now: float) -> bool:
        return (self.pending is None and now >= self.started_at + probe.initial_delay_s
                and now >= self.next_at)

    def record(self, probe: Probe, ok: bool, now: float) -> bool | None:
        """Count a result; returns True when the container just became healthy
        (or ready), False when it just crossed the failure threshold, else None."""
        self.next_at = now + probe.period_s
        if ok:
            self.failures = 0
            self.successes += 1
            return True if self.successes == max(1, probe.success_threshold) else None
        self.successes = 0
        self.failures += 1
        if self.failures >= max(1, probe.failure_threshold):
            self.failures = 0
            return False
        return None


def run_probe(probe: Probe, driver: RuntimeDriver, cid: str,
              attachment: Attachment | None) -> tuple[bool, str]:
    """Run one check of ``probe``; (passed, what happened)."""
    action = probe.action
    if isinstance(action, ExecAction):
        return _exec(driver, cid, action, probe.timeout_s)
    if attachment is None:
        return False, "the group has no address"
    return _http(attachment.netns_path, attachment.ip, action, probe.timeout_s)


def _exec(driver: RuntimeDriver, cid: str, action: ExecAction,
          timeout_s: float) -> tuple[bool, str]:
    try:
        session = driver.exec(cid, list(action.command))
    except SkiffError as exc:
        return False, exc.message
    try:
        out, err = session.process.communicate(timeout=max(timeout_s, 0.5))
    except subprocess.TimeoutExpired:
        session.close()
        return False, f"command timed out after {timeout_s:g} s"
    code = session.process.returncode
    if code == 0:
        return True, "ok"
    detail = (err or out).decode(errors="replace").strip()[:200]
    return False, f"command exited with {code}" + (f": {detail}" if detail else "")


class _InNamespace(http.client.HTTPConnection):
    """An HTTP connection whose socket is made in a network namespace."""

    def __init__(self, netns_path: Path, host: str, port: int, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self.netns_path = netns_path
        self.timeout_s = timeout

    def connect(self) -> None:
        sock = netns.connect_in(self.netns_path, self.host, self.port, self.timeout_s)
        try:
            self.sock = self.wrap(sock)
        except BaseException:
            sock.close()
            raise

    def wrap(self, sock: socket.socket) -> socket.socket:
        return sock


class _InNamespaceTLS(_InNamespace):
    """The same over TLS, the certificate unchecked (as Kubernetes' probes)."""

    def wrap(self, sock: socket.socket) -> socket.socket:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context.wrap_socket(sock, server_hostname=self.host)


def accepts(attachment: Attachment, port: int, timeout_s: float) -> bool:
    """Whether TCP ``port`` of the group at ``attachment`` accepts a connection now, made
    from inside its network namespace as the HTTP probes' (Kubernetes' ``tcpSocket``
    check): what :meth:`~skiff.engine.group.supervisor.Supervisor.serving` asks of each
    declared port. A port nobody listens on refuses at once (the group's own address
    is on its namespace's stack); ``timeout_s`` bounds a server too busy to accept."""
    try:
        netns.connect_in(attachment.netns_path, attachment.ip, port, timeout_s).close()
    except (OSError, SkiffError):
        return False
    return True


def _http(netns_path: Path, ip: str, action: HttpGetAction,
          timeout_s: float) -> tuple[bool, str]:
    kind = _InNamespaceTLS if action.scheme.lower() == "https" else _InNamespace
    connection = kind(netns_path, ip, action.port, timeout_s)
    try:
        connection.request("GET", action.path or "/", headers=dict(action.headers))
        status = connection.getresponse().status
    except (OSError, http.client.HTTPException, SkiffError) as exc:
        detail = exc.message if isinstance(exc, SkiffError) else str(exc)
        return False, f"GET {action.path} on port {action.port}: {detail}"
    finally:
        connection.close()
    if 200 <= status < 400:
        return True, f"HTTP {status}"
    return False, f"GET {action.path} on port {action.port}: HTTP {status}"
