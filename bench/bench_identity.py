"""Identity endpoint benchmark: a token request as a group's container makes it.

Run: ``python3 bench/bench_identity.py [--rounds N]`` (no root needed). The endpoint
(:class:`~skiff.metadata.MetadataEndpoint`) answers over a real store and the node's
signer (its issuer, :class:`~skiff.control.identity.ManagedIdentityTokens`, RS256) for
a group with a system-assigned identity, on a loopback socket (the node serves the
sockets it makes in groups' namespaces the same way); the client opens a connection per
request, as IMDS clients do. Figures: p50 and p90 of a token request, target p50 <= 5 ms
(the token endpoint's).
"""

from __future__ import annotations

import argparse
import socket
import statistics
import tempfile
import time
from pathlib import Path

from anyio.from_thread import start_blocking_portal

from skiff.api.app import create_app
from skiff.metadata import MetadataEndpoint
from skiff.testing.inprocess import InProcessClient, fake_plane

REQUEST = (b"GET /metadata/identity/oauth2/token?api-version=2018-02-01"
           b"&resource=https%3A%2F%2Fmanagement.azure.com%2F HTTP/1.1\r\n"
           b"Host: 169.254.169.254\r\nMetadata: true\r\n\r\n")


def ask(port: int) -> float:
    start = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        conn.sendall(REQUEST)
        data = b""
        while chunk := conn.recv(65536):
            data += chunk
    elapsed = time.perf_counter() - start
    assert b" 200 " in data.split(b"\r\n", 1)[0], data[:200]
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=500)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp, fake_plane(Path(tmp)) as plane, \
            start_blocking_portal() as portal:
        _, secret = plane.store.create_token("sub", "bench")
        api = InProcessClient(portal, create_app(plane), secret, suffix="?api-version=2023-05-01")
        made = api.put("/subscriptions/sub/resourceGroups/rg/providers/"
                       "Microsoft.ContainerInstance/containerGroups/g", json={
                           "location": "local", "identity": {"type": "SystemAssigned"},
                           "properties": {"osType": "Linux", "containers": [{
                               "name": "c", "properties": {"image": "registry.test/b:1",
                                                           "resources": {"requests": {
                                                               "cpu": 0.1, "memoryInGB": 0.1}}}}]}})
        assert made.status_code == 201, made.text
        record = plane.store.get_group("sub", "rg", "g")
        assert record is not None
        assert plane.identities is not None
        endpoint = MetadataEndpoint(plane.identities.answer)
        try:
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            endpoint.serve(record.uid, sock)
            port = sock.getsockname()[1]
            ask(port)  # the signing key is made at the first token
            times = sorted(ask(port) for _ in range(args.rounds))
        finally:
            endpoint.close()
    p50, p90 = statistics.median(times), times[int(len(times) * 0.9)]
    print(f"token request over {args.rounds} rounds: p50 {p50 * 1000:.2f} ms, "
          f"p90 {p90 * 1000:.2f} ms (target p50 <= 5 ms)")


if __name__ == "__main__":
    main()
