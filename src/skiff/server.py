"""``skiff serve``: the API, the store, the reconcile loop and the engine in one process.

On first start it makes the data root's CA and certificates, an admin
token (``<data root>/admin.token``, 0600) and the node key that seals the
store's secrets (``<data root>/keys/node.key``, or ``Settings.node_key``).
With ``DnsSettings.listen`` it also serves groups' name labels over DNS
(:mod:`skiff.control.names`), relaying other names to the host's resolvers.
SIGTERM stops the server, not the containers: conmon keeps them, and the next
start adopts them. It is bounded: uvicorn stops accepting and gives requests in
flight 5 s, then the reconcile loop gives the groups it is stopping or deleting
their containers' grace (``stop_grace_s``) and 5 s more (:meth:`Server.close`);
a delete not finished by then stays recorded in the store, and the next start
finishes it.

With ``--backend kubernetes`` (:func:`build`'s ``kube``) the groups run as Pods on a
cluster instead (:class:`skiff.kube.engine.KubeEngine`): the same API, store and
reconcile loop; what only a node has (group networks and their DNS resolver, the
169.254.169.254 identity endpoint and the API relay at the groups' gateways) is not
served. Groups with a managed identity get their tokens in the App Service protocol
(:mod:`skiff.metadata.appservice`) where ``--identity-url`` says how Pods reach skiff,
and the DNS server (``--dns-listen``) answers their names with their Services' load
balancer addresses, followed as the cloud gives them.

While it runs, the server holds ``<data root>/serve.lock`` (shared), which
``skiff node reset`` tries before it touches anything
(:func:`skiff.engine.locking.hold_serving`).
"""

from __future__ import annotations

import dataclasses
import functools
import gc
import ipaddress
import logging
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from wsgiref.simple_server import WSGIServer

import uvicorn
from fastapi import FastAPI

from skiff.api.app import create_app
from skiff.api.context import ControlPlane
from skiff.api.groups import admission_for
from skiff.api.ngroups import attach_ngroups
from skiff.api.prometheus import serve_metrics
from skiff.api.standby import standby_pools
from skiff.api.tls import ensure_address_certificate, ensure_certificates
from skiff.control.capacity import node_admission
from skiff.control.expiry import Expiry
from skiff.control.identities import GroupIdentities
from skiff.control.identity import ManagedIdentityTokens
from skiff.control.metering import Meter
from skiff.control.names import Names
from skiff.control.reconciler import Reconciler
from skiff.control.sampling import Sampler
from skiff.control.storage import FileEndpoint, StorageService
from skiff.control.telemetry import Telemetry
from skiff.core.identity import IdentityTokens
from skiff.core.shares import FileShares, ShareDisks
from skiff.dns import DnsServer, Zone, host_nameservers
from skiff.engine.gpus import summary as gpu_summary
from skiff.engine.group.supervisor import Supervisor
from skiff.engine.locking import hold_serving
from skiff.engine.shares import LoopShares
from skiff.errors import NetworkError, SkiffError
from skiff.files import serving as files_serving
from skiff.files.serving import FilesServer
from skiff.gateway import ApiRelay
from skiff.metadata import MetadataEndpoint
from skiff.metadata.appservice import AppServiceEndpoint, serve_plain
from skiff.portal import mount as mount_portal
from skiff.settings import Settings
from skiff.store import Store
from skiff.store.timeseries import MetricsFile

if TYPE_CHECKING:
    from skiff.core.engine import Engine
    from skiff.core.spec import GroupSpec
    from skiff.kube.engine import KubeEngine, KubeSettings, Where

log = logging.getLogger(__name__)

#: What SIGTERM gives the groups being stopped or deleted beyond their containers' grace.
SHUTDOWN_MARGIN_S = 5.0


@dataclass
class Server:
    """A built control plane, ready to serve; :meth:`close` undoes :func:`build`."""

    plane: ControlPlane
    #: The local node's engine (the plane holds it as an :class:`~skiff.core.engine.Engine`);
    #: None with the kubernetes backend.
    node: Supervisor | None
    host: str
    port: int
    cert: Path
    key: Path
    #: The DNS server for name labels; None without ``DnsSettings.listen``.
    dns: DnsServer | None = None
    #: The descriptor holding the data root's serve lock (see :func:`hold_serving`).
    serving: int = -1
    #: The identity endpoint inside the groups (see :func:`serve_identities`).
    metadata: MetadataEndpoint | None = None
    #: The API at the groups' gateways; None unless ``ApiSettings.for_groups``.
    relay: ApiRelay | None = None
    #: The Prometheus endpoint's own listener (``MetricsSettings.listen``), once served.
    prometheus: WSGIServer | None = None
    #: The profiles' time to live (:mod:`skiff.control.expiry`), once started.
    expiry: Expiry | None = None
    #: The groups' token endpoint on a plain-HTTP address (``--identity-listen``).
    identity_http: WSGIServer | None = None

    def close(self) -> None:
        """Stop the loop (waiting for deletes in flight: their grace and 5 s more), the
        DNS server, the engine's watch and the store."""
        if self.plane.ngroups is not None:  # first: its rounds write through the loop
            self.plane.ngroups.stop()
        if self.expiry is not None:  # first: it hands the loop deletes
            self.expiry.stop()
        if self.plane.standby is not None:  # before the loop: it kicks the loop
            self.plane.standby.stop()
        self.plane.reconciler.stop(
            timeout_s=self.plane.settings.runtime.stop_grace_s + SHUTDOWN_MARGIN_S)
        if self.plane.sampler is not None:
            self.plane.sampler.stop()
        if self.plane.reconciler.meter is not None:
            self.plane.reconciler.meter.stop()
        if self.prometheus is not None:
            self.prometheus.shutdown()
            self.prometheus.server_close()
        if self.identity_http is not None:
            self.identity_http.shutdown()
            self.identity_http.server_close()
        if self.dns is not None:
            self.dns.stop()
        self.plane.engine.close()
        if self.node is not None:
            self.node.networks.close()
        if self.metadata is not None:
            self.metadata.close()
        if self.relay is not None:
            self.relay.close()
        self.plane.store.close()
        if self.plane.metrics is not None:
            self.plane.metrics.close()
        if self.serving >= 0:
            os.close(self.serving)
            self.serving = -1


def split_listen(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    return host, int(port)


def bind(listen: str) -> tuple[socket.socket, str]:
    """A listening TCP socket on ``listen`` (``HOST:PORT``), and ``listen`` with the port
    it got: port 0 asks the kernel for a free one, and that one is where clients (the
    banner, operation and websocket URLs) must be sent. NetworkError if it cannot."""
    host, port = split_listen(listen)
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise NetworkError(f"cannot listen on {listen}: {exc.strerror or exc}") from exc
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        sock.bind(address)
        sock.listen(2048)  # uvicorn's default backlog
    except OSError as exc:
        sock.close()
        raise NetworkError(f"cannot listen on {listen}: {exc.strerror or exc}") from exc
    bound = sock.getsockname()[1]
    return sock, f"{listen.rpartition(':')[0]}:{bound}"


def start_dns(settings: Settings) -> tuple[DnsServer | None, Zone | None]:
    """The DNS server for name labels, started, and its zone; (None, None) without
    ``DnsSettings.listen``. NetworkError if it cannot listen there."""
    if settings.dns.listen is None:
        return None, None
    host, port = split_listen(settings.dns.listen)
    # The SOA/NS glue must be an address clients reach: a wildcard is not one.
    ns_ip = "127.0.0.1" if ipaddress.ip_address(host).is_unspecified else host
    zone = Zone(settings.dns.zone, ttl=settings.dns.ttl, ns_ip=ns_ip)
    server = DnsServer([zone], listen=[(host, port)],
                       upstreams=host_nameservers(settings.network.resolv_conf),
                       max_tcp=settings.dns.max_tcp,
                       max_tcp_per_client=settings.dns.max_tcp_per_client,
                       tcp_idle_s=settings.dns.tcp_idle_s)
    server.start()
    return server, zone


def _serve_groups(dns: DnsServer, engine: Supervisor) -> None:
    """Answer the groups too: on port 53 of their gateway (resolv.conf cannot name a
    port), where their resolv.conf then points. Without it they use the host's."""
    try:
        # The bridge may not exist yet; subnets' gateways: those of the groups there.
        for gateway in engine.networks.gateways():
            dns.add_listener(gateway, 53, freebind=True)
    except SkiffError as exc:
        log.warning("groups keep the host's resolvers: %s", exc.message)
        return

    def serve(gateway: str) -> None:
        dns.add_listener(gateway, 53, freebind=True)

    def withdraw(gateway: str) -> None:
        dns.remove_listener(gateway, 53)  # its sockets are closed when it returns

    engine.networks.serve_dns = serve
    engine.networks.withdraw_dns = withdraw


def serve_api_to_groups(settings: Settings, engine: Supervisor, api_cert: Path,
                        host: str, port: int) -> ApiRelay:
    """The relay that serves the API (listening on ``host``:``port``) at every group's
    gateway, on the same port, opened with the first group of each network (see
    :mod:`skiff.gateway`)."""
    root = settings.data_root

    def certificates(address: str) -> tuple[Path, Path]:
        files = ensure_address_certificate(root, address)
        return files.cert, files.key

    relay = ApiRelay(port, (host, port), api_cert, certificates)

    def serve(gateway: str) -> bool:
        try:
            relay.serve(gateway)
        except (SkiffError, OSError) as exc:
            log.warning("the groups at %s do not reach the API: %s", gateway, exc)
            return False
        return True

    engine.networks.api_port = port
    engine.networks.serve_api = serve
    engine.networks.withdraw_api = relay.withdraw
    return relay


def serve_identities(store: Store, engine: Supervisor,
                     tokens: IdentityTokens) -> tuple[GroupIdentities, MetadataEndpoint]:
    """The groups' managed identities, and their identity endpoint served inside every
    group (opened with each group's network, withdrawn with it). ``tokens``: the API's
    own signer (:class:`~skiff.control.identity.ManagedIdentityTokens`), so that the API
    accepts a group's tokens for its identities."""
    identities = GroupIdentities(store, tokens)
    endpoint = MetadataEndpoint(identities.answer)
    engine.networks.serve_metadata = endpoint.serve
    engine.networks.withdraw_metadata = endpoint.withdraw
    return identities, endpoint


def ensure_admin_token(data_root: Path, store: Store) -> Path:
    """The admin token's file; made (with a new token) on first start."""
    path = data_root / "admin.token"
    if not path.exists():
        _, secret = store.create_token(None, "admin")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secret + "\n")
    return path


def build(settings: Settings, *, share_disks: ShareDisks | None = None,
          file_endpoint: FileEndpoint | None = None,
          kube: KubeSettings | None = None) -> Server:
    """Everything ``skiff serve`` runs, started except for the HTTP server itself.

    ``share_disks``: the node's storage of file shares (default: its loop-mounted
    share filesystems under the data root, :class:`~skiff.engine.shares.LoopShares`);
    ``file_endpoint``: an account's Azure Files URL (default: where ``settings.files``
    says the data plane listens, :func:`files_endpoint`; none when it is not served);
    ``kube``: run the groups on that Kubernetes cluster, not on this node."""
    root = settings.data_root
    root.mkdir(parents=True, exist_ok=True)
    os.chmod(root, 0o711)  # noqa: S103 -- others may traverse to ca.pem, nothing more
    serving = hold_serving(root)
    try:
        return _build(settings, serving, share_disks,
                      file_endpoint or (lambda account: files_endpoint(settings, account)),
                      kube)
    except BaseException:
        os.close(serving)
        raise


def kube_locate(store: Store, settings: Settings,
                identity: AppServiceEndpoint | None = None) -> Callable[[GroupSpec], Where]:
    """Where the kubernetes backend places a group, from its record: the namespace of its
    subscription and resource group, a LoadBalancer Service for ``ipAddress.type``
    Public, external-dns' name for its DNS name label, and for a group with a managed
    identity its token endpoint's URL and secret (from ``identity``; none without)."""
    from skiff.kube.engine import Where, default_locate
    from skiff.models import ContainerGroupBody
    from skiff.models.labels import fqdn, group_label

    def locate(spec: GroupSpec) -> Where:
        record = store.get_group_by_uid(spec.id)
        if record is None:
            return default_locate(spec)
        body = ContainerGroupBody.from_stored(record.body)
        ip = body.properties.ip_address
        label = group_label(body, tenant=settings.dns.tenant, subscription=record.subscription,
                            resource_group=record.resource_group, group_uid=record.uid)
        stored = record.body.get("identity") or {}
        has_identity = bool(stored.get("principalId") or stored.get("userAssignedIdentities"))
        return Where(subscription=record.subscription, resource_group=record.resource_group,
                     public=ip is not None and str(ip.type).lower() == "public",
                     dns_name=None if label is None else fqdn(label, record.location,
                                                              settings.dns.zone),
                     identity=(identity.endpoint(record.uid), identity.secret(record.uid))
                     if identity is not None and has_identity else None)

    return locate


def kube_recall(store: Store) -> Callable[[str], GroupSpec | None]:
    """The spec of a group from its record, for the kubernetes backend to make again a
    group whose anchor went behind its back: only a group deployed (its deployment not
    under way) that should run (desired running, not evicted); None otherwise, and for
    a group whose body or subnet no longer reads (the reconciler says why)."""
    from skiff.control.reconciler import subnet_placement
    from skiff.models import ContainerGroupBody, to_engine_spec

    def recall(group_id: str) -> GroupSpec | None:
        record = store.get_group_by_uid(group_id)
        if record is None or record.desired != "running" or record.evicted \
                or record.provisioning_state in ("Pending", "Creating"):
            return None
        try:
            body = ContainerGroupBody.from_stored(record.body)
            return to_engine_spec(body, group_id=record.uid, name=record.engine_name,
                                  subnet=subnet_placement(store, record))
        except SkiffError as exc:
            log.warning("container group %s cannot be made again from its record: %s",
                        record.name, exc.message)
            return None

    return recall


def cluster_gpu_words(engine: Engine) -> str:
    """The cluster's GPUs by SKU for serve's start-up line (``the cluster's GPUs: 8
    H100``); a cluster that does not answer is said so, not fatal here."""
    from skiff.core.gpus import describe

    try:
        return f"the cluster's GPUs: {describe(engine.capacity().gpu_skus)}"
    except SkiffError as exc:
        return f"the cluster's GPUs not read: {exc.message}"


def _kube_engine(kube: KubeSettings, store: Store, settings: Settings,
                 identity: AppServiceEndpoint | None) -> KubeEngine:
    from skiff.kube.engine import KubeEngine

    if kube.disk_bytes is None and settings.disks.group_bytes:
        kube = dataclasses.replace(kube, disk_bytes=settings.disks.group_bytes)
    return KubeEngine(kube, locate=kube_locate(store, settings, identity),
                      recall=kube_recall(store))


#: Why a group may not have a managed identity on a cluster without ``--identity-url``.
NO_IDENTITY_URL = ("Managed identities of container groups are not served by this server: "
                   "on its Kubernetes cluster the groups need a token endpoint they reach, "
                   "which the operator gives with skiff serve --identity-url.")


def serve_kube_identities(plane: ControlPlane, endpoint: AppServiceEndpoint | None) -> None:
    """The groups' identities on a cluster: tokens through ``endpoint`` (the App Service
    protocol; the API's listener serves it, :func:`start_identity_http` a plain-HTTP
    address), or, without one, groups asking for an identity refused."""
    plane.identities = GroupIdentities(
        plane.store, ManagedIdentityTokens(plane.issuer, plane.base_url),
        unserved=None if endpoint is not None else NO_IDENTITY_URL)
    plane.app_service = endpoint


def start_identity_http(server: Server, listen: str | None) -> WSGIServer | None:
    """The groups' token endpoint over plain HTTP on ``listen`` (``--identity-listen``),
    started and kept in ``server``; None without an address or an endpoint."""
    plane = server.plane
    if listen is None or plane.app_service is None or plane.identities is None:
        return None
    server.identity_http = serve_plain(listen, plane.app_service, plane.identities.answer)
    return server.identity_http


def follow_addresses(engine: KubeEngine, store: Store, reconciler: Reconciler,
                     names: Names) -> None:
    """Keep the groups' DNS names on their load balancers' addresses, which the cloud
    gives after the group was run (or moves): each change is published once the reconcile
    loop is idle on the group, so that a converge's own publishing never crosses it."""
    def moved(uid: str) -> None:
        reconciler.when_idle(uid, lambda: names.refresh(store, engine, uid))

    engine.on_address = moved


def _build(settings: Settings, serving: int, share_disks: ShareDisks | None,
           file_endpoint: FileEndpoint, kube: KubeSettings | None = None) -> Server:
    root = settings.data_root
    host, port = split_listen(settings.api.listen)
    if settings.api.tls_cert and settings.api.tls_key:
        cert, key = settings.api.tls_cert, settings.api.tls_key
    else:
        files = ensure_certificates(root, host)
        cert, key = files.cert, files.key
    store = Store(root / "skiff.db", key_path=settings.node_key)
    ensure_admin_token(root, store)
    if share_disks is None:
        shares = LoopShares(settings.shares_root, settings.shares)
        for failure in shares.mount_all():  # after a reboot, none is mounted
            log.warning("file share not mounted: %s", failure)
        share_disks = shares
    # Before the engine: its azureFile volumes ask the service (a ShareResolver) for keys.
    storage = StorageService(store, share_disks, file_endpoint=file_endpoint)
    storage.sweep()  # a crash between a share's row and its disk is put right
    node: Supervisor | None = None
    cluster: KubeEngine | None = None
    app_service: AppServiceEndpoint | None = None
    engine: Engine
    if kube is None:
        engine = node = Supervisor(settings, shares=share_disks, resolver=storage)
        if node.volumes.disks is not None:
            node.volumes.disks.kick()  # the first groups need not make their disks
    else:
        if settings.api.for_groups:
            store.close()
            raise NetworkError("--api-for-groups serves the API at the node's group "
                               "gateways: the kubernetes backend has none")
        try:
            if kube.identity_url is not None:
                app_service = AppServiceEndpoint.from_key_dir(store.key_path.parent,
                                                              kube.identity_url)
            engine = cluster = _kube_engine(kube, store, settings, app_service)
        except BaseException:
            store.close()
            raise
    try:
        dns, zone = start_dns(settings)
    except BaseException:
        engine.close()
        if node is not None:
            node.networks.close()
        store.close()
        raise
    if dns is not None and node is not None:
        _serve_groups(dns, node)
    telemetry = Telemetry()
    meter = Meter(store, engine, interval_s=settings.usage.interval_s)
    names = Names(settings.dns, zone)
    reconciler = Reconciler(store, engine, workers=settings.api.workers,
                            names=names, telemetry=telemetry, meter=meter,
                            admission=node_admission(settings, engine))
    if cluster is not None and zone is not None:
        follow_addresses(cluster, store, reconciler, names)
    public = "127.0.0.1" if host in ("0.0.0.0", "::") else host  # noqa: S104 -- a check
    base = f"https://[{public}]:{port}" if ":" in public else f"https://{public}:{port}"
    plane = ControlPlane(settings, store, engine, reconciler, base, storage=storage,
                         telemetry=telemetry)
    plane.metrics, plane.sampler = start_sampling(settings, engine)
    telemetry.watch_node(store, plane.sampler,
                         pools=lambda: {} if node is None else {"network": node.networks.pooled()})
    reconciler.service_log = plane.service_log
    metadata = None
    if node is not None:  # the identity endpoint is served at the node's group gateways
        plane.identities, metadata = serve_identities(
            store, node, ManagedIdentityTokens(plane.issuer, base))
    else:
        serve_kube_identities(plane, app_service)
    relay = None
    if settings.api.for_groups and node is not None:
        relay = serve_api_to_groups(settings, node, cert, public, port)
        plane.api_hosts = relay.hosts
        plane.relay_clients = relay.client_of
    plane.standby = standby_pools(plane, functools.partial(admission_for, plane))
    reconciler.start()
    meter.start()
    attach_ngroups(plane).start()
    plane.standby.start()
    server = Server(plane, node, host, port, cert, key, dns, serving, metadata, relay)
    server.expiry = Expiry(store, engine, reconciler, tenant_id=plane.issuer.tenant)
    server.expiry.start()
    return server


def start_sampling(settings: Settings, engine: Engine) -> tuple[MetricsFile, Sampler]:
    """The metrics' time-series file (``<data root>/metrics.db``) and its sampler, started
    unless ``settings.metrics.interval_s`` is 0."""
    config = settings.metrics
    series = MetricsFile(settings.data_root / "metrics.db",
                         full_retention_s=config.full_retention_s, rollup_s=config.rollup_s,
                         rollup_retention_s=config.rollup_retention_s)
    sampler = Sampler(engine, series, interval_s=config.interval_s)
    sampler.start()
    return series, sampler


def start_files(settings: Settings, shares: FileShares, cert: Path, key: Path, *,
                sock: socket.socket | None = None) -> FilesServer | None:
    """The Azure Files data plane on ``settings.files.listen`` (or the socket already
    bound there) over ``shares``, started; None without a listen address. NetworkError
    if it cannot listen."""
    if settings.files.listen is None:
        return None
    listen = settings.files.listen
    if sock is None:
        sock, listen = bind(listen)
    try:
        return files_serving.start(sock, listen, shares, cert=cert, key=key,
                                   public=settings.files.public_url,
                                   workers=settings.files.workers,
                                   per_client=settings.files.max_connections_per_client)
    except BaseException:
        sock.close()
        raise


def serving_app(plane: ControlPlane) -> FastAPI:
    """What the API's listener serves: the API, and the web portal under ``/portal``."""
    return mount_portal(create_app(plane))


def files_endpoint(settings: Settings, account: str) -> str | None:
    """An account's Azure Files endpoint (``primaryEndpoints.file``), path-style:
    ``https://HOST:PORT/<account>/``; None when the data plane is not served."""
    if settings.files.listen is None:
        return None
    return f"{files_serving.public_url(settings.files.listen, settings.files.public_url)}" \
        f"/{account}/"


def settle_heap() -> None:
    """Put what start-up made (modules, the app and its routes, models, the adopted
    groups) out of the cyclic collector's reach (:func:`gc.freeze`), once it is made.

    It lives as long as the server, yet a full collection walks all of it: requests that
    decode many objects (the portal's list of 1,000 groups decodes ≈ 34,000, 10,000 of
    them dicts and lists the collector tracks) make one every few such requests, a pause
    of ≈ 77 ms (130,000 objects at start-up) in whichever request it falls. After this, a
    full collection walks only what requests made since: a few ms."""
    gc.collect()
    gc.freeze()


def serve(settings: Settings, *, kube: KubeSettings | None = None) -> None:
    """Run the server until SIGTERM or SIGINT; containers keep running after. The Azure
    Files data plane is served too, over the storage service, on ``settings.files.listen``
    (bound first, so that the settings the plane is built with name its real port: an
    account's ``primaryEndpoints.file``), unless that is None. ``kube``: the groups run on
    that Kubernetes cluster (``skiff serve --backend kubernetes``)."""
    sock, listen = bind(settings.api.listen)
    files_sock: socket.socket | None = None
    try:
        settings = dataclasses.replace(settings,
                                       api=dataclasses.replace(settings.api, listen=listen))
        if settings.files.listen is not None:
            files_sock, files_listen = bind(settings.files.listen)
            settings = dataclasses.replace(
                settings, files=dataclasses.replace(settings.files, listen=files_listen))
        bound = settings
        server = build(settings, file_endpoint=lambda account: files_endpoint(bound, account),
                       kube=kube)
    except BaseException:
        sock.close()
        if files_sock is not None:
            files_sock.close()
        raise
    files: FilesServer | None = None
    try:
        if files_sock is not None:
            assert server.plane.storage is not None  # build() gives the plane its service
            files = start_files(settings, server.plane.storage, server.cert, server.key,
                                sock=files_sock)
            if files is not None:
                print(f"skiff: serving Azure Files at {files.url}/<account>", flush=True)
        if kube is not None and start_identity_http(server, kube.identity_listen) is not None:
            print(f"skiff: serving the groups' token endpoint over plain HTTP at "
                  f"{kube.identity_listen}", flush=True)
        if settings.metrics.listen is not None:
            server.prometheus = serve_metrics(settings.metrics.listen, server.plane.telemetry)
            print(f"skiff: serving Prometheus metrics at http://{settings.metrics.listen}"
                  "/metrics", flush=True)
        config = uvicorn.Config(serving_app(server.plane), host=server.host, port=server.port,
                                ssl_certfile=str(server.cert), ssl_keyfile=str(server.key),
                                log_level="warning", lifespan="off", ws="websockets-sansio",
                                proxy_headers=False,  # the client is the peer, not a header
                                timeout_graceful_shutdown=5)
        log.info("skiff serves %s", server.plane.base_url)
        # The node's NVIDIA GPUs, or the cluster's by SKU.
        gpus = (gpu_summary(server.node.gpus.gpus) if server.node is not None
                else cluster_gpu_words(server.plane.engine))
        log.info("GPUs: %s", gpus)
        print(f"skiff: serving {server.plane.base_url} (data root {settings.data_root}; "
              f"{gpus})", flush=True)
        settle_heap()
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        sock.close()
        if files is not None:
            files.close()
        elif files_sock is not None:
            files_sock.close()
        server.close()
