"""Groups' DNS names kept in step with the groups: the A records of skiff's zone.

The store says which group holds which label (claimed at PUT time, released
with the group); the engine says which address a running group has. The
reconcile loop, which sees both, tells :class:`Names` after every converge:
a group that reached Succeeded with an address is published
(``<fqdn> -> ip``), one deleted, stopped or failed is withdrawn. At start-up
:meth:`Names.populate` fills the zone from the store and the engine's views
before the first converge, so that a restarted skiff answers for the groups
it adopts at once.

An address may also come after the converge: a LoadBalancer Service's on the kubernetes
backend, which the cloud gives in its own time. The engine tells the server, which hands
:meth:`Names.refresh` to the loop for when it is idle on the group.

Without a DNS server (no ``--dns-listen``) there is no zone: the API still
answers each group's FQDN, and publishing does nothing.
"""

from __future__ import annotations

import logging
import threading

from skiff.core.engine import Engine
from skiff.dns import Zone
from skiff.errors import GroupNotFound, SkiffError
from skiff.models import ContainerGroupBody
from skiff.models.labels import fqdn, group_label
from skiff.settings import DnsSettings
from skiff.store import GroupRecord, Store

log = logging.getLogger(__name__)


def group_fqdn(body: ContainerGroupBody, record: GroupRecord, dns: DnsSettings) -> str | None:
    """The group's ``<effective label>.<location>.<zone>``, or None without a dnsNameLabel."""
    label = group_label(body, tenant=dns.tenant, subscription=record.subscription,
                        resource_group=record.resource_group, group_uid=record.uid)
    return None if label is None else fqdn(label, record.location, dns.zone)


class Names:
    """The zone's A records, one per running group with a label (``zone`` None: none kept)."""

    def __init__(self, dns: DnsSettings, zone: Zone | None) -> None:
        self.dns = dns
        self.zone = zone
        self._lock = threading.Lock()
        self._by_uid: dict[str, str] = {}  # group uid -> the name published for it

    def publish(self, record: GroupRecord, ip: str | None) -> None:
        """Point the group's name at ``ip`` (None, or no label: withdraw its name)."""
        if self.zone is None:
            return
        try:
            body = ContainerGroupBody.from_stored(record.body)
        except SkiffError:
            log.exception("DNS: group %s has an unreadable body", record.uid)
            return
        name = group_fqdn(body, record, self.dns)
        if name is None or ip is None:
            self.withdraw(record.uid)
            return
        with self._lock:
            old = self._by_uid.get(record.uid)
            if old is not None and old != name:
                self.zone.remove(old)  # the group's label changed
            try:
                self.zone.set(name, ip)
            except ValueError:
                log.warning("DNS: cannot publish %r -> %s for group %s", name, ip, record.uid)
                self._by_uid.pop(record.uid, None)
                return
            self._by_uid[record.uid] = name

    def withdraw(self, uid: str) -> None:
        """Remove the group's name, if one was published."""
        if self.zone is None:
            return
        with self._lock:
            name = self._by_uid.pop(uid, None)
            if name is not None:
                self.zone.remove(name)

    def refresh(self, store: Store, engine: Engine, uid: str) -> None:
        """Publish the address the engine sees for group ``uid`` now, if the group runs
        (deployed, not stopped, not failed); else leave it to the reconcile loop. For an
        address that comes after the group was run (a cloud's load balancer on the
        kubernetes backend): call it when the loop is idle on the group, so that a
        converge's own publishing, from a view it read before, never comes after it."""
        if self.zone is None:
            return
        record = store.get_group_by_uid(uid)
        if record is None or record.desired != "running" \
                or record.provisioning_state != "Succeeded":
            return
        try:
            view = engine.view(uid)
        except GroupNotFound:
            return
        if not view.stopped and view.failure is None:
            self.publish(record, view.ip)

    def populate(self, store: Store, engine: Engine) -> None:
        """Publish every group that should run and has an address in the engine now."""
        if self.zone is None:
            return
        marker = None
        while True:
            page, marker = store.list_groups(None, limit=1000, after=marker)
            for record in page:
                if record.desired != "running":
                    continue
                try:
                    view = engine.view(record.uid)
                except GroupNotFound:
                    continue
                if not view.stopped and view.failure is None and view.ip:
                    self.publish(record, view.ip)
            if marker is None:
                return
