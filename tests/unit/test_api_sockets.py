"""The exec and attach websockets on a real uvicorn (TLS, websockets-sansio, as `skiff serve`
runs them) over the fake engine: the exit code an exec carries to the CLI, and a client that
leaves an attach, which is no error."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import uvicorn
from click.testing import CliRunner, Result

from skiff.api.app import create_app
from skiff.api.context import ControlPlane
from skiff.api.sockets import close_reason
from skiff.api.tls import ensure_certificates
from skiff.cli.main import main
from skiff.client import SkiffClient
from skiff.testing.inprocess import fake_plane
from skiff.testing.registry import free_port
from skiff.testing.server import wait_port

SUB = "sub-1"
IMAGE = "registry.test/busybox:1"


class Served:
    """The app served over HTTPS on a loopback port, and a token of ``SUB``."""

    def __init__(self, plane: ControlPlane, url: str, ca: Path, token: str,
                 stop: Callable[[], None]) -> None:
        self.plane, self.url, self.ca, self.token = plane, url, ca, token
        #: Stop serving, once every connection has ended (or after 5 s).
        self.stop = stop

    def cli(self, *args: str) -> Result:
        def factory() -> SkiffClient:
            return SkiffClient(self.url, self.token, ca=str(self.ca), subscription=SUB)

        return CliRunner().invoke(main, ["container", *args], obj=factory)


@pytest.fixture
def served(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> Iterator[Served]:
    """uvicorn serving the app over the fake plane; stopped (its sessions ended) after."""
    port = free_port()
    files = ensure_certificates(tmp_path, "127.0.0.1")
    caplog.set_level(logging.INFO)
    with fake_plane(tmp_path) as plane:
        plane.base_url = f"https://127.0.0.1:{port}"
        # log_config=None: uvicorn's loggers propagate to the root, where caplog listens.
        config = uvicorn.Config(create_app(plane), host="127.0.0.1", port=port,
                                ssl_certfile=str(files.cert), ssl_keyfile=str(files.key),
                                log_config=None, lifespan="off", ws="websockets-sansio",
                                timeout_graceful_shutdown=5)
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()

        def stop() -> None:
            server.should_exit = True
            thread.join(timeout=10)

        try:
            wait_port(port)
            _, token = plane.store.create_token(SUB, "tests")
            yield Served(plane, plane.base_url, files.ca, token, stop)
        finally:
            stop()


def create(served: Served, name: str, script: str) -> None:
    result = served.cli("create", "-g", "rg", "-n", name, "--image", IMAGE, "--cpu", "0.1",
                        "--memory", "0.1", "--command-line", f"sh -c '{script}'", "-o", "none")
    assert result.exit_code == 0, result.output


def test_exec_ends_with_the_commands_exit_code(served: Served) -> None:
    """`exit 3` in the exec'd shell leaves `skiff container exec` with 3; 0 stays 0."""
    create(served, "web", "sleep 300")
    failed = served.cli("exec", "-g", "rg", "-n", "web", "--exec-command", "sh -c 'echo x; exit 3'")
    assert (failed.exit_code, failed.stdout_bytes) == (3, b"x\r\n")
    fine = served.cli("exec", "-g", "rg", "-n", "web", "--exec-command", "sh -c 'echo y'")
    assert (fine.exit_code, fine.stdout_bytes) == (0, b"y\r\n")


def test_the_exit_code_travels_in_the_close_reason() -> None:
    """The close reason says the exit code in words; none is said when it is unknown."""
    assert close_reason(3) == "exit code 3"
    assert close_reason(None) == ""


def test_a_client_leaving_an_attach_is_no_error(served: Served,
                                                caplog: pytest.LogCaptureFixture) -> None:
    """A client that closes an attach mid-stream (Ctrl-C) ends the session on the server
    without a traceback: no `Exception in ASGI application`, no ERROR logged."""
    create(served, "talky", "; ".join(["echo tick; sleep 0.05"] * 200))
    with SkiffClient(served.url, served.token, ca=str(served.ca), subscription=SUB) as client:
        target = client.attach("rg", "talky", "talky")
        with client.websocket(target) as ws:
            assert ws.recv(timeout=10) == "tick\n"
        quiet = client.attach("rg", "talky", "talky")  # the same left mid-wait for output
        with client.websocket(quiet):
            pass
    served.stop()  # once the sessions ended: each would send its next tick within 0.05 s
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], [r.getMessage() for r in errors]
