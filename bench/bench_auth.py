"""Sign-in and authorization benchmark.

Run: ``python3 bench/bench_auth.py [--rounds N]`` (no root: the API over the fake
engine, served over real HTTPS on a loopback port, :func:`skiff.testing.inprocess.
fake_https`). The timing client is a keep-alive httpx client in a process of its own,
so that its work does not share the server's interpreter lock. Figures are medians
(p50) and p90 over N rounds:

- a token request (client-credentials, form POST, a service principal's secret):
  target p50 <= 5 ms;
- the cost authorization adds to a GET of a container group with a principal's JWT:
  the GET timed with authorization as it is, then with
  :meth:`~skiff.control.access.Access.authorize` replaced by a no-op (the same server,
  alternating rounds); target <= 0.5 ms. The check alone (scope from the path, the
  cached grants, the role's action) is timed in process too, per call.
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from benchkit import lean_client, percentiles, running_group

SUB = "00000000-0000-0000-0000-0000000000be"
GROUP = (f"/subscriptions/{SUB}/resourceGroups/bench/providers/Microsoft.ContainerInstance/"
         "containerGroups/g")
API = "?api-version=2023-05-01"


def client_main(conn: Connection, url: str, ca: str, form: dict[str, str], tenant: str,
                rounds: int) -> None:
    """The timing client: token requests, then GETs (told when the server switches)."""
    import httpx

    lean_client()
    with httpx.Client(base_url=url, verify=ca, timeout=30) as http:
        token_ms = []
        for _ in range(rounds + 20):
            start = time.perf_counter()
            answer = http.post(f"/{tenant}/oauth2/v2.0/token", data=form)
            token_ms.append((time.perf_counter() - start) * 1000)
            assert answer.status_code == 200, answer.text
        token = answer.json()["access_token"]
        conn.send(token_ms[20:])
        headers = {"Authorization": f"Bearer {token}"}
        for _ in range(50):  # warm
            assert http.get(GROUP + API, headers=headers).status_code == 200
        while True:
            command = conn.recv()
            if command == "stop":
                return
            samples = []
            for _ in range(command):
                start = time.perf_counter()
                answer = http.get(GROUP + API, headers=headers)
                samples.append((time.perf_counter() - start) * 1000)
                assert answer.status_code == 200, answer.text
            conn.send(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=400)
    args = parser.parse_args()

    from skiff.control.access import scope_of
    from skiff.testing.inprocess import fake_https

    with tempfile.TemporaryDirectory() as tmp, fake_https(Path(tmp)) as server:
        plane = server.plane
        _, admin = plane.store.create_token(None, "admin")
        record, secret = plane.store.create_principal("bench")
        plane.store.put_assignment("00000000-0000-0000-0000-0000000000be",
                                   f"/subscriptions/{SUB}",
                                   "b24988ac-6180-42a0-ab88-20f7382dd24c", record.object_id,
                                   "ServicePrincipal")
        import httpx

        with httpx.Client(base_url=server.url, verify=str(server.ca),
                          headers={"Authorization": f"Bearer {admin}"}) as http:
            running_group(http, GROUP, {
                "location": "local", "properties": {
                    "osType": "Linux", "containers": [{"name": "c", "properties": {
                        "image": "registry.test/busybox:1", "command": ["sleep", "9"],
                        "resources": {"requests": {"cpu": 0.1, "memoryInGB": 0.1}}}}]}}, API)
        form = {"grant_type": "client_credentials", "client_id": record.app_id,
                "client_secret": secret, "scope": f"{server.url}/.default"}
        ours, theirs = multiprocessing.Pipe()
        ctx = multiprocessing.get_context("spawn")
        child = ctx.Process(target=client_main, args=(
            theirs, server.url, str(server.ca), form, plane.store.tenant_id(), args.rounds))
        child.start()
        try:
            token_ms = ours.recv()
            real = plane.access.authorize
            with_auth: list[float] = []
            without: list[float] = []
            chunk = 50
            for _ in range(max(1, args.rounds // chunk)):
                for samples, patched in ((with_auth, False), (without, True)):
                    if patched:
                        plane.access.authorize = lambda *_: None  # type: ignore[method-assign]
                    else:
                        plane.access.authorize = real  # type: ignore[method-assign]
                    ours.send(chunk)
                    samples.extend(ours.recv())
            plane.access.authorize = real  # type: ignore[method-assign]
            ours.send("stop")
        finally:
            child.join(timeout=30)
        # The check alone, in process.
        from skiff.control.access import Caller

        caller = Caller(record.object_id, record.app_id, "ServicePrincipal")
        action = "Microsoft.ContainerInstance/containerGroups/read"
        calls = 20000
        start = time.perf_counter()
        for _ in range(calls):
            plane.access.authorize(caller, action, scope_of(GROUP))
        check_us = (time.perf_counter() - start) / calls * 1e6
        token = httpx.post(f"{server.url}/{plane.store.tenant_id()}/oauth2/v2.0/token",
                           data=form, verify=str(server.ca)).json()["access_token"]
        plane.issuer.verify(token)
        start = time.perf_counter()
        for _ in range(calls):
            plane.issuer.verify(token)
        verify_us = (time.perf_counter() - start) / calls * 1e6

    report: dict[str, Any] = {}
    p50, p90 = percentiles(token_ms)
    report["token request"] = f"p50 {p50:.2f} ms, p90 {p90:.2f} ms (target p50 <= 5 ms)"
    a50, a90 = percentiles(with_auth)
    n50, n90 = percentiles(without)
    report["GET, authorized"] = f"p50 {a50:.3f} ms, p90 {a90:.3f} ms"
    report["GET, authorize() a no-op"] = f"p50 {n50:.3f} ms, p90 {n90:.3f} ms"
    report["added by authorization"] = (f"{a50 - n50:+.3f} ms p50 (target <= 0.5 ms); the "
                                        f"check alone {check_us:.1f} us a call")
    report["JWT check (cached)"] = f"{verify_us:.1f} us a call"
    width = max(len(k) for k in report)
    for key, value in report.items():
        print(f"{key:<{width}}  {value}")
    ok = p50 <= 5 and (a50 - n50) <= 0.5
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
