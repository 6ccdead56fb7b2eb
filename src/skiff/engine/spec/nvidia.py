"""What a container given NVIDIA GPUs gets in its OCI spec, and nothing more.

A CUDA program in a container needs three things from the host, all of them of the
driver that runs there (the container's image brings the CUDA runtime, never the
driver, whose user-space half must match the kernel module exactly):

- device nodes: ``/dev/nvidia<minor>`` of each GPU it was given, and the driver's
  shared ones, ``/dev/nvidiactl``, ``/dev/nvidia-uvm``, ``/dev/nvidia-uvm-tools``
  (``/dev/nvidia-modeset`` where the host has it); each one created in the container
  (``linux.devices``) and allowed in its devices cgroup, which denies everything else
  (:func:`skiff.engine.spec.options._base`): the host's other GPUs are neither
  there nor openable, and their ``/proc/driver/nvidia/gpus/<bus>`` entries are masked;
- the driver's user-space libraries (``libcuda``, ``libnvidia-ml``, the PTX JIT, …: the
  set the NVIDIA Container Toolkit mounts for the ``compute`` and ``utility``
  capabilities) and its tools (``nvidia-smi``, …), bound read-only;
- where to find them: ``/usr/local/nvidia/lib64`` and ``/usr/local/nvidia/bin``, the
  directories NVIDIA's CUDA images already name in ``LD_LIBRARY_PATH`` and ``PATH``
  (appended here for other images), and ``NVIDIA_VISIBLE_DEVICES`` set to the UUIDs
  given, as the toolkit sets it.

Two sources, as the toolkit has them:

- the host's dynamic linker cache (``ldconfig -p``) and ``PATH``, for a host with the
  driver alone (:meth:`NvidiaDriverFiles.of_host`);
- a CDI spec (Container Device Interface, ``nvidia-ctk cdi generate`` writes
  ``/etc/cdi/nvidia.yaml``; ``/var/run/cdi/*.json`` too), where the host has one: its
  device nodes, mounts, hooks and environment for the chosen devices (named by index or
  UUID) and its common edits are used as written (:func:`cdi_parts`), since whoever
  generated it knows that host's driver layout better than a guess from ldconfig.

Everything is read from paths given (a test passes a tree of its own and a fake
``stat``); :func:`with_gpus` writes the result into a spec, like every other
:data:`~skiff.engine.spec.options.SpecOption`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat as statmod
import subprocess
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped,unused-ignore]

from skiff.engine.gpus import PROC_GPUS, Gpu, proc_bus_id
from skiff.errors import SkiffError

#: The driver's device nodes every GPU container needs (those missing on the host are
#: left out: nvidia-modeset is there only with a display driver loaded).
CONTROL_DEVICES = ("nvidiactl", "nvidia-uvm", "nvidia-uvm-tools", "nvidia-modeset")
#: The driver's libraries for the ``utility`` and ``compute`` capabilities (by name,
#: before ``.so``); what the host lacks of them (older or newer drivers) is skipped.
DRIVER_LIBRARIES = (
    "libnvidia-ml", "libnvidia-cfg",                                     # utility
    "libcuda", "libcudadebugger", "libnvidia-opencl", "libnvidia-gpucomp",  # compute
    "libnvidia-ptxjitcompiler", "libnvidia-fatbinaryloader", "libnvidia-allocator",
    "libnvidia-compiler", "libnvidia-pkcs11", "libnvidia-pkcs11-openssl3", "libnvidia-nvvm",
)
#: The driver's tools for the same capabilities.
DRIVER_BINARIES = ("nvidia-smi", "nvidia-debugdump", "nvidia-persistenced",
                   "nvidia-cuda-mps-control", "nvidia-cuda-mps-server")
#: Where they appear in the container (NVIDIA's CUDA images name these already).
LIB_DIR = "/usr/local/nvidia/lib64"
BIN_DIR = "/usr/local/nvidia/bin"
#: Where CDI specs are (the CDI specification's two directories).
CDI_DIRS = (Path("/etc/cdi"), Path("/var/run/cdi"))
#: The CDI kind of NVIDIA's GPUs.
CDI_KIND = "nvidia.com/gpu"
#: Mount options of the driver's files: read-only, no devices, no setuid.
RO_BIND = ["bind", "ro", "nosuid", "nodev"]

Stat = Callable[[str], os.stat_result]


class GpuSetupError(SkiffError):
    """The host's GPU pieces are not all there (a device node missing, a CDI spec that
    cannot be read): a group given GPUs fails rather than start without them."""


@dataclass(frozen=True)
class NvidiaDriverFiles:
    """The host's driver pieces a GPU container is given."""

    #: The host's ``/dev`` (a test's tree).
    dev_root: Path = Path("/dev")
    #: Soname (as ldconfig lists it) → the host file.
    libraries: Mapping[str, str] = field(default_factory=dict)
    #: Tool name → the host file.
    binaries: Mapping[str, str] = field(default_factory=dict)
    #: The CDI spec of kind nvidia.com/gpu, when the host has one (parsed).
    cdi: Mapping[str, Any] | None = None
    #: Where the driver describes each GPU (masked for the GPUs not given).
    proc_gpus: Path = PROC_GPUS
    stat: Stat = os.stat

    @classmethod
    def of_host(cls, *, dev_root: Path = Path("/dev"), ldconfig: str | None = None,
                path: str | None = None, cdi_dirs: Sequence[Path] = CDI_DIRS,
                proc_gpus: Path = PROC_GPUS, stat: Stat = os.stat) -> NvidiaDriverFiles:
        """Read the host: ``ldconfig`` is ``ldconfig -p``'s output (asked when None),
        ``path`` the directories searched for the tools (``PATH`` when None)."""
        if ldconfig is None:
            ldconfig = _ldconfig_cache()
        search = path if path is not None else os.environ.get("PATH", "/usr/bin:/bin")
        binaries = {}
        for name in DRIVER_BINARIES:
            found = shutil.which(name, path=search)
            if found is not None:
                binaries[name] = os.path.realpath(found)
        return cls(dev_root=dev_root, libraries=driver_libraries(ldconfig),
                   binaries=binaries, cdi=find_cdi(cdi_dirs), proc_gpus=proc_gpus, stat=stat)


def _ldconfig_cache() -> str:
    for ldconfig in ("ldconfig", "/sbin/ldconfig", "/usr/sbin/ldconfig"):
        try:
            return subprocess.run([ldconfig, "-p"], capture_output=True, text=True,
                                  check=False, timeout=30).stdout
        except (OSError, subprocess.TimeoutExpired):
            continue
    return ""


#: ``<tab>libcuda.so.1 (libc6,x86-64) => /usr/lib/x86_64-linux-gnu/libcuda.so.1``
_LDCONFIG_LINE = re.compile(r"^\s*(\S+)\s+\(([^)]*)\)(?:.*)=>\s*(\S+)\s*$")


def driver_libraries(ldconfig: str) -> dict[str, str]:
    """Soname → host file of each of :data:`DRIVER_LIBRARIES` in ``ldconfig -p``'s
    output, the 64-bit entry of each (a multilib host lists the 32-bit one too)."""
    wanted = tuple(f"{name}.so" for name in DRIVER_LIBRARIES)
    found: dict[str, str] = {}
    wide: set[str] = set()  # sonames whose 64-bit entry was found (the first one wins)
    for line in ldconfig.splitlines():
        match = _LDCONFIG_LINE.match(line)
        if match is None:
            continue
        soname, tags, target = match.groups()
        if soname in wide or not any(soname == w or soname.startswith(w + ".")
                                     for w in wanted):
            continue
        if "64" in tags:
            wide.add(soname)
            found[soname] = target
        else:
            found.setdefault(soname, target)
    return found


def find_cdi(dirs: Sequence[Path] = CDI_DIRS) -> dict[str, Any] | None:
    """The first CDI spec of kind nvidia.com/gpu in ``dirs`` (YAML or JSON), or None;
    GpuSetupError if such a spec cannot be parsed (a node that has one relies on it)."""
    for directory in dirs:
        try:
            names = sorted(os.listdir(directory))
        except OSError:
            continue
        for name in names:
            if not name.endswith((".yaml", ".yml", ".json")):
                continue
            where = directory / name
            try:
                text = where.read_text()
                doc = json.loads(text) if name.endswith(".json") else yaml.safe_load(text)
            except (OSError, ValueError, yaml.YAMLError) as exc:
                raise GpuSetupError(f"the CDI spec {where} cannot be read: {exc}") from exc
            if isinstance(doc, dict) and doc.get("kind") == CDI_KIND:
                return doc
    return None


@dataclass
class GpuParts:
    """What the container gets, in OCI terms."""

    devices: list[dict[str, Any]] = field(default_factory=list)
    cgroup_rules: list[dict[str, Any]] = field(default_factory=list)
    mounts: list[dict[str, Any]] = field(default_factory=list)
    #: OCI hook name (createContainer, …) → hooks.
    hooks: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    #: Directories appended to PATH and LD_LIBRARY_PATH (empty with a CDI spec).
    path_dirs: list[str] = field(default_factory=list)
    library_dirs: list[str] = field(default_factory=list)
    masked: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {"devices": self.devices, "cgroupRules": self.cgroup_rules,
                "mounts": self.mounts, "hooks": self.hooks, "env": self.env,
                "pathDirs": self.path_dirs, "libraryDirs": self.library_dirs,
                "maskedPaths": self.masked}

    def add_device(self, path: str, host: str, stat: Stat) -> None:
        """The device node at ``host`` as ``path`` in the container, and its cgroup rule."""
        try:
            info = stat(host)
        except OSError as exc:
            raise GpuSetupError(f"the GPU device {host} is missing: {exc.strerror}") from exc
        if statmod.S_ISCHR(info.st_mode):
            kind = "c"
        elif statmod.S_ISBLK(info.st_mode):
            kind = "b"
        else:
            raise GpuSetupError(f"{host} is not a device node")
        major, minor = os.major(info.st_rdev), os.minor(info.st_rdev)
        if any(d["path"] == path for d in self.devices):
            return
        self.devices.append({"path": path, "type": kind, "major": major, "minor": minor,
                             "fileMode": statmod.S_IMODE(info.st_mode), "uid": 0, "gid": 0})
        self.cgroup_rules.append({"allow": True, "type": kind, "major": major,
                                  "minor": minor, "access": "rwm"})


def container_gpu_parts(gpus: Sequence[Gpu], files: NvidiaDriverFiles,
                        others: Iterable[Gpu] = ()) -> GpuParts:
    """The OCI parts of a container given ``gpus`` (``others``: the node's GPUs it is
    not given, whose driver entries are masked)."""
    if not gpus:
        return GpuParts()
    if files.cdi is not None:
        parts = cdi_parts(gpus, files.cdi, files.stat)
    else:
        parts = driver_parts(gpus, files)
    parts.env["NVIDIA_VISIBLE_DEVICES"] = ",".join(g.uuid for g in gpus)
    parts.env.setdefault("NVIDIA_DRIVER_CAPABILITIES", "compute,utility")
    given = {g.uuid for g in gpus}
    parts.masked.extend(str(files.proc_gpus / proc_bus_id(g.bus_id))
                        for g in others if g.uuid not in given)
    return parts


def driver_parts(gpus: Sequence[Gpu], files: NvidiaDriverFiles) -> GpuParts:
    """The parts from the host's own files: device nodes, libraries, tools."""
    parts = GpuParts()
    for gpu in gpus:
        parts.add_device(gpu.device, str(files.dev_root / f"nvidia{gpu.minor}"), files.stat)
    for name in CONTROL_DEVICES:
        host = files.dev_root / name
        if name == "nvidia-modeset" and not host.exists():
            continue
        parts.add_device(f"/dev/{name}", str(host), files.stat)
    if not any(s.startswith("libcuda.so") for s in files.libraries):
        raise GpuSetupError("the host's linker cache (ldconfig -p) has no libcuda: the "
                            "NVIDIA driver's user-space libraries are not installed")
    for soname, library in sorted(files.libraries.items()):
        parts.mounts.append({"destination": f"{LIB_DIR}/{soname}", "type": "bind",
                             "source": os.path.realpath(library), "options": list(RO_BIND)})
    for name, tool in sorted(files.binaries.items()):
        parts.mounts.append({"destination": f"{BIN_DIR}/{name}", "type": "bind",
                             "source": tool, "options": list(RO_BIND)})
    parts.library_dirs.append(LIB_DIR)
    if files.binaries:
        parts.path_dirs.append(BIN_DIR)
    return parts


def cdi_parts(gpus: Sequence[Gpu], cdi: Mapping[str, Any], stat: Stat = os.stat) -> GpuParts:
    """The parts a CDI spec gives the chosen devices (each named in it by its index or
    its UUID), with the spec's common edits."""
    devices = {str(d.get("name")): d for d in cdi.get("devices") or [] if isinstance(d, dict)}
    edits = [cdi.get("containerEdits") or {}]
    for gpu in gpus:
        device = devices.get(str(gpu.index)) or devices.get(gpu.uuid)
        if device is None:
            raise GpuSetupError(f"the CDI spec names no device {gpu.index} or {gpu.uuid}: "
                                "generate it again (nvidia-ctk cdi generate)")
        edits.append(device.get("containerEdits") or {})
    parts = GpuParts()
    for edit in edits:
        for node in edit.get("deviceNodes") or []:
            path = str(node["path"])
            parts.add_device(path, str(node.get("hostPath") or path), stat)
        for mount in edit.get("mounts") or []:
            options = [str(o) for o in mount.get("options") or ["ro", "nosuid", "nodev",
                                                                  "bind"]]
            parts.mounts.append({"destination": str(mount["containerPath"]),
                                 "type": str(mount.get("type") or "bind"),
                                 "source": str(mount["hostPath"]), "options": options})
        for hook in edit.get("hooks") or []:
            entry: dict[str, Any] = {"path": str(hook["path"])}
            for key in ("args", "env"):
                if hook.get(key):
                    entry[key] = [str(a) for a in hook[key]]
            if hook.get("timeout") is not None:
                entry["timeout"] = int(hook["timeout"])
            parts.hooks.setdefault(str(hook["hookName"]), []).append(entry)
        for item in edit.get("env") or []:
            key, _, value = str(item).partition("=")
            parts.env[key] = value
    return parts


def with_gpus(parts: GpuParts) -> Callable[[dict[str, Any]], None]:
    """The option that gives a container ``parts``: its devices and their cgroup rules,
    the driver's files, hooks, environment, and the other GPUs masked."""

    def apply(spec: dict[str, Any]) -> None:
        if not parts.devices:
            return
        linux = spec.setdefault("linux", {})
        present = {d["path"] for d in linux.get("devices", [])}  # a privileged one's all
        linux.setdefault("devices", []).extend(dict(d) for d in parts.devices
                                               if d["path"] not in present)
        linux.setdefault("resources", {}).setdefault("devices", []).extend(
            dict(r) for r in parts.cgroup_rules)
        if parts.masked:
            linux.setdefault("maskedPaths", []).extend(parts.masked)
        taken = {m["destination"] for m in parts.mounts}
        spec["mounts"] = [m for m in spec.get("mounts", []) if m["destination"] not in taken]
        spec["mounts"].extend(dict(m) for m in parts.mounts)
        hooks = spec.setdefault("hooks", {}) if parts.hooks else {}
        for name, entries in parts.hooks.items():
            hooks.setdefault(name, []).extend(entries)
        process = spec.setdefault("process", {})
        env = dict(item.partition("=")[::2] for item in process.get("env", []))
        env.update(parts.env)
        for key, dirs, default in (("PATH", parts.path_dirs,
                                    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"),
                                   ("LD_LIBRARY_PATH", parts.library_dirs, "")):
            if not dirs:
                continue
            have = [d for d in (env.get(key) or default).split(":") if d]
            env[key] = ":".join([*have, *(d for d in dirs if d not in have)])
        process["env"] = [f"{k}={v}" for k, v in env.items()]

    return apply
