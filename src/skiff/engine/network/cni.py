"""CNI plugins, called directly with their JSON protocol, and the slots they make.

No libcni, no daemon: a plugin is a program that reads its configuration on
stdin, finds the namespace and command in its environment (``CNI_COMMAND``,
``CNI_NETNS``, ...) and answers a JSON result or error. A chain's plugins run
in order on ADD, each getting the previous one's result as ``prevResult``, as
libcni chains them; DEL runs them backwards with the stored result.

A *slot* is one namespace with the CNI configuration it was added with and the
chain's ADD result: what DEL needs, so its record is written after every step
(:func:`write_atomic`) and lives under the data root, where a restarted skiff
finds it.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import json
import os
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from skiff.errors import CniError, NetworkError

CNI_VERSION = "1.0.0"  # the newest the installed plugins (1.1.1) speak
_IFNAME = "eth0"
_SBIN = ("/usr/local/sbin", "/usr/sbin", "/sbin")  # the plugins run iptables from PATH


@dataclass(frozen=True)
class Slot:
    """A namespace with its CNI config and the chain's ADD result (None until known)."""

    id: str
    netns: str  # the namespace's name, also the CNI container id
    path: str  # where the namespace is mounted (CNI_NETNS)
    config: dict[str, Any]  # the network configuration list it was added with
    result: dict[str, Any] | None = None

    def record(self) -> bytes:
        return json.dumps({"slot": self.id, "netns": self.netns, "path": self.path,
                           "config": self.config, "result": self.result}, indent=1).encode()


def write_atomic(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def read_slot(path: Path) -> Slot | None:
    try:
        doc = json.loads(path.read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise NetworkError(f"the network record {path} is unreadable: {exc}") from exc
    try:
        return Slot(id=str(doc["slot"]), netns=str(doc["netns"]), path=str(doc["path"]),
                     config=doc["config"], result=doc["result"])
    except (KeyError, TypeError) as exc:
        raise NetworkError(f"the network record {path} is incomplete: {exc}") from exc


def slot_address(slot: Slot) -> tuple[ipaddress.IPv4Interface, str]:
    """The slot's interface address and gateway, from its CNI result."""
    try:
        first = (slot.result or {})["ips"][0]
        return ipaddress.IPv4Interface(first["address"]), str(first["gateway"])
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise NetworkError(f"the CNI result of {slot.netns} holds no IPv4 address") from exc


class CniRunner:
    """Runs the plugins of ``cni_path``, each call bounded by ``timeout_s``."""

    def __init__(self, cni_path: Path, timeout_s: float) -> None:
        self.cni_path = cni_path
        self.timeout_s = timeout_s
        self._env = {"PATH": ":".join([os.environ.get("PATH", "/usr/bin:/bin"), *_SBIN]),
                     "CNI_PATH": str(cni_path), "CNI_IFNAME": _IFNAME}

    def run(self, command: str, slot: Slot, plugin: dict[str, Any],
             prev: dict[str, Any] | None, netns: str | None = None) -> dict[str, Any] | None:
        """Run one plugin of the slot's chain; ADD returns its result. ``netns``
        overrides the slot's namespace path ("": gone, which DEL allows)."""
        kind = str(plugin["type"])
        conf = {**plugin, "cniVersion": slot.config["cniVersion"], "name": slot.config["name"]}
        if prev is not None:
            conf["prevResult"] = prev
        env = {**self._env, "CNI_COMMAND": command, "CNI_CONTAINERID": slot.netns,
               "CNI_NETNS": slot.path if netns is None else netns}
        try:
            done = subprocess.run([str(self.cni_path / kind)], input=json.dumps(conf),
                                  capture_output=True, text=True, env=env, check=False,
                                  timeout=self.timeout_s)
        except subprocess.TimeoutExpired as exc:
            raise CniError(f"CNI plugin {kind} {command} for {slot.netns} did not finish "
                           f"within {self.timeout_s:g} s",
                           plugin=kind, command=command, cni_code=11) from exc
        except OSError as exc:
            raise NetworkError(f"cannot run the CNI plugin {self.cni_path / kind}: "
                               f"{exc.strerror}") from exc
        if done.returncode != 0:
            try:
                doc = json.loads(done.stdout)
                msg, code = str(doc["msg"]), int(doc["code"])
                if doc.get("details"):
                    msg += f" ({doc['details']})"
            except (ValueError, KeyError, TypeError):
                msg = (done.stdout.strip() or done.stderr.strip() or "no output")[:400]
                code = 999
            raise CniError(f"CNI plugin {kind} {command} for {slot.netns} failed: {msg}",
                           plugin=kind, command=command, cni_code=code)
        if command != "ADD":
            return None
        try:
            result = json.loads(done.stdout)
        except ValueError as exc:
            raise CniError(f"CNI plugin {kind} ADD answered no JSON result",
                           plugin=kind, command=command, cni_code=6) from exc
        if not isinstance(result, dict):
            raise CniError(f"CNI plugin {kind} ADD answered no JSON object",
                           plugin=kind, command=command, cni_code=6)
        return result

    def unmasquerade(self, slot: Slot) -> None:
        """Remove the bridge plugin's NAT rules of a slot whose namespace vanished
        behind skiff's back: the plugin (1.1.1) learns the addresses to unmasquerade
        from the namespace's interface, so without one it leaves the rules. Names
        as in libcni: chain ``CNI-`` + sha512(network + id)[:24]."""
        name, cid = str(slot.config["name"]), slot.netns
        chain = "CNI-" + hashlib.sha512(f"{name}{cid}".encode()).hexdigest()[:24]
        comment = f'name: "{name}" id: "{cid}"'
        rules: list[list[str]] = [
            ["-D", "POSTROUTING", "-s", f"{ip['address'].split('/')[0]}/32", "-m", "comment",
             "--comment", comment, "-j", chain]
            for ip in (slot.result or {}).get("ips", []) if "." in ip.get("address", "")]
        for args in [*rules, ["-F", chain], ["-X", chain]]:
            with contextlib.suppress(OSError, subprocess.SubprocessError):
                subprocess.run(["iptables", "-w", "-t", "nat", *args], env=self._env,
                               capture_output=True, check=False,
                               timeout=self.timeout_s)
