"""The API in process, for unit tests without root: the app over a real SQLite store, the
FakeEngine and a running reconcile loop, and a client on httpx's ASGI transport.

Requests run on one event loop in a thread of its own (an anyio blocking portal), as a
server's would, while the test and the reconcile loop's workers run in theirs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from anyio.from_thread import BlockingPortal
from fastapi import FastAPI

from skiff.api.app import create_app
from skiff.api.context import ControlPlane
from skiff.api.groups import admission_for
from skiff.api.ngroups import attach_ngroups
from skiff.api.standby import standby_pools
from skiff.api.tls import ensure_certificates
from skiff.control.capacity import node_admission
from skiff.control.identities import GroupIdentities
from skiff.control.identity import ManagedIdentityTokens
from skiff.control.metering import Meter
from skiff.control.reconciler import Reconciler
from skiff.control.sampling import Sampler
from skiff.control.storage import StorageService, default_file_endpoint
from skiff.control.telemetry import Telemetry
from skiff.models.activity import EventQuery
from skiff.settings import Settings
from skiff.store import Store
from skiff.store.timeseries import MetricsFile
from skiff.testing.fake import FakeEngine
from skiff.testing.fakedisks import FakeShareDisks
from skiff.testing.registry import free_port
from skiff.testing.waiting import eventually

#: The base URL the in-process app answers as (operation URLs start with it).
BASE = "https://skiff.test"


class InProcessClient:
    """httpx's AsyncClient on the app's ASGI transport, called from synchronous tests.

    ``suffix`` is appended to every URL (say ``?api-version=...``; joined with ``&`` to
    a URL that has a query already)."""

    def __init__(self, portal: BlockingPortal, app: FastAPI, token: str | None, *,
                 suffix: str = "") -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._portal = portal
        self._suffix = suffix
        self._client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                         base_url=BASE, headers=headers)

    def request(self, method: str, url: str, **options: Any) -> httpx.Response:
        response: httpx.Response = self._portal.call(
            functools.partial(self._client.request, method, self._url(url), **options))
        return response

    def _url(self, url: str) -> str:
        if "api-version=" in url and "api-version=" in self._suffix:
            return url  # the URL's own version (a type another version serves)
        if "?" in url and self._suffix.startswith("?"):
            return f"{url}&{self._suffix[1:]}"
        return url + self._suffix

    def get(self, url: str, **options: Any) -> httpx.Response:
        return self.request("GET", url, **options)

    def put(self, url: str, **options: Any) -> httpx.Response:
        return self.request("PUT", url, **options)

    def post(self, url: str, **options: Any) -> httpx.Response:
        return self.request("POST", url, **options)

    def delete(self, url: str, **options: Any) -> httpx.Response:
        return self.request("DELETE", url, **options)


@contextlib.contextmanager
def fake_plane(data_root: Path, settings: Settings | None = None, *,
               workers: int = 2, clock: Callable[[], float] = time.time
               ) -> Iterator[ControlPlane]:
    """A control plane over a new FakeEngine, fake share disks (directories under
    ``data_root/shares``) and a store in ``data_root``, its reconcile loop running;
    stopped and closed after. ``clock`` is the engine's: a test's clock plays its
    containers' time (their ``sleep``s end when the test moves it)."""
    settings = settings or Settings(data_root=data_root)
    store = Store(data_root / "skiff.db")
    engine = FakeEngine(clock=clock)
    telemetry = Telemetry()
    # Usage is metered as the loop runs groups; the meter's rounds run when a test calls
    # plane.reconciler.meter.tick().
    meter = Meter(store, engine, interval_s=0)
    reconciler = Reconciler(store, engine, workers=workers, telemetry=telemetry, meter=meter,
                            admission=node_admission(settings, engine))
    storage = StorageService(store, FakeShareDisks(data_root / "shares"),
                             file_endpoint=default_file_endpoint(settings.api))
    plane = ControlPlane(settings, store, engine, reconciler, BASE, storage=storage,
                         telemetry=telemetry)
    # Metrics are kept, but sampled only when a test calls plane.sampler.sample_once().
    plane.metrics = MetricsFile(data_root / "metrics.db")
    plane.sampler = Sampler(engine, plane.metrics, interval_s=0)
    telemetry.watch_node(store, plane.sampler, pools=lambda: {"network": 0})
    reconciler.service_log = plane.service_log
    plane.identities = GroupIdentities(store, ManagedIdentityTokens(plane.issuer, BASE))
    # NGroups' rounds run when a test calls plane.ngroups.run_round().
    attach_ngroups(plane, interval_s=0)
    # The standby pools' rounds run when a test calls plane.standby.run_round() (or a
    # claim kicks one).
    plane.standby = standby_pools(plane, functools.partial(admission_for, plane),
                                  interval_s=0)
    reconciler.start()
    try:
        yield plane
    finally:
        plane.standby.stop()
        reconciler.stop()
        store.close()
        plane.metrics.close()


@dataclasses.dataclass
class FakeHttps:
    """The app over a fake plane, served over real HTTPS on a loopback port."""

    plane: ControlPlane
    url: str
    ca: Path
    #: The app served (a test may add a route of its own).
    app: FastAPI


@contextlib.contextmanager
def fake_https(data_root: Path, *, clock: Callable[[], float] = time.time,
               settings: Settings | None = None) -> Iterator[FakeHttps]:
    """Serve a :func:`fake_plane` over HTTPS at ``https://127.0.0.1:PORT`` (its CA in
    ``data_root/ca.pem``), for clients that need a real server (az, the SDKs) but no
    engine; stopped after. ``clock``: the fake engine's (:func:`fake_plane`);
    ``settings``: the node's (its quotas, say; its ``data_root`` is made ``data_root``)."""
    port = free_port()
    data_root.mkdir(parents=True, exist_ok=True)
    files = ensure_certificates(data_root, "127.0.0.1")
    settings = dataclasses.replace(settings or Settings(), data_root=data_root)
    with fake_plane(data_root, settings, clock=clock) as plane:
        plane.base_url = f"https://127.0.0.1:{port}"
        app = create_app(plane)
        config = uvicorn.Config(app, host="127.0.0.1", port=port,
                                ssl_certfile=str(files.cert), ssl_keyfile=str(files.key),
                                log_level="warning", proxy_headers=False, lifespan="off",
                                timeout_graceful_shutdown=1)
        http = uvicorn.Server(config)
        thread = threading.Thread(target=http.run, name="skiff-fake-https", daemon=True)
        thread.start()
        try:
            eventually(lambda: http.started, what="the fake server listens", timeout_s=15)
            yield FakeHttps(plane, plane.base_url, files.ca, app)
        finally:
            http.should_exit = True
            thread.join(timeout=10)


def service_writes(store: Store, subscription: str, caller: str,
                   action: str) -> list[dict[str, Any]]:
    """The ``EndRequest`` events of ``subscription``'s activity log that accepted or
    answered ``caller``'s ``action`` (skiff's own writes: :mod:`skiff.control.servicelog`),
    oldest first; an operation's outcome is not among them."""
    found, _ = store.list_events(subscription, EventQuery(0.0, 2.0**40), limit=10_000)
    return [e for e in reversed(found) if e["caller"] == caller
            and e["operationName"]["value"] == action
            and e["eventName"]["value"] == "EndRequest" and e["subStatus"]["value"]]
