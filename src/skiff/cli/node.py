"""Commands run on the node itself: ``skiff serve``, ``skiff token`` and ``skiff node``."""

from __future__ import annotations

import ipaddress
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import click

from skiff.settings import (
    DEFAULT_DATA_ROOT,
    QUOTA_FIELDS,
    ApiSettings,
    DiskSettings,
    DnsSettings,
    FilesSettings,
    MetricsSettings,
    NetworkSettings,
    PriceSheet,
    QuotaSettings,
    RuntimeSettings,
    Settings,
    ShareSettings,
    UsageSettings,
)

if TYPE_CHECKING:
    from skiff.kube.engine import KubeSettings

#: ``--userns-remap`` given alone: 65536 ids (a whole 16-bit range, what images use)
#: from 100000, above the ids of the host's users (useradd's default subuid start).
USERNS_DEFAULT = "100000:65536"

_DATA_ROOT = click.option("--data-root", type=click.Path(path_type=Path),
                          default=DEFAULT_DATA_ROOT, show_default=True, envvar="SKIFF_DATA_ROOT",
                          help="Where skiff keeps its state.")
_NODE_KEY = click.option("--node-key", type=click.Path(dir_okay=False, path_type=Path),
                         default=None, envvar="SKIFF_NODE_KEY",
                         help="The node key that seals the store's secrets (made on first "
                              "start); default: DATA_ROOT/keys/node.key. Back it up apart "
                              "from the database: without it the secrets are lost.")


@click.command()
@_DATA_ROOT
@_NODE_KEY
@click.option("--listen", default=ApiSettings.listen, show_default=True, metavar="HOST:PORT",
              help="Where the HTTPS API listens (port 0: a free one, printed at start).")
@click.option("--location", default=ApiSettings.location, show_default=True,
              help="The node's own location (region) name: that of resources that name "
                   "none.")
@click.option("--locations", "locations", default=None, metavar="NAME[,NAME...]",
              help="The other location names resources may be created in, each an alias "
                   "of this node (a resource keeps the name it was given); default: every "
                   "public Azure region name (eastus, westeurope, ...), so that bodies "
                   "written for Azure are placed here as they are. Any other name is "
                   "refused with 400 LocationNotAvailableForResourceType.")
@click.option("--dns-listen", default=None, metavar="HOST:PORT",
              help="Serve groups' dnsNameLabel names over DNS (UDP and TCP) here; "
                   "default: no DNS server.")
@click.option("--dns-zone", default=DnsSettings.zone, show_default=True,
              help="The zone groups are named in: <label>.<location>.<zone>.")
@click.option("--tls-cert", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="An operator's certificate instead of skiff's own CA's.")
@click.option("--tls-key", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The key of --tls-cert.")
@click.option("--overcommit", type=float, default=ApiSettings.overcommit, show_default=True,
              help="Admit groups up to this many times the host's CPUs and memory.")
@click.option("--quota", "quotas", multiple=True, metavar="[SUBSCRIPTION/]NAME=LIMIT",
              help="A quota every subscription has (NAME=LIMIT), or one subscription's own "
                   "(SUBSCRIPTION/NAME=LIMIT), repeatable. Names and ACI's defaults: "
                   "ContainerGroups=100, StandardCores=100 (cores of running Regular groups), "
                   "StandardSpotCores=100 (of running Spot groups), "
                   "ContainerGroupCreatesPer5Minutes=100, ContainerGroupCreatesPerHour=300, "
                   "ContainerGroupDeletesPer5Minutes=100, ContainerGroupDeletesPerHour=300. "
                   "Past one, a request is refused with 400 ContainerGroupQuotaReached; "
                   "locations/{l}/usages shows each.")
@click.option("--allow-privileged", is_flag=True,
              help="Admit containers with securityContext.privileged and capabilities that "
                   "act on the host's kernel (SYS_ADMIN, ...): root on the host. Only where "
                   "every tenant is trusted with it; default: refused with 400.")
@click.option("--userns-remap", default=None, is_flag=False, flag_value=USERNS_DEFAULT,
              metavar="FIRST:COUNT",
              help="Run each (unprivileged) container in a user namespace: its ids 0..COUNT-1 "
                   f"are host ids FIRST.., so its root is no root on the host (given alone: "
                   f"{USERNS_DEFAULT}). Needs Linux 5.19+ (idmapped overlay layers).")
@click.option("--default-isolation", type=click.Choice(["container", "sandbox"],
                                                      case_sensitive=False),
              default="container", show_default=True,
              help="How groups that do not choose (properties.isolation) are isolated: "
                   "container (runc, hardened) or sandbox (one gVisor sandbox per group).")
@click.option("--public-subnet", default=None, metavar="CIDR",
              help="The range public groups get addresses from; default: a /23 in "
                   "10.89.0.0-10.95.255.255, NATed, reached from this host.")
@click.option("--public-interface", default=None, metavar="IFACE",
              help="Make --public-subnet routable on this interface: no NAT, proxy ARP "
                   "answers for the groups' addresses, so other machines on its link reach "
                   "groups directly. The range must be free addresses of that link.")
@click.option("--public-cached-image", "public_cached_images", multiple=True, metavar="REF",
              help="An image every tenant may see in cachedImages once it is in the node's "
                   "cache (repeatable); other cached images are listed only to the "
                   "subscriptions whose groups use them.")
@click.option("--allow-local-endpoint", "allow_local_endpoints", multiple=True,
              metavar="HOST:PORT",
              help="An endpoint on this node (an IP address or localhost, and a port) that "
                   "tenants' image pulls and gitRepo clones may reach, such as a local "
                   "registry (repeatable). Every other address of the node, loopback and "
                   "link-local is out of their reach.")
@click.option("--group-disk-gb", type=float, default=DiskSettings.group_gb, show_default=True,
              help="What one group may write on the node's disk, in GB: its containers' "
                   "root filesystems and its emptyDir volumes together, on a sparse "
                   "filesystem of its own (a write beyond fails with ENOSPC). At most 50 "
                   "(ACI's limit); 0: no limit.")
@click.option("--files-listen", default=FilesSettings.listen, show_default=True,
              metavar="HOST:PORT",
              help="Where the Azure Files data plane listens (HTTPS, the API's certificate; "
                   "port 0: a free one; 'none': not served). Clients address an account "
                   "path-style: https://HOST:PORT/<account>.")
@click.option("--files-url", default=None, metavar="URL",
              help="The data plane's URL base as clients reach it (https://HOST:PORT), "
                   "answered in accounts' primaryEndpoints.file; default: from "
                   "--files-listen.")
@click.option("--files-connections-per-client", type=click.IntRange(min=1),
              default=FilesSettings.max_connections_per_client, show_default=True,
              help="Connections the data plane serves at once from one client address "
                   "(processes on the node all come from 127.0.0.1); beyond, a new one's "
                   "requests are answered 503 ServerBusy, which clients retry.")
@click.option("--share-overcommit", type=float, default=ShareSettings.overcommit,
              show_default=True,
              help="How far the file shares' quotas together may pass the disk they could "
                   "use (the data root's free disk): shares are sparse and most hold a "
                   "small part of their quota (Azure's default is 5120 GiB). A share's data "
                   "lives in DATA_ROOT/shares, one filesystem of its quota each. 1: none.")
@click.option("--api-for-groups", is_flag=True,
              help="Let the groups reach this API at their gateway, https://<gateway>:"
                   "<API port>/ (a relay per gateway, with a certificate of skiff's CA, "
                   "DATA_ROOT/ca.pem), so that a group's managed identity can call it "
                   "with the roles assigned to it. Default: groups reach only DNS on the "
                   "node.")
@click.option("--metrics-interval", type=click.FloatRange(min=0),
              default=MetricsSettings.interval_s, show_default=True, metavar="SECONDS",
              help="Seconds between two samples of every running container's CPU, memory "
                   "and network (Microsoft.Insights metrics; `skiff monitor metrics list`), "
                   "kept 24 h as sampled and 30 days in 5-minute points in "
                   "DATA_ROOT/metrics.db. 0: not sampled.")
@click.option("--metrics-listen", default=None, metavar="HOST:PORT",
              help="Also serve the Prometheus endpoint (/metrics: groups by state, starts, "
                   "start and API latency, pool sizes, containers' CPU and memory) over "
                   "plain HTTP here, without a token. Default: only on the API's address, "
                   "GET /metrics with the admin token.")
@click.option("--meter-interval", type=click.FloatRange(min=0),
              default=UsageSettings.interval_s, show_default=True, metavar="SECONDS",
              help="Seconds between two rounds of the usage meter (`skiff usage show`, "
                   "Microsoft.CostManagement/query): the most a crash of the server loses "
                   "of a group that does not outlive it. 0: no rounds (groups are still "
                   "billed from deployment to stop).")
@click.option("--prices", "prices_file", type=click.Path(dir_okay=False, path_type=Path),
              metavar="FILE",
              help="A JSON price sheet: {\"currency\": \"USD\", \"vcpuSecond\": ..., "
                   "\"gbSecond\": ..., \"gpuSecond\": ..., \"spotVcpuSecond\": ..., "
                   "\"spotGbSecond\": ...} (a key left out keeps its default). Default: "
                   "ACI's Linux pay-as-you-go prices in East US, Spot groups' 70% off.")
@click.option("--log-format", type=click.Choice(["text", "json"], case_sensitive=False),
              default="text", show_default=True,
              help="How the server logs (to stderr): text lines, or JSON lines (time, "
                   "level, logger, message, and the request_id and correlation_id of the "
                   "request a line is about: the x-ms-request-id and "
                   "x-ms-correlation-request-id its answer carried).")
@click.option("--backend", type=click.Choice(["local", "kubernetes"], case_sensitive=False),
              default="local", show_default=True,
              help="Where groups run: local (runc and gVisor on this node) or kubernetes "
                   "(Pods on a cluster you run, through the official client; needs "
                   "`pip install skiff[kube]`). The API, store and portal are the same.")
@click.option("--kubeconfig", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=None,
              help="--backend kubernetes: the kubeconfig file (default: $KUBECONFIG, "
                   "~/.kube/config, or the service account when skiff runs in the cluster).")
@click.option("--context", "kube_context", default=None,
              help="--backend kubernetes: the kubeconfig's context (default: its current).")
@click.option("--namespace-prefix", default="skiff", show_default=True,
              help="--backend kubernetes: the prefix of the namespaces skiff makes and "
                   "labels, one per subscription and resource group.")
@click.option("--runtime-class", default="gvisor", show_default=True,
              help="--backend kubernetes: the RuntimeClass of isolation Sandbox groups (the "
                   "cluster's gVisor one); without it on the cluster they are refused.")
@click.option("--git-image", default="docker.io/alpine/git", show_default=True,
              help="--backend kubernetes: the image of the init containers that clone "
                   "gitRepo volumes (pin a tag or digest your cluster may pull).")
@click.option("--identity-url", default=None, metavar="URL",
              help="--backend kubernetes: where the Pods reach skiff's token endpoint for "
                   "their managed identities (https://skiff.example:8443: the API's listener, "
                   "whose certificate the images must trust; http://HOST:PORT: the "
                   "--identity-listen address). A group with an identity gets "
                   "IDENTITY_ENDPOINT=URL/identity/<group uid>/token and IDENTITY_HEADER (its "
                   "secret, through its env Secret): the App Service protocol that "
                   "azure-identity, MSAL and az login --identity read. Default: none, and "
                   "groups asking for an identity are refused (400).")
@click.option("--identity-listen", default=None, metavar="HOST:PORT",
              help="--backend kubernetes: also serve the token endpoint alone over plain "
                   "HTTP here, for an http:// --identity-url. Tokens and the groups' "
                   "secrets cross that path in clear: bind it where only the cluster's Pods "
                   "reach it (a private network, a Service in front).")
@click.option("--verbose", "-v", is_flag=True,
              help="Log what the server does, a line per request included.")
def serve(data_root: Path, node_key: Path | None, listen: str, location: str,
          locations: str | None, dns_listen: str | None, dns_zone: str,
          tls_cert: Path | None, tls_key: Path | None,
          overcommit: float, quotas: tuple[str, ...],
          allow_privileged: bool, userns_remap: str | None, default_isolation: str,
          public_subnet: str | None, public_interface: str | None,
          public_cached_images: tuple[str, ...], allow_local_endpoints: tuple[str, ...],
          group_disk_gb: float, files_listen: str, files_url: str | None,
          files_connections_per_client: int, share_overcommit: float,
          api_for_groups: bool, metrics_interval: float, metrics_listen: str | None,
          meter_interval: float, prices_file: Path | None, log_format: str,
          backend: str, kubeconfig: Path | None, kube_context: str | None,
          namespace_prefix: str, runtime_class: str, git_image: str,
          identity_url: str | None, identity_listen: str | None,
          verbose: bool) -> None:
    """Run the ACI API and the local engine on embedded defaults.

    With --backend kubernetes the groups run as Pods on a Kubernetes cluster instead
    (one namespace per subscription and resource group, made and labelled by skiff;
    each group's objects owned by one anchor ConfigMap), watched, not polled; a Pod
    deleted behind skiff's back is made again. The node's own services for groups
    (--api-for-groups, 169.254.169.254, DNS at their gateways) are not served there:
    managed identities get tokens through --identity-url (the App Service protocol),
    and --dns-listen answers name labels with the Services' load balancer addresses.

    On first start: a CA (DATA_ROOT/ca.pem, for clients to trust), a server
    certificate, an admin token (DATA_ROOT/admin.token) and the node key that
    seals the store's secrets (--node-key). SIGTERM stops the
    server; the containers keep running and are adopted at the next start.
    The web portal is served on the same listener, at https://LISTEN/portal/
    (sign in with a token, e.g. the admin token).

    The node's NVIDIA GPUs are found with nvidia-smi at start (the start-up line
    names them; none without a driver) and given to containers that request
    them (resources.requests.gpu: count and sku, as H100, A100, L4 or ACI's
    K80, P100, V100; the capabilities API lists the node's).
    """
    from skiff.api.logs import configure
    from skiff.errors import NetworkError
    from skiff.server import serve as run_server

    configure("json" if log_format.lower() == "json" else "text", verbose=verbose)
    if (tls_cert is None) != (tls_key is None):
        raise click.UsageError("--tls-cert and --tls-key go together")
    if dns_listen is not None:
        _check_dns_listen(dns_listen)
    if api_for_groups and listen.rpartition(":")[0].strip("[]") in ("0.0.0.0", "::"):  # noqa: S104
        raise click.UsageError("--api-for-groups needs --listen on one address (the "
                               "loopback, say): the groups' gateways get the API's port")
    if metrics_listen is not None:
        _check_dns_listen(metrics_listen, option="--metrics-listen")
    api = ApiSettings(listen=listen, location=location,
                      locations=_parse_locations(locations), tls_cert=tls_cert, tls_key=tls_key,
                      overcommit=overcommit, allow_privileged=allow_privileged,
                      default_isolation=default_isolation.capitalize(),
                      public_cached_images=_check_images(public_cached_images),
                      for_groups=api_for_groups)
    dns = DnsSettings(listen=dns_listen, zone=dns_zone)
    runtime = RuntimeSettings(userns=parse_userns(userns_remap) if userns_remap else None)
    if public_interface is not None and public_subnet is None:
        raise click.UsageError("--public-interface needs --public-subnet: the range of its "
                               "link that groups may use")
    if public_subnet is not None:
        try:
            ipaddress.IPv4Network(public_subnet)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--public-subnet") from None
    network = NetworkSettings(subnet=public_subnet, public_interface=public_interface,
                              allow_local_endpoints=_check_endpoints(allow_local_endpoints))
    try:
        disks = DiskSettings(group_gb=group_disk_gb)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--group-disk-gb") from None
    try:
        shares = ShareSettings(overcommit=share_overcommit)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--share-overcommit") from None
    usage = UsageSettings(interval_s=meter_interval, prices=_prices(prices_file))
    kube = _kube_settings(backend, kubeconfig, kube_context, namespace_prefix,
                          runtime_class, git_image, identity_url, identity_listen)
    from skiff.errors import ClusterError, InvalidInput, NodeBusy

    try:
        files = FilesSettings(
            listen=None if files_listen.lower() == "none" else files_listen,
            public_url=files_url, max_connections_per_client=files_connections_per_client)
        metrics = MetricsSettings(interval_s=metrics_interval, listen=metrics_listen)
        settings = Settings(data_root=data_root, node_key=node_key, api=api, dns=dns,
                            runtime=runtime, network=network, disks=disks, files=files,
                            shares=shares, metrics=metrics, quotas=parse_quotas(quotas),
                            usage=usage)
        if kube is None:
            run_server(settings)
        else:
            run_server(settings, kube=kube)
    except NetworkError as exc:  # the API's or the DNS server's address is taken
        raise click.ClickException(exc.message) from exc
    except (ClusterError, InvalidInput) as exc:  # the cluster cannot be reached or used
        raise click.ClickException(exc.message) from None
    except NodeBusy as exc:
        raise click.ClickException(exc.message) from None


def _kube_settings(backend: str, kubeconfig: Path | None, context: str | None,
                   namespace_prefix: str, runtime_class: str, git_image: str,
                   identity_url: str | None = None,
                   identity_listen: str | None = None) -> KubeSettings | None:
    """The kubernetes backend's settings, or None for the local one (the kube options are
    refused there, rather than silently ignored)."""
    if backend.lower() != "kubernetes":
        given = [name for name, value, default in (
            ("--kubeconfig", kubeconfig, None), ("--context", context, None),
            ("--namespace-prefix", namespace_prefix, "skiff"),
            ("--runtime-class", runtime_class, "gvisor"),
            ("--git-image", git_image, "docker.io/alpine/git"),
            ("--identity-url", identity_url, None),
            ("--identity-listen", identity_listen, None)) if value != default]
        if given:
            raise click.UsageError(f"{given[0]} needs --backend kubernetes")
        return None
    try:
        import kubernetes  # noqa: F401 -- present, or said plainly
    except ImportError:
        raise click.ClickException("--backend kubernetes needs the official Kubernetes "
                                   "client: pip install 'skiff[kube]'") from None
    from skiff.core.reference import parse as parse_reference
    from skiff.errors import InvalidInput
    from skiff.kube import naming
    from skiff.kube.engine import KubeSettings

    try:
        naming.check_prefix(namespace_prefix)
        parse_reference(git_image)
    except InvalidInput as exc:
        raise click.BadParameter(exc.message) from None
    if not naming.is_subdomain(runtime_class):
        raise click.BadParameter(f"{runtime_class[:80]!r} is not a RuntimeClass name (a "
                                 "DNS-1123 subdomain)", param_hint="--runtime-class")
    _check_identity_url(identity_url, identity_listen)
    return KubeSettings(kubeconfig=kubeconfig, context=context,
                        namespace_prefix=namespace_prefix, runtime_class=runtime_class,
                        git_image=git_image,
                        identity_url=identity_url.rstrip("/") if identity_url else None,
                        identity_listen=identity_listen)


def _check_identity_url(url: str | None, listen: str | None) -> None:
    """--identity-url is an absolute http(s) URL without a query; an http:// one is served
    only by --identity-listen (the API's listener speaks HTTPS alone), and that needs one."""
    if listen is not None:
        if url is None:
            raise click.UsageError("--identity-listen needs --identity-url: the URL the "
                                   "Pods reach it at")
        _check_dns_listen(listen, option="--identity-listen")
    if url is None:
        return
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query \
            or parts.fragment or parts.username is not None:
        raise click.BadParameter(f"{url[:200]!r} is not an http:// or https:// URL of a "
                                 "host (and no query)", param_hint="--identity-url")
    if parts.scheme == "http" and listen is None:
        raise click.UsageError("an http:// --identity-url needs --identity-listen: skiff's "
                               "API listener serves HTTPS only")


def parse_quotas(texts: tuple[str, ...]) -> QuotaSettings:
    """``--quota [SUBSCRIPTION/]NAME=LIMIT`` values as the node's quotas (names in any
    case; a later value of one quota wins)."""
    names = {name.lower(): name for name in QUOTA_FIELDS}
    defaults: dict[str, int] = {}
    own: list[tuple[str, str, int]] = []
    for text in texts:
        target, sep, value = text.partition("=")
        subscription, _, name = target.strip().rpartition("/")
        known = names.get(name.lower())
        if not sep or known is None:
            raise click.BadParameter(f"{text[:80]!r} is not [SUBSCRIPTION/]NAME=LIMIT with a "
                                     f"NAME of {', '.join(QUOTA_FIELDS)}", param_hint="--quota")
        try:
            limit = int(value)
        except ValueError:
            limit = -1
        if limit < 0:
            raise click.BadParameter(f"{text[:80]!r}: the limit is a whole number, 0 or more",
                                     param_hint="--quota")
        if subscription:
            own.append((subscription, known, limit))
        else:
            defaults[QUOTA_FIELDS[known]] = limit
    return QuotaSettings(**defaults, subscriptions=tuple(own))


def _prices(path: Path | None) -> PriceSheet:
    """The price sheet of ``--prices FILE``, or the defaults."""
    if path is None:
        return PriceSheet()
    import json

    from skiff.control.pricing import price_sheet

    try:
        return price_sheet(json.loads(path.read_text()))
    except (OSError, ValueError) as exc:
        raise click.BadParameter(f"{path}: {exc}", param_hint="--prices") from None


def parse_userns(text: str) -> tuple[int, int]:
    """``--userns-remap FIRST:COUNT`` as (first, count): FIRST above 0, the range in 32 bits."""
    first, _, count = text.partition(":")
    try:
        pair = (int(first), int(count))
        RuntimeSettings(userns=pair)
    except ValueError:
        raise click.BadParameter(f"{text!r} is not FIRST:COUNT with FIRST > 0 and COUNT > 0",
                                 param_hint="--userns-remap") from None
    return pair


def _parse_locations(text: str | None) -> tuple[str, ...] | None:
    """``--locations`` as a tuple of names (None: not given, every Azure region)."""
    if text is None:
        return None
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    if not names:
        raise click.BadParameter("name at least one location", param_hint="--locations")
    for name in names:
        if len(name) > 90 or not name.isprintable():
            raise click.BadParameter(f"{name[:40]!r} is not a location name",
                                     param_hint="--locations")
    return names


def _check_images(refs: tuple[str, ...]) -> tuple[str, ...]:
    """``--public-cached-image`` values, each an image reference Docker would take."""
    from skiff.core.reference import parse
    from skiff.errors import InvalidReference

    for ref in refs:
        try:
            parse(ref)
        except InvalidReference as exc:
            raise click.BadParameter(exc.message, param_hint="--public-cached-image") from None
    return refs


def _check_endpoints(endpoints: tuple[str, ...]) -> tuple[str, ...]:
    """``--allow-local-endpoint`` values, each an IP address (or localhost) and a port."""
    from skiff.engine.network.fetching import Endpoint
    from skiff.errors import InvalidInput

    for endpoint in endpoints:
        try:
            Endpoint.parse(endpoint)
        except InvalidInput as exc:
            raise click.BadParameter(exc.message, param_hint="--allow-local-endpoint") from None
    return endpoints


def _check_dns_listen(listen: str, option: str = "--dns-listen") -> None:
    """``--dns-listen`` must be an IP literal and a port: DNS servers are named by address."""
    host, _, port = listen.rpartition(":")
    try:
        ipaddress.ip_address(host.strip("[]") or "127.0.0.1")
        valid = 0 <= int(port) < 65536
    except ValueError:
        valid = False
    if not valid:
        raise click.BadParameter(f"{listen!r} is not IP:PORT", param_hint=option)


@click.group()
def token() -> None:
    """Manage API tokens (on the node, in its store)."""


@token.command("create")
@_DATA_ROOT
@_NODE_KEY
@click.option("--subscription", help="Bind the token to one subscription (else: admin).")
@click.option("--name", default="", help="A name to recognise the token by.")
def token_create(data_root: Path, node_key: Path | None, subscription: str | None,
                 name: str) -> None:
    """Make a token and print it once: only its hash is kept."""
    from skiff.store import Store

    store = Store(data_root / "skiff.db", key_path=node_key)
    try:
        _, secret = store.create_token(subscription, name or (subscription or "admin"))
    finally:
        store.close()
    click.echo(secret)


@click.group()
def node() -> None:
    """Manage this node itself (on the node, as root)."""


@node.command("reset")
@_DATA_ROOT
@click.option("--force", is_flag=True,
              help="Stop the groups that still run: their containers get SIGTERM, then "
                   "SIGKILL after --grace. Without it, running groups refuse the reset.")
@click.option("--grace", type=click.FloatRange(min=0), default=RuntimeSettings.stop_grace_s,
              show_default=True, metavar="SECONDS",
              help="With --force: how long the containers get between SIGTERM and SIGKILL.")
@click.option("--purge", is_flag=True,
              help="Delete the data root too (store, CA, tokens, images, logs): "
                   "nothing of skiff is left.")
def reset(data_root: Path, force: bool, grace: float, purge: bool) -> None:
    """Remove what skiff set up on this host for DATA_ROOT.

    Containers, network namespaces, bridges, nftables tables, iptables rules,
    cgroups, mounts, loop devices and /run/skiff-<hash> go, so the host is as
    before skiff. The data root stays unless --purge: the next `skiff serve`
    starts the groups its store holds again. Refused (exit 1) while `skiff serve`
    runs on DATA_ROOT, and while groups run unless --force. Exit 1 too if
    something could not be removed (each listed). To uninstall skiff: `skiff node
    reset --purge`, then `pip uninstall skiff`.
    """
    from skiff.engine.reset import NodeReset
    from skiff.errors import SkiffError

    if os.geteuid() != 0:
        click.echo("error: skiff node reset runs as root (what it removes is root's)",
                   err=True)
        sys.exit(1)
    try:
        outcome = NodeReset(Settings(data_root=data_root), grace_s=grace).run(
            force=force, purge=purge)
    except SkiffError as exc:
        click.echo(f"error: {exc.code}: {exc.message}", err=True)
        sys.exit(1)
    for line in outcome.removed:
        click.echo(f"removed {line}")
    if not outcome.removed:
        click.echo(f"nothing of skiff was on this host for {data_root}")
    for line in outcome.failed:
        click.echo(f"error: {line}", err=True)
    sys.exit(1 if outcome.failed else 0)
