"""Authoritative DNS for container groups' name labels, and the containers' resolver.

:class:`Zone` holds the names (``<label>.<location>.<zone>``) and their
addresses; :class:`DnsServer` answers from zones over UDP and TCP on any number
of addresses, relaying other names to the host's resolvers
(:func:`host_nameservers`) when given them.
"""

from skiff.core.names import label_fqdn
from skiff.dns.server import Address, DnsServer
from skiff.dns.upstream import Upstream, host_nameservers
from skiff.dns.zone import Answer, Rcode, Record, RRType, Soa, Zone

__all__ = ["Address", "Answer", "DnsServer", "RRType", "Rcode", "Record", "Soa", "Upstream",
           "Zone", "host_nameservers", "label_fqdn"]
