"""The operator's Prometheus endpoint, and the API latency it reports.

``GET /metrics`` on the API's address answers the control plane's metrics
(:class:`~skiff.control.telemetry.Telemetry`) in Prometheus' text format, to the node's
admin token only: they name every tenant's groups. With
``MetricsSettings.listen`` (``skiff serve --metrics-listen``) they are served on a
plain-HTTP address of their own too, for a scraper without a token (bind it to
loopback or a management network). :class:`RequestTimer` times every API answer
(by method, route template and status code: a bounded set of labels).
"""

from __future__ import annotations

import time
from wsgiref.simple_server import WSGIServer

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest, start_http_server
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from skiff.api.context import Admin, plane
from skiff.control.telemetry import Telemetry
from skiff.errors import NetworkError

router = APIRouter()


@router.get("/metrics", include_in_schema=False)
def prometheus_metrics(request: Request, caller: Admin) -> Response:
    """The control plane's metrics in Prometheus' text format (the admin token)."""
    return Response(generate_latest(plane(request).telemetry.registry),
                    media_type=CONTENT_TYPE_LATEST)


class RequestTimer:
    """ASGI middleware: each HTTP answer's latency into ``skiff_api_request_seconds``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        begun = time.perf_counter()
        status = [500]

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            telemetry: Telemetry = scope["app"].state.plane.telemetry
            telemetry.api_seconds.labels(scope["method"], template, str(status[0])).observe(
                time.perf_counter() - begun)


def serve_metrics(listen: str, telemetry: Telemetry) -> WSGIServer:
    """Serve ``telemetry`` on ``listen`` (``HOST:PORT``, plain HTTP), in a thread; the
    server is returned for its ``shutdown()``."""
    host, _, port = listen.rpartition(":")
    try:
        server, _ = start_http_server(int(port), addr=host.strip("[]") or "127.0.0.1",
                                      registry=telemetry.registry)
    except (OSError, ValueError) as exc:
        raise NetworkError(f"cannot serve Prometheus metrics on {listen}: {exc}") from exc
    return server
