"""The name files of a group: ``/etc/hosts`` and ``/etc/resolv.conf``.

Every container of a group mounts the group's own copies. ``resolv.conf``
starts from the host's, keeps only servers a group can reach (IPv4, not the
host's loopback stubs such as systemd-resolved's 127.0.0.53, for which the
real upstreams are read instead), then ACI's ``dnsConfig`` replaces each part
it gives. When skiff serves DNS to the groups, the network names the gateway
instead (see :class:`~skiff.engine.network.networks.Networks`).
"""

from __future__ import annotations

import ipaddress
import re

from skiff.core.spec import DnsConfig
from skiff.errors import InvalidInput

_DOMAIN = re.compile(r"[A-Za-z0-9_.-]{1,253}")


def render_hosts(ip: str, hostname: str) -> str:
    return (f"127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
            f"{ip}\t{hostname}\n")


def _parse_resolv(text: str) -> tuple[list[str], list[str], list[str]]:
    servers: list[str] = []
    search: list[str] = []
    options: list[str] = []
    for line in text.splitlines():
        words = line.split("#", 1)[0].split(";", 1)[0].split()
        if len(words) >= 2 and words[0] == "nameserver":
            servers.append(words[1])
        elif words and words[0] in ("search", "domain"):
            search = words[1:]  # the last of them wins, as in glibc
        elif words and words[0] == "options":
            options.extend(words[1:])
    return servers, search, options


def _reachable_server(server: str) -> bool:
    """Whether a group can use the host's server: IPv4 (groups have no IPv6), not
    loopback (127.0.0.53 is the host's, not the namespace's)."""
    try:
        address = ipaddress.ip_address(server.split("%", 1)[0])
    except ValueError:
        return False
    return address.version == 4 and not address.is_loopback


def render_resolv_conf(host: str, dns: DnsConfig | None = None, upstreams: str = "") -> str:
    """A group's resolv.conf: the host's (``host``; ``upstreams`` when all of its
    servers are loopback ones), each part replaced by ``dns``'s when given."""
    servers, search, options = _parse_resolv(host)
    if servers and not any(_reachable_server(s) for s in servers) and upstreams:
        servers = _parse_resolv(upstreams)[0]
    servers = [s for s in servers if _reachable_server(s)]
    if dns is not None:
        for server in dns.name_servers:
            try:
                ipaddress.ip_address(server)
            except ValueError as exc:
                raise InvalidInput(f"DNS name server {server!r} is not an IP address") from exc
        for domain in dns.search_domains:
            if not _DOMAIN.fullmatch(domain):
                raise InvalidInput(f"DNS search domain {domain!r} is not a domain name")
        if any(c in dns.options for c in "\n\r#;"):
            raise InvalidInput(f"DNS options {dns.options!r} must be one line of options")
        servers = list(dns.name_servers) or servers
        search = list(dns.search_domains) or search
        options = dns.options.split() or options
    lines = ["# written by skiff"] + [f"nameserver {s}" for s in servers]
    if search:
        lines.append("search " + " ".join(search))
    if options:
        lines.append("options " + " ".join(options))
    return "\n".join(lines) + "\n"
