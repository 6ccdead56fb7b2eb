"""Tenants' image pulls and git clones run in the fetch namespace: they reach no port of the
node but the allowed endpoints, follow no redirect onto it, and fail alike whatever the port."""

from __future__ import annotations

import contextlib
import http.server
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from skiff.core.spec import Container, GitRepoVolume, Volume
from skiff.engine.group.supervisor import Supervisor
from skiff.engine.images import RegistryCredential
from skiff.engine.network.fetching import FetchNamespace
from skiff.errors import GitRepoUnreachable, RegistryUnreachable
from skiff.settings import NetworkSettings
from skiff.testing.catalog import PRIVATE_PASSWORD, PRIVATE_USER, BuiltImages
from skiff.testing.engine import wait_view
from skiff.testing.groups import group_spec
from skiff.testing.registry import free_port
from skiff.testing.waiting import eventually

pytestmark = pytest.mark.root

#: A link-local address: where clouds keep their metadata service.
LINK_LOCAL = "169.254.1.1"


@contextlib.contextmanager
def listening(host: str = "0.0.0.0") -> Iterator[socket.socket]:  # noqa: S104 -- every address
    """A socket listening on the node (every address by default), that accepts nothing."""
    with socket.socket() as s:
        s.bind((host, 0))
        s.listen(16)
        s.setblocking(False)
        yield s


def connections(listener: socket.socket) -> int:
    """How many connections reached ``listener`` (each accepted and closed)."""
    count = 0
    while True:
        try:
            conn, _ = listener.accept()
        except BlockingIOError:
            return count
        conn.close()
        count += 1


def node_address() -> str | None:
    """A non-loopback address of this node: the source of its default route, if any."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.123", 9))  # no packet is sent
        except OSError:
            return None
        address: str = s.getsockname()[0]
    return None if address.startswith("127.") else address


def test_image_references_reach_no_port_of_the_node(engine: Supervisor) -> None:
    """An open port of the node (on loopback or its own address), a closed port and a
    link-local address fail the pull with one text, and the open port sees no connection."""
    with listening() as listener:
        port = listener.getsockname()[1]
        hosts = [f"127.0.0.1:{port}", f"127.0.0.1:{free_port()}", f"{LINK_LOCAL}:{port}",
                 f"localhost:{port}"]
        if (own := node_address()) is not None:
            hosts.append(f"{own}:{port}")
        texts = set()
        for host in hosts:
            with pytest.raises(RegistryUnreachable) as caught:
                engine.images.pull(f"{host}/team/app:1")
            texts.add(caught.value.message.replace(host, "HOST"))
        assert texts == {"the registry HOST cannot be reached for image HOST/team/app:1: "
                         "connection failed"}
        assert connections(listener) == 0


def test_a_group_whose_image_is_on_a_node_port_fails_without_reaching_it(
    engine: Supervisor
) -> None:
    """A group's image on an open loopback port of the node: the group reports the
    registry unreachable, and the port never sees a connection."""
    with listening("127.0.0.1") as listener:
        image = f"127.0.0.1:{listener.getsockname()[1]}/team/app:1"
        spec = group_spec(Container(name="c", image=image, command=("true",)))
        engine.run(spec)

        def told(view: object) -> bool:
            return "connection failed" in repr(view)

        view = wait_view(engine, spec.id, told)
        assert f"the registry 127.0.0.1:{listener.getsockname()[1]} cannot be reached" \
            in repr(view)
        assert connections(listener) == 0


def test_allowed_registries_are_pulled_from(engine: Supervisor, images: BuiltImages) -> None:
    """The endpoints the node allows (the session's registries) work, credentials too."""
    assert engine.images.pull(images.bb).digest
    creds = [RegistryCredential(images.private.host, PRIVATE_USER, PRIVATE_PASSWORD)]
    assert engine.images.pull(images.private_bb, creds).digest


class _Redirect(http.server.BaseHTTPRequestHandler):
    """Answers every request with a 307 to ``target`` (set per server)."""

    target = ""
    seen = 0

    def do_GET(self) -> None:  # http.server calls it by this name
        type(self).seen += 1
        self.send_response(307)
        self.send_header("Location", self.target + self.path)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_a_redirect_to_another_node_port_is_not_followed_there(engine: Supervisor) -> None:
    """An allowed registry that redirects (307) to another loopback port of the node: skopeo
    follows it inside the namespace, where that port is closed; the port sees nothing."""
    with listening("127.0.0.1") as hidden:
        hidden_port = hidden.getsockname()[1]

        class Redirect(_Redirect):
            target = f"http://127.0.0.1:{hidden_port}"

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Redirect)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            host = f"127.0.0.1:{server.server_address[1]}"
            engine.fetching.allow(host)
            with pytest.raises(RegistryUnreachable, match="connection failed"):
                engine.images.pull(f"{host}/team/app:1")
            assert Redirect.seen >= 1  # the redirect was served
            assert connections(hidden) == 0
        finally:
            server.shutdown()
            server.server_close()
            thread.join()


def test_git_urls_reach_no_port_of_the_node(engine: Supervisor) -> None:
    """gitRepo URLs on an open port of the node (git://, http://), a closed port and a
    link-local address fail with one text; the open port sees no connection."""
    with listening() as listener:
        port = listener.getsockname()[1]
        urls = [f"git://127.0.0.1:{port}/repo.git", f"http://127.0.0.1:{port}/repo.git",
                f"http://127.0.0.1:{free_port()}/repo.git", f"http://{LINK_LOCAL}:{port}/r.git"]
        if (own := node_address()) is not None:
            urls.append(f"https://{own}:{port}/repo.git")
        texts = set()
        for url in urls:
            with pytest.raises(GitRepoUnreachable) as caught:
                engine.volumes.prepare("fetch-test", [Volume("src", GitRepoVolume(url))])
            texts.add(caught.value.message.replace(url, "URL"))
        assert texts == {"gitRepo volume 'src': cannot clone URL: connection failed"}
        assert connections(listener) == 0
    engine.volumes.cleanup("fetch-test")


def test_the_namespace_goes_with_the_node_and_a_crashed_ones_is_replaced(tmp_path: Path) -> None:
    """close() removes the namespace, veth and rules; a namespace a crash left on the same
    data root is replaced by the next node's."""
    first = FetchNamespace(tmp_path / "root", NetworkSettings())
    first.ensure()  # and never closed: a crash
    second = FetchNamespace(tmp_path / "root", NetworkSettings())
    try:
        second.ensure()
        done = subprocess.run(second.command(["ip", "-br", "link"]), capture_output=True,
                              text=True, check=True)
        assert "fetch0" in done.stdout
    finally:
        second.close()
    assert not second.path.exists()
    link = subprocess.run(["ip", "link", "show", second.veth], capture_output=True, check=False)
    assert link.returncode != 0
    table = subprocess.run(["nft", "list", "table", "inet", second.table], capture_output=True,
                           check=False)
    assert table.returncode != 0


def test_a_loopback_resolver_is_relayed_into_the_namespace(tmp_path: Path) -> None:
    """A host whose resolver is a loopback stub (systemd-resolved's 127.0.0.53): fetches
    reach it over UDP and TCP on port 53 through the relay, and nothing else of loopback."""
    resolver = "127.0.0.77"
    conf = tmp_path / "resolv.conf"
    conf.write_text(f"nameserver {resolver}\n")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp, socket.socket() as tcp:
        udp.bind((resolver, 53))
        tcp.bind((resolver, 53))
        tcp.listen(4)
        udp.settimeout(10)
        fetch = FetchNamespace(tmp_path / "root", NetworkSettings(resolv_conf=conf))
        try:
            probe = ("import socket\n"
                     f"u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.settimeout(10)\n"
                     f"u.sendto(b'query', ('{resolver}', 53)); print(u.recv(100).decode())\n"
                     f"socket.create_connection(('{resolver}', 53), timeout=10).close()\n"
                     "try:\n"
                     f"    socket.create_connection(('{resolver}', 54), timeout=10)\n"
                     "except ConnectionRefusedError:\n"
                     "    print('54 refused')\n")
            child = subprocess.Popen(fetch.command(["python3", "-c", probe]),
                                     stdout=subprocess.PIPE, text=True)
            query, client = udp.recvfrom(100)
            udp.sendto(b"answer to " + query, client)
            out, _ = child.communicate(timeout=20)
        finally:
            fetch.close()
        assert out.split("\n")[:2] == ["answer to query", "54 refused"]
        tcp.setblocking(False)  # the relay's connection for the probe's, made meanwhile:
        eventually(lambda: connections(tcp) == 1, what="the relay reaches TCP 53", timeout_s=10)
