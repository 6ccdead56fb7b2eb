"""A group's place on the network: ``groups/<id>/``, its files and its slot's record.

A group is attached when its slot's record is ``groups/<id>/cni.json``: the
rename that puts it there (under the state lock) is the whole hand-over from
a pool or from work/. Beside it lie the files bind-mounted into the group's
containers: ``hosts``, ``hostname`` and ``resolv.conf``
(:mod:`skiff.engine.network.resolv` renders them).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from skiff.core.spec import DnsConfig
from skiff.engine import mounts
from skiff.engine.network.cni import CniRunner, Slot, read_slot, slot_address, write_atomic
from skiff.engine.network.resolv import render_hosts, render_resolv_conf
from skiff.engine.network.slots import Layout, netns_path
from skiff.errors import InvalidInput, NetworkError
from skiff.settings import NetworkSettings

# Where systemd-resolved lists the real upstream servers behind 127.0.0.53.
_RESOLVED_UPSTREAMS = Path("/run/systemd/resolve/resolv.conf")

_GROUP_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
_HOSTNAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9.-]{0,61}[A-Za-z0-9])?")


@dataclass(frozen=True)
class Attachment:
    """A group's place on the network: its namespace, address and the files to mount."""

    group_id: str
    netns_path: Path
    ip: str
    prefix_len: int
    gateway: str
    hosts_file: Path
    hostname_file: Path
    resolv_conf: Path
    #: The bridge the group hangs on (the public one, or its subnet's).
    bridge: str = ""


def check_names(group_id: str, hostname: str | None = None) -> None:
    """InvalidInput unless the group id is a safe directory name and the host name
    a valid one (both end up in files and paths)."""
    if not _GROUP_ID.fullmatch(group_id) or ".." in group_id:
        raise InvalidInput(f"{group_id!r} is not a valid group id")
    if hostname is not None and not _HOSTNAME.fullmatch(hostname):
        raise InvalidInput(f"{hostname!r} is not a valid host name (letters, digits, '-', "
                           "'.', at most 63)")


def resolv_conf(settings: NetworkSettings, dns: DnsConfig | None,
                nameserver: str | None) -> str:
    """A group's resolv.conf: naming ``nameserver`` (skiff's DNS server) if given,
    else the host's servers; ``dns`` replaces each part it gives."""
    if nameserver is not None:
        return render_resolv_conf(f"nameserver {nameserver}\n", dns)
    texts = []
    for path in (settings.resolv_conf, _RESOLVED_UPSTREAMS):
        try:
            texts.append(path.read_text())
        except OSError:
            texts.append("")
    return render_resolv_conf(texts[0], dns, texts[1])


class Groups:
    """The attached groups of one data root (the ids are checked by the caller)."""

    def __init__(self, layout: Layout, plugins: CniRunner) -> None:
        self._dir = layout.groups
        self._plugins = plugins

    def attach(self, slot: Slot, record: Path, group_id: str, hostname: str,
               resolv: str) -> Attachment:
        """Write the group's files, then rename the slot's ``record`` into its
        directory; the caller holds the state lock."""
        interface = slot_address(slot)[0]
        group_dir = self._dir / group_id
        group_dir.mkdir(exist_ok=True)
        write_atomic(group_dir / "hosts", render_hosts(str(interface.ip), hostname).encode())
        write_atomic(group_dir / "hostname", f"{hostname}\n".encode())
        write_atomic(group_dir / "resolv.conf", resolv.encode())
        os.rename(record, group_dir / "cni.json")
        return self._attachment(group_id, slot)

    def _attachment(self, group_id: str, slot: Slot) -> Attachment:
        interface, gateway = slot_address(slot)
        group_dir = self._dir / group_id
        return Attachment(group_id=group_id, netns_path=netns_path(slot),
                          ip=str(interface.ip), prefix_len=interface.network.prefixlen,
                          gateway=gateway, hosts_file=group_dir / "hosts",
                          hostname_file=group_dir / "hostname",
                          resolv_conf=group_dir / "resolv.conf",
                          bridge=str(slot.config["plugins"][0]["bridge"]))

    def dir_of(self, group_id: str) -> Path:
        return self._dir / group_id

    def get(self, group_id: str) -> Attachment | None:
        """The group's attachment, or None if it has no network."""
        slot = read_slot(self._dir / group_id / "cni.json")
        return None if slot is None else self._attachment(group_id, slot)

    def check(self, group_id: str) -> None:
        """Ask the plugins (CNI CHECK) whether the group's network is still as added."""
        slot = read_slot(self._dir / group_id / "cni.json")
        if slot is None:
            raise NetworkError(f"group {group_id} has no network")
        if not mounts.is_mounted(netns_path(slot)):
            raise NetworkError(f"the network namespace of group {group_id} is gone")
        for plugin in slot.config["plugins"]:
            self._plugins.run("CHECK", slot, plugin, slot.result)

    def list(self) -> list[str]:
        """The ids of the groups with a network."""
        return sorted(name for name in os.listdir(self._dir)
                      if (self._dir / name / "cni.json").exists())
