"""``skiff container ...``: the ``az container`` commands, against skiff's API.

The commands, their flags and their output are az's, so that what people
know (and their scripts) carry over: ``create`` takes the same flags or an ACI
YAML file, ``-o json`` prints a group as az prints it (the Azure SDK's model,
flattened: camelCase attribute names, no ``properties`` wrapper,
``resourceGroup`` added), ``-o table`` is az's table of container groups, and
``--query`` is JMESPath applied before the output, as in az.

The commands talk HTTP to the API through :class:`skiff.client.SkiffClient`,
never to the engine. They get their client from a factory in ``ctx.obj``
(``SkiffClient.from_env`` unless the caller passed another: tests pass one
whose transport is a fake server), so pointing the CLI at a server is a
matter of ``SKIFF_URL``, ``SKIFF_TOKEN`` and ``SKIFF_CA``.

Failures print one line, ``ERROR: (Code) message``, on stderr and exit 1
(3 when the API answered 404, as az does); never a traceback. Secrets given
on the command line (secure environment variables, the registry password) are
never printed, not even inside an error message the server sent back.
"""

from __future__ import annotations

import codecs
import json
import os
import re
import shlex
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, nullcontext, suppress
from copy import deepcopy
from datetime import date, datetime, timedelta
from datetime import time as dtime
from enum import Enum
from functools import partial, wraps
from pathlib import Path
from typing import IO, Any, NoReturn, TypeVar, cast

import click
import jmespath  # type: ignore[import-untyped,unused-ignore]
import yaml  # type: ignore[import-untyped,unused-ignore]
from azure.core.exceptions import DeserializationError
from azure.mgmt.containerinstance.models import ContainerGroup
from websockets.exceptions import ConnectionClosed, ConnectionClosedError
from websockets.sync.client import ClientConnection

from skiff.cli.subnets import (
    DEFAULT_SUBNET_PREFIX,
    DEFAULT_VNET_PREFIX,
    ensure_subnet,
    is_resource_id,
    subnet_ref,
)
from skiff.client import API_VERSION, ApiError, SkiffClient, WebSocketTarget
from skiff.errors import SkiffError

F = TypeVar("F", bound=Callable[..., Any])
ClientFactory = Callable[[], SkiffClient]

OUTPUT_FORMATS = ("json", "jsonc", "none", "table", "tsv", "yaml", "yamlc")
_SECRETS_KEY = "skiff.secrets"
# az's exit code for a resource that is not there (ResourceNotFoundError).
_EXIT_NOT_FOUND = 3
# What a terminal sends for Ctrl-D: ACI's exec is a terminal, so at the end
# of piped input this is how the process learns that its input is over.
_EOT = "\x04"


class InvalidArgument(SkiffError):
    """A flag, a file or an answer the command cannot use."""

    code = "InvalidArgumentValue"


# -- errors -------------------------------------------------------------------


def _scrub(message: str) -> str:
    ctx = click.get_current_context(silent=True)
    secrets: list[str] = ctx.meta.get(_SECRETS_KEY, []) if ctx is not None else []
    for secret in sorted(secrets, key=len, reverse=True):
        if secret:
            message = message.replace(secret, "***")
    return " ".join(message.split())


def _die(code: str, message: str, status: int = 1) -> NoReturn:
    click.echo(f"ERROR: ({code}) {_scrub(message)}", err=True)
    sys.exit(status)


def _errors(func: F) -> F:
    """Print every failure as ``ERROR: (Code) message`` and exit non-zero; never a traceback."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except ApiError as exc:
            _die(exc.code, exc.message, _EXIT_NOT_FOUND if exc.status == 404 else 1)
        except SkiffError as exc:
            _die(exc.code, exc.message)
        except KeyboardInterrupt:
            click.echo("", err=True)
            sys.exit(130)
        except BrokenPipeError:
            sys.exit(1)
        except Exception as exc:  # a bug of ours or an answer of an unexpected shape
            _die("InternalError", f"{type(exc).__name__}: {exc}")

    return wrapper  # type: ignore[return-value]


def _keep_secret(*values: str | None) -> None:
    """Values never to be printed, by this command's errors included."""
    ctx = click.get_current_context()
    ctx.meta.setdefault(_SECRETS_KEY, []).extend(v for v in values if v)


# -- the SDK's view of a group, as az prints it ---------------------------------


def _camel(name: str) -> str:
    return re.sub(r"(?!^)_([a-zA-Z])", lambda m: m.group(1).upper(), name)


def _todict(obj: Any) -> Any:
    """What az's ``todict`` makes of an SDK model: attribute names in camelCase,
    enums as values, times in ISO form; ``None`` dropped."""
    if hasattr(type(obj), "_attribute_map"):
        return {_camel(key): _todict(value) for key, value in vars(obj).items()
                if value is not None and not key.startswith("_") and not callable(value)
                and key != "additional_properties"}
    if isinstance(obj, dict):
        return {key: _todict(value) for key, value in obj.items() if value is not None}
    if isinstance(obj, list):
        return [_todict(item) for item in obj if item is not None]
    if isinstance(obj, Enum):
        return obj.value
    if isinstance(obj, datetime | date | dtime):
        return obj.isoformat()
    if isinstance(obj, timedelta):
        return str(obj)
    return obj


def _resource_group_of(resource_id: str) -> str | None:
    parts = resource_id.split("/")
    for i, part in enumerate(parts[:-1]):
        if part.lower() == "resourcegroups":
            return parts[i + 1] or None
    return None


def _add_resource_group(obj: Any) -> None:
    """az's post-processing: every object with an ARM ``id`` gets its ``resourceGroup``."""
    if isinstance(obj, list):
        for item in obj:
            _add_resource_group(item)
    elif isinstance(obj, dict):
        if "resourcegroup" not in (k.lower() for k in obj) and isinstance(obj.get("id"), str):
            rg = _resource_group_of(obj["id"])
            if rg is not None:
                obj["resourceGroup"] = rg
        for key, value in obj.items():
            if key != "sourceVault":
                _add_resource_group(value)


def _redacted(body: Mapping[str, Any]) -> dict[str, Any]:
    """The group without any secret value, should a server ever echo one."""
    group = deepcopy(dict(body))
    props = group.get("properties")
    if not isinstance(props, dict):
        return group
    for key in ("containers", "initContainers"):
        for container in props.get(key) or []:
            for env in (container.get("properties") or {}).get("environmentVariables") or []:
                if isinstance(env, dict):
                    env.pop("secureValue", None)
    for cred in props.get("imageRegistryCredentials") or []:
        if isinstance(cred, dict):
            cred.pop("password", None)
    for volume in props.get("volumes") or []:
        if not isinstance(volume, dict):
            continue
        if isinstance(volume.get("azureFile"), dict):
            volume["azureFile"].pop("storageAccountKey", None)
        if isinstance(volume.get("secret"), dict):
            volume["secret"] = {name: None for name in volume["secret"]}
    return group


def _lifted(body: Mapping[str, Any]) -> dict[str, Any]:
    """The flattening by hand, for a body the SDK cannot read."""
    out = {k: v for k, v in body.items() if k != "properties"}
    out.update(body.get("properties") or {})
    for key in ("containers", "initContainers"):
        if isinstance(out.get(key), list):
            out[key] = [{**{k: v for k, v in c.items() if k != "properties"},
                         **(c.get("properties") or {})} for c in out[key] if isinstance(c, dict)]
    return cast(dict[str, Any], _todict(out))


def az_view(body: Mapping[str, Any]) -> dict[str, Any]:
    """A container group as ``az container show`` prints it: the SDK's model of
    the ARM body, flattened, camelCase, ``resourceGroup`` added, secrets removed."""
    clean = _redacted(body)
    try:
        view = cast(dict[str, Any], _todict(ContainerGroup.deserialize(clean)))
    except DeserializationError:
        view = _lifted(clean)
    _add_resource_group(view)
    return view


def export_view(body: Mapping[str, Any]) -> dict[str, Any]:
    """A container group as ``az container export`` writes it: the ARM body
    with ``apiVersion``, without its state (provisioningState, instance views,
    the address it was given) and without secrets."""
    group = _redacted(body)
    out: dict[str, Any] = {"apiVersion": API_VERSION}
    for key in ("location", "name", "identity", "zones", "tags", "type"):
        if group.get(key) is not None:
            out[key] = group[key]
    props = dict(group.get("properties") or {})
    for key in ("instanceView", "provisioningState"):
        props.pop(key, None)
    if isinstance(props.get("ipAddress"), dict):
        props["ipAddress"] = {k: v for k, v in props["ipAddress"].items()
                              if k not in ("ip", "fqdn")}
    for key in ("containers", "initContainers"):
        if isinstance(props.get(key), list):
            props[key] = [_without_instance_view(c) for c in props[key]]
    out["properties"] = props
    return cast(dict[str, Any], _todict(out))


def secret_slots(body: Mapping[str, Any]) -> list[str]:
    """Where an exported group needs a secret put back before it can be created
    again: the API shows secure variables, registry credentials, storage keys
    and secret files without their values."""
    props = body.get("properties") or {}
    slots: list[str] = []
    for key in ("containers", "initContainers"):
        for i, c in enumerate(props.get(key) or []):
            envs = (c.get("properties") or {}).get("environmentVariables") or []
            slots += [f"properties.{key}[{i}].properties.environmentVariables[{j}].secureValue "
                      f"({env.get('name')})" for j, env in enumerate(envs)
                      if env.get("value") is None]
    slots += [f"properties.imageRegistryCredentials[{i}].password ({cred.get('server')})"
              for i, cred in enumerate(props.get("imageRegistryCredentials") or [])]
    for i, volume in enumerate(props.get("volumes") or []):
        if isinstance(volume.get("azureFile"), dict):
            slots.append(f"properties.volumes[{i}].azureFile.storageAccountKey "
                         f"({volume.get('name')})")
        slots += [f"properties.volumes[{i}].secret.{file} ({volume.get('name')})"
                  for file in volume.get("secret") or {}]
    return slots


def _without_instance_view(container: Any) -> Any:
    if isinstance(container, dict) and isinstance(container.get("properties"), dict):
        container = {**container, "properties": {k: v for k, v in container["properties"].items()
                                                 if k != "instanceView"}}
    return container


# -- output formats ---------------------------------------------------------------


def _format_json(result: Any) -> str:
    return json.dumps(result, ensure_ascii=False, indent=2, sort_keys=True,
                      separators=(",", ": ")) + "\n"


_JSON_TOKEN = re.compile(r'("(?:[^"\\]|\\.)*")(\s*:)?|\b(true|false|null)\b|'
                         r"(-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)")


def _colored_json(result: Any) -> str:
    def paint(m: re.Match[str]) -> str:
        if m.group(1) is not None:
            color = "\x1b[94m" if m.group(2) else "\x1b[32m"
            return f"{color}{m.group(1)}\x1b[0m{m.group(2) or ''}"
        return f"\x1b[36m{m.group(0)}\x1b[0m"

    return _JSON_TOKEN.sub(paint, _format_json(result))


def _format_yaml(result: Any) -> str:
    # A JSON round trip turns the OrderedDicts of a --query into plain data, as knack does.
    text: str = yaml.safe_dump(json.loads(json.dumps(result)), default_flow_style=False,
                               allow_unicode=True)
    return text


def _tsv_cell(value: Any) -> str:
    if isinstance(value, list):
        return str(len(value))
    if isinstance(value, dict):
        return ""
    return value if isinstance(value, str) else str(value)


def _format_tsv(result: Any) -> str:
    """knack's TSV: a line per item; an object's values in key order (a query's
    order for ``--query`` objects), a nested list as its length, a nested object empty."""
    lines = []
    for item in result if isinstance(result, list) else [result]:
        if isinstance(item, OrderedDict):
            values = list(item.values())
        elif isinstance(item, dict):
            values = [v for _, v in sorted(item.items())]
        elif isinstance(item, list):
            values = item
        elif isinstance(item, bool):
            values = [str(item).lower()]
        else:
            values = [item]
        lines.append("\t".join(_tsv_cell(v) for v in values))
    return "".join(line + "\n" for line in lines)


def _auto_row(item: Any) -> dict[str, Any]:
    """knack's table row for any object: its scalar fields, first letter capitalized."""
    if isinstance(item, dict):
        return {k[:1].upper() + k[1:]: v for k, v in item.items()
                if k not in ("id", "type", "etag") and v is not None
                and not isinstance(v, list | dict | set)}
    if isinstance(item, list):
        return {f"Column{i + 1}": v for i, v in enumerate(item)}
    return {"Result": item}


def _tabulate(rows: list[dict[str, Any]]) -> str:
    """tabulate's "simple" format, as knack prints tables."""
    headers: list[str] = []
    for row in rows:
        headers.extend(k for k in row if k not in headers)
    if not headers:
        return ""
    cells = [["" if row.get(h) is None else str(row.get(h)) for h in headers] for row in rows]
    # tabulate pads a header by two at least.
    widths = [max(len(h) + 2, *(len(line[i]) for line in cells)) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) for line in cells]
    return "".join(line.rstrip() + "\n" for line in lines)


def _group_row(group: Mapping[str, Any]) -> dict[str, Any]:
    """az's ``transform_container_group``: one row of ``az container list -o table``."""
    containers = [c for c in group.get("containers") or [] if isinstance(c, dict)]
    images = ",".join(dict.fromkeys(str(c.get("image")) for c in containers)) or None
    cpu_memory = None
    if containers:
        cpu = memory = 0.0
        for c in containers:
            requests = (c.get("resources") or {}).get("requests") or {}
            cpu += float(requests.get("cpu", 0))
            memory += float(requests.get("memoryInGb", 0))
        cpu_memory = f"{cpu} core/{memory} gb"
    ip_ports = network = None
    ip = group.get("ipAddress")
    if ip:
        ports = list(ip.get("ports") or [])
        if ip.get("type") == "Private":
            for c in containers:
                ports += c.get("ports") or []
        ip_ports = f"{ip.get('ip') or ''}:{','.join(str(p.get('port')) for p in ports)}"
        network = ip.get("type")
    status = (group.get("instanceView") or {}).get("state") or group.get("provisioningState")
    return {"Name": group.get("name"), "ResourceGroup": group.get("resourceGroup"),
            "Status": status, "Image": images, "IP:ports": ip_ports, "Network": network,
            "CPU/Memory": cpu_memory, "OsType": group.get("osType"),
            "Location": group.get("location")}


def _group_table(result: Any) -> list[dict[str, Any]]:
    groups = result if isinstance(result, list) else [result]
    return [_group_row(g) for g in groups if isinstance(g, dict)]


def emit(result: Any, output: str, query: Any = None, *,
         table: Callable[[Any], list[dict[str, Any]]] | None = None) -> None:
    """Print a command's result as az does: ``--query`` first, then the format
    (a table transformer only applies without a query)."""
    if query is not None:
        result = query.search(result, jmespath.Options(dict_cls=OrderedDict))
    if result is None or output == "none":
        return
    stdout_tty = click.get_text_stream("stdout").isatty()
    if output == "json" or (output == "jsonc" and not stdout_tty):
        text = _format_json(result)
    elif output == "jsonc":
        text = _colored_json(result)
    elif output in ("yaml", "yamlc"):
        text = _format_yaml(result)
    elif output == "tsv":
        text = _format_tsv(result)
    else:
        if table is not None and query is None:
            rows = table(result)
        else:
            rows = [_auto_row(item) for item in (result if isinstance(result, list) else [result])]
        text = _tabulate(rows)
    click.echo(text, nl=False)


def _compile_query(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
    if value is None:
        return None
    try:
        return jmespath.compile(value)
    except jmespath.exceptions.JMESPathError as exc:
        raise click.BadParameter(f"invalid jmespath query: {value!r}: {exc}",
                                 ctx=ctx, param=param) from exc


def _output_options(func: F) -> F:
    func = click.option("--query", callback=_compile_query, metavar="JMESPATH",
                        help="JMESPath query string. See http://jmespath.org/ for more "
                             "information and examples.")(func)
    return click.option("--output", "-o", type=click.Choice(OUTPUT_FORMATS, case_sensitive=False),
                        default="json", show_default=True, help="Output format.")(func)


# -- commands -----------------------------------------------------------------------


class _AzCommand(click.Command):
    """A command whose list options take space-separated values, as az's do
    (``--ports 80 443``, ``-e A=1 B=2``): click wants the flag before each
    value, so the flag is repeated before click parses."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        lists = {opt for p in self.params if isinstance(p, click.Option) and p.multiple
                 for opt in p.opts}
        out: list[str] = []
        flag: str | None = None
        first = False
        for i, arg in enumerate(args):
            if arg == "--":
                out.extend(args[i:])
                break
            if flag is not None and not (arg.startswith("-") and len(arg) > 1):
                out.extend([arg] if first else [flag, arg])
                first = False
                continue
            flag = arg if arg in lists else None
            first = flag is not None
            out.append(arg)
        return super().parse_args(ctx, out)


def _client() -> SkiffClient:
    obj = click.get_current_context().obj
    factory = cast(ClientFactory, obj if callable(obj) else SkiffClient.from_env)
    return factory()


class _Progress:
    """az's progress while it waits, on stderr and only on a terminal: a spinner,
    the operation's status, the time spent."""

    _FRAMES = "|/-\\"

    def __init__(self, stream: IO[str] | None = None) -> None:
        self.stream = stream if stream is not None else click.get_text_stream("stderr")
        self.tty = self.stream.isatty()
        self.start = time.monotonic()
        self.ticks = 0

    def __call__(self, status: str) -> None:
        if not self.tty:
            return
        frame = self._FRAMES[self.ticks % len(self._FRAMES)]
        self.ticks += 1
        elapsed = time.monotonic() - self.start
        detail = f" {status}" if status else ""
        self.stream.write(f"\r{frame} Running .. {elapsed:.0f}s{detail}\x1b[K")
        self.stream.flush()

    def done(self) -> None:
        if self.tty and self.ticks:
            self.stream.write("\r\x1b[K")
            self.stream.flush()


@contextmanager
def _progress() -> Iterator[_Progress]:
    progress = _Progress()
    progress("")
    try:
        yield progress
    finally:
        progress.done()


@click.group("container")
@click.pass_context
def container(ctx: click.Context) -> None:
    """Manage container groups, as `az container` does, through skiff's API.

    The API is SKIFF_URL (default https://127.0.0.1:8443), reached with the
    token SKIFF_TOKEN (default: the file admin.token of the data root
    SKIFF_DATA_ROOT, default /var/lib/skiff) and trusting the CA SKIFF_CA
    (default: ca.pem of the data root); SKIFF_SUBSCRIPTION names the subscription.
    """
    if ctx.obj is None:
        ctx.obj = SkiffClient.from_env


def _rg_name(func: F) -> F:
    func = click.option("--name", "-n", required=True,
                        help="The name of the container group.")(func)
    return click.option("--resource-group", "-g", "resource_group", required=True,
                        help="Name of resource group.")(func)


def _pairs(values: tuple[str, ...], flag: str) -> list[tuple[str, str]]:
    pairs = []
    for value in values:
        key, sep, val = value.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{value.split('=')[0]!r} is not in the format "
                                     "'key=value'", param_hint=flag)
        pairs.append((key, val))
    return pairs


def _registry_server(image: str) -> str | None:
    """The registry an image reference names, as Docker reads it (None: Docker Hub)."""
    first, sep, _ = image.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return first
    return None


def group_body(*, name: str, image: str, location: str | None = None, cpu: float = 1,
               memory: float = 1.5, ports: tuple[int, ...] = (80,), protocol: str | None = None,
               ip_address: str | None = None, dns_name_label: str | None = None,
               restart_policy: str = "Always", command_line: str | None = None,
               environment_variables: list[tuple[str, str]] | None = None,
               secure_environment_variables: list[tuple[str, str]] | None = None,
               registry_login_server: str | None = None, registry_username: str | None = None,
               registry_password: str | None = None, os_type: str = "Linux",
               subnet_id: str | None = None, isolation: str | None = None) -> dict[str, Any]:
    """The ARM body of ``az container create``'s flags: one container named as
    the group; ports opened on an IP address only when it asks for one. A group
    in a subnet (``subnet_id``, its ARM id) has a Private address, as in az;
    the flags that contradict that are refused before (:func:`_check_network_flags`)."""
    env = [{"name": k, "value": v} for k, v in environment_variables or []]
    env += [{"name": k, "secureValue": v} for k, v in secure_environment_variables or []]
    container: dict[str, Any] = {
        "image": image,
        "resources": {"requests": {"cpu": cpu, "memoryInGB": memory}},
    }
    if command_line:
        container["command"] = shlex.split(command_line)
    if env:
        container["environmentVariables"] = env
    props: dict[str, Any] = {"containers": [{"name": name, "properties": container}],
                             "osType": os_type, "restartPolicy": restart_policy}
    ip_type = "Public" if dns_name_label else ip_address
    if subnet_id or (ip_address and ip_address.lower() == "private"):
        ip_type = "Private"
    if ip_type:
        open_ports = [{"protocol": protocol or "TCP", "port": p} for p in ports]
        container["ports"] = [dict(p) for p in open_ports]
        ip: dict[str, Any] = {"ports": open_ports, "type": ip_type}
        if dns_name_label:
            ip["dnsNameLabel"] = dns_name_label
        props["ipAddress"] = ip
    if subnet_id:
        props["subnetIds"] = [{"id": subnet_id}]
    if isolation:  # skiff's extension: Container (runc) or Sandbox (gVisor)
        props["isolation"] = isolation.capitalize()
    if registry_login_server:
        props["imageRegistryCredentials"] = [{"server": registry_login_server,
                                              "username": registry_username,
                                              "password": registry_password}]
    body: dict[str, Any] = {"properties": props}
    if location:
        body["location"] = location
    return body


def _check_network_flags(*, vnet: str | None, subnet: str | None, ip_address: str | None,
                         dns_name_label: str | None) -> None:
    """Refuse what az refuses, or what the API would, before anything is made: a group
    in a subnet is private (no public IP, no DNS name label), a private one needs a subnet."""
    private = ip_address is not None and ip_address.lower() == "private"
    if not subnet:
        if vnet:
            raise click.UsageError("usage error: --vnet NAME --subnet NAME | --vnet ID "
                                   "--subnet NAME | --subnet ID")
        if private:
            raise click.UsageError("--ip-address Private places the group in a virtual "
                                   "network: give its subnet with --vnet NAME --subnet NAME "
                                   "(or --subnet ID).")
        return
    if not vnet and not is_resource_id(subnet):
        raise click.UsageError("usage error: --vnet NAME --subnet NAME | --vnet ID --subnet "
                               "NAME | --subnet ID")
    if dns_name_label:
        raise click.UsageError("--dns-name-label cannot be used with --subnet: a group in a "
                               "virtual network has a private IP address and no DNS name "
                               "label.")
    if ip_address and not private:
        raise click.UsageError("--ip-address Public cannot be used with --subnet: a group in "
                               "a virtual network has a private IP address.")


# Top-level keys of a container group resource; an ACI YAML file's others
# (apiVersion, az export's additional_properties) are not part of the body.
_RESOURCE_KEYS = ("name", "type", "location", "tags", "identity", "zones", "properties")


def body_from_file(path: Path, name: str | None) -> tuple[str, dict[str, Any]]:
    """The group's name and ARM body from an ACI YAML file (as ``az container
    create --file``: the name of ``-n`` and of the file must agree)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidArgument(f"cannot read {path}: {exc.strerror or exc}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InvalidArgument(f"Error while parsing yaml file {path}: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("properties"), dict):
        raise InvalidArgument(f"{path} is not a container group: it needs a 'properties' mapping")
    in_file = data.get("name")
    if name and in_file and name != in_file:
        raise InvalidArgument("The name parameter and name from yaml definition must match.")
    name = name or (str(in_file) if in_file else None)
    if not name:
        raise InvalidArgument("The name of the container group is required")
    body = {k: data[k] for k in _RESOURCE_KEYS if data.get(k) is not None}
    body["name"] = name
    return name, body


def _secrets_of(body: Mapping[str, Any]) -> list[str]:
    """The secret values of a deployment file, whatever its shape: a file the API
    will refuse must still be read here, so that its error is the API's."""
    def mapping(value: Any) -> Mapping[str, Any]:
        return value if isinstance(value, Mapping) else {}

    def items(value: Any) -> list[Mapping[str, Any]]:
        return [v for v in value if isinstance(v, Mapping)] if isinstance(value, list) else []

    props = mapping(body.get("properties"))
    found: list[str] = []
    for key in ("containers", "initContainers"):
        for c in items(props.get(key)):
            for env in items(mapping(c.get("properties")).get("environmentVariables")):
                found.append(str(env.get("secureValue") or ""))
    found += [str(c.get("password") or "") for c in items(props.get("imageRegistryCredentials"))]
    for volume in items(props.get("volumes")):
        found.append(str(mapping(volume.get("azureFile")).get("storageAccountKey") or ""))
        found += [str(v) for v in mapping(volume.get("secret")).values()]
    return found


@container.command("create", cls=_AzCommand)
@click.option("--resource-group", "-g", "resource_group", required=True,
              help="Name of resource group.")
@click.option("--name", "-n", help="The name of the container group.")
@click.option("--image", help="The container image name.")
@click.option("--file", "-f", "file", type=click.Path(dir_okay=False, path_type=Path),
              help="The path to the input file (an ACI YAML file); the other "
                   "container flags are then ignored.")
@click.option("--location", "-l",
              help="Location. Default: the resource group's location.")
@click.option("--cpu", type=float, default=1, show_default=True,
              help="The required number of CPU cores of the containers, accurate to one "
                   "decimal place.")
@click.option("--memory", type=float, default=1.5, show_default=True,
              help="The required memory of the containers in GB, accurate to one decimal place.")
@click.option("--ports", type=int, multiple=True, metavar="PORT [PORT ...]",
              help="A list of ports to open. Space-separated list of ports.  Default: 80.")
@click.option("--protocol", type=click.Choice(["TCP", "UDP"], case_sensitive=False),
              help="The network protocol to use.")
@click.option("--ip-address", type=click.Choice(["Public", "Private"], case_sensitive=False),
              help="The IP address type of the container group.")
@click.option("--dns-name-label",
              help="The dns name label for container group with public IP.")
@click.option("--restart-policy", default="Always", show_default=True,
              type=click.Choice(["Always", "Never", "OnFailure"], case_sensitive=False),
              help="Restart policy for all containers within the container group.")
@click.option("--command-line",
              help="The command line to run when the container is started, e.g. "
                   "'/bin/bash -c myscript.sh'.")
@click.option("--environment-variables", "-e", multiple=True, metavar="KEY=VALUE [KEY=VALUE ...]",
              help="A list of environment variable for the container. Space-separated values "
                   "in 'key=value' format.")
@click.option("--secure-environment-variables", multiple=True,
              metavar="KEY=VALUE [KEY=VALUE ...]",
              help="A list of secure environment variable for the container. Space-separated "
                   "values in 'key=value' format.")
@click.option("--registry-login-server", help="The container image registry login server.")
@click.option("--registry-username",
              help="The username to log in container image registry server.")
@click.option("--registry-password",
              help="The password to log in container image registry server (prompted for "
                   "when omitted on a terminal).")
@click.option("--isolation", type=click.Choice(["sandbox", "container"], case_sensitive=False),
              help="skiff: run the group in one gVisor sandbox (a user-space kernel between "
                   "it and the host) or as hardened runc containers. Default: the server's "
                   "(skiff serve --default-isolation).")
@click.option("--os-type", type=click.Choice(["Linux", "Windows"], case_sensitive=False),
              default="Linux", show_default=True, help="The OS type of the containers.")
@click.option("--vnet",
              help="The name of the VNET when creating a new one or referencing an existing "
                   "one. Can also reference an existing vnet by ID.")
@click.option("--vnet-address-prefix", default=DEFAULT_VNET_PREFIX, show_default=True,
              metavar="PREFIX",
              help="The IP address prefix to use when creating a new VNET in CIDR format.")
@click.option("--subnet",
              help="The name of the subnet when creating a new VNET or referencing an "
                   "existing one. Can also reference an existing subnet by ID. The group "
                   "gets a private IP address in it (no --dns-name-label); a subnet that does "
                   "not exist is made, its VNET too.")
@click.option("--subnet-address-prefix", default=DEFAULT_SUBNET_PREFIX, show_default=True,
              metavar="PREFIX",
              help="The subnet IP address prefix to use when creating a new VNET in CIDR "
                   "format.")
@click.option("--no-wait", is_flag=True,
              help="Do not wait for the long-running operation to finish.")
@_output_options
@_errors
def create(resource_group: str, name: str | None, image: str | None, file: Path | None,
           location: str | None, cpu: float, memory: float, ports: tuple[int, ...],
           protocol: str | None, ip_address: str | None, dns_name_label: str | None,
           restart_policy: str, command_line: str | None, environment_variables: tuple[str, ...],
           secure_environment_variables: tuple[str, ...], registry_login_server: str | None,
           registry_username: str | None, registry_password: str | None, isolation: str | None,
           os_type: str, vnet: str | None, vnet_address_prefix: str, subnet: str | None,
           subnet_address_prefix: str, no_wait: bool, output: str, query: Any) -> None:
    """Create a container group.

    Waits until the group is deployed (a progress display on stderr) and prints
    it; exits 1 with the error if the deployment failed.

    \b
    Examples:
      skiff container create -g MyResourceGroup --name myapp --image myimage:latest --cpu 1 --memory 1
      skiff container create -g MyResourceGroup --name myapp --image nginx --ports 80 443 --dns-name-label contoso
      skiff container create -g MyResourceGroup --name myapp --image myimage:latest --command-line "/bin/sh -c '/path to/myscript.sh'"
      skiff container create -g MyResourceGroup --name myapp --image myimage:latest --environment-variables key1=value1 key2=value2
      skiff container create -g MyResourceGroup --name myapp --image nginx --vnet MyVnet --subnet MySubnet --ports 80
      skiff container create -g MyResourceGroup --name myapp -f containerGroup.yaml
    """  # noqa: E501
    _keep_secret(registry_password, *(v.partition("=")[2] for v in secure_environment_variables))
    body: dict[str, Any] = {}
    # The flags' body waits for the subnet's id, known once the client has found or made it.
    build: Callable[..., dict[str, Any]] | None = None
    if file is not None:
        if vnet or subnet:
            raise click.UsageError("--vnet and --subnet cannot be used with --file: give the "
                                   "subnet in the file's properties.subnetIds.")
        name, body = body_from_file(file, name)
        _keep_secret(*_secrets_of(body))
    else:
        if not name:
            raise click.UsageError("Missing option '--name' / '-n'.")
        if not image:
            raise click.UsageError("Missing option '--image' (or give a --file).")
        _check_network_flags(vnet=vnet, subnet=subnet, ip_address=ip_address,
                             dns_name_label=dns_name_label)
        if (registry_username or registry_password) and not registry_login_server:
            registry_login_server = _registry_server(image)
            if registry_login_server is None:
                raise InvalidArgument("Please specify --registry-login-server in order to use "
                                      "a custom image registry.")
        if registry_login_server:
            if not registry_username:
                raise InvalidArgument("Please specify --registry-username and "
                                      "--registry-password in order to use custom image "
                                      "registry.")
            if not registry_password:
                if not click.get_text_stream("stdin").isatty():
                    raise InvalidArgument("Please specify --registry-password in order to use "
                                          "custom image registry.")
                registry_password = click.prompt("Image registry password", hide_input=True)
                _keep_secret(registry_password)
        build = partial(
            group_body, name=name, image=image, cpu=cpu, memory=memory, ports=ports or (80,),
            protocol=protocol, ip_address=ip_address, dns_name_label=dns_name_label,
            restart_policy=restart_policy, command_line=command_line,
            environment_variables=_pairs(environment_variables, "--environment-variables"),
            secure_environment_variables=_pairs(secure_environment_variables,
                                                "--secure-environment-variables"),
            registry_login_server=registry_login_server, registry_username=registry_username,
            registry_password=registry_password, os_type=os_type, isolation=isolation)
    with _client() as client:
        ref = None if build is None or not subnet else subnet_ref(
            subscription=client.subscription, resource_group=resource_group, vnet=vnet,
            subnet=subnet)
        location = location or body.get("location") or client.resource_group_location(
            resource_group)
        if build is not None:
            subnet_id = None if ref is None else ensure_subnet(
                client, ref, location=location, vnet_prefix=vnet_address_prefix,
                subnet_prefix=subnet_address_prefix)
            body = build(subnet_id=subnet_id)
        if location:
            body["location"] = location
        if no_wait:
            client.create_or_update(resource_group, name, body, wait=False)
            return
        with _progress() as progress:
            group = client.create_or_update(resource_group, name, body, progress=progress)
    emit(az_view(group), output, query, table=_group_table)


@container.command("show")
@_rg_name
@_output_options
@_errors
def show(resource_group: str, name: str, output: str, query: Any) -> None:
    """Get the details of a container group."""
    with _client() as client:
        group = client.get(resource_group, name)
    emit(az_view(group), output, query, table=_group_table)


@container.command("list")
@click.option("--resource-group", "-g", "resource_group",
              help="Name of resource group. Default: every group of the subscription.")
@_output_options
@_errors
def list_(resource_group: str | None, output: str, query: Any) -> None:
    """List container groups."""
    with _client() as client:
        groups = client.list(resource_group)
    emit([az_view(g) for g in groups], output, query, table=_group_table)


@container.command("delete")
@_rg_name
@click.option("--yes", "-y", is_flag=True, help="Do not prompt for confirmation.")
@click.option("--no-wait", is_flag=True,
              help="Do not wait for the long-running operation to finish.")
@_output_options
@_errors
def delete(resource_group: str, name: str, yes: bool, no_wait: bool, output: str,
           query: Any) -> None:
    """Delete a container group."""
    if not yes:
        if not click.get_text_stream("stdin").isatty():
            raise InvalidArgument("Unable to prompt for confirmation as no tty available. "
                                  "Use --yes.")
        if not click.confirm("Are you sure you want to perform this operation?"):
            raise InvalidArgument("Operation cancelled.")
    with _client() as client:
        if no_wait:
            deleted = client.delete(resource_group, name, wait=False)
        else:
            with _progress() as progress:
                deleted = client.delete(resource_group, name, progress=progress)
    if deleted:
        emit(az_view(deleted), output, query, table=_group_table)


def _container_name(group: Mapping[str, Any], name: str | None, *, single: bool = False) -> str:
    if name:
        return name
    containers = (group.get("properties") or {}).get("containers") or []
    if not containers:
        raise InvalidArgument(f"the container group {group.get('name')} has no containers")
    if single and len(containers) > 1:
        raise InvalidArgument("--container-name required when container group has more than "
                              "one container.")
    return str(containers[0].get("name"))


def _stdin_pump(ws: ClientConnection, read: Callable[[], bytes], *, eot: bool) -> None:
    """Send what stdin gives, as text messages, until it ends or the stream closes.

    With ``eot``, input that ended is followed by Ctrl-D, the end of input for
    the container's terminal; not after no input at all, so that a command
    run with nothing on stdin prints nothing but its own output."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    sent = False
    try:
        while chunk := read():
            text = decoder.decode(chunk)
            if text:
                ws.send(text)
                sent = True
        if eot and sent:
            ws.send(_EOT)
    except (ConnectionClosed, OSError, ValueError):
        return  # the process ended, or stdin went away: nothing left to say


@contextmanager
def _raw_terminal(fd: int) -> Iterator[None]:
    """The terminal in raw mode, as az's exec sets it, restored however we leave."""
    import termios
    import tty

    saved = termios.tcgetattr(fd)
    tty.setraw(fd)
    try:
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def _stdin_reader(stdin: str) -> Callable[[], bytes]:
    """What reads the next bytes of input: the terminal's keys, or the pipe's chunks."""
    if stdin == "tty":
        fd = sys.stdin.fileno()
        return lambda: os.read(fd, 4096)
    source: Any = click.get_binary_stream("stdin")
    reader = getattr(source, "read1", source.read)
    return lambda: cast(bytes, reader(4096))


def stream(client: SkiffClient, target: WebSocketTarget, *, stdin: str = "none") -> None:
    """Copy a websocket's output to stdout until the server closes it.

    ``stdin`` is ``"none"`` (attach, logs --follow), ``"pipe"`` (stdin's bytes
    are sent, then end-of-input) or ``"tty"`` (the terminal in raw mode, every
    key sent as typed)."""
    out = click.get_binary_stream("stdout")
    raw = _raw_terminal(sys.stdin.fileno()) if stdin == "tty" else nullcontext()
    with client.websocket(target) as ws, raw:
        if stdin != "none":
            threading.Thread(target=_stdin_pump, args=(ws, _stdin_reader(stdin)),
                             kwargs={"eot": stdin == "pipe"}, daemon=True).start()
        try:
            for message in ws:
                out.write(message.encode() if isinstance(message, str) else message)
                out.flush()
        except ConnectionClosedError as exc:
            raise ApiError(0, "ConnectionFailed", f"the stream broke off: {exc}") from exc


@container.command("logs")
@_rg_name
@click.option("--container-name",
              help="The container name to tail the logs. If omitted, the first container in "
                   "the container group will be chosen.")
@click.option("--follow", is_flag=True, help="Indicate to stream the tailing logs.")
@click.option("--tail", type=click.IntRange(min=0),
              help="Show only the last N lines (skiff extension).")
@click.option("--timestamps", is_flag=True,
              help="Prefix each line with the time it was written (skiff extension).")
@click.option("--previous", is_flag=True,
              help="Show the logs of the container's previous instance, the one before its "
                   "last restart (skiff extension).")
@_errors
def logs(resource_group: str, name: str, container_name: str | None, follow: bool,
         tail: int | None, timestamps: bool, previous: bool) -> None:
    """Examine the logs for a container in a container group."""
    if follow and (tail is not None or previous or timestamps):
        raise click.UsageError("--follow streams the container's whole output: it cannot be "
                               "combined with --tail, --timestamps or --previous.")
    with _client() as client:
        container_name = _container_name(client.get(resource_group, name), container_name)
        if follow:
            stream(client, client.attach(resource_group, name, container_name))
            return
        content = client.logs(resource_group, name, container_name, tail=tail,
                              timestamps=timestamps, previous=previous)
    click.echo(content, nl=not content.endswith("\n"))


@container.command("exec")
@_rg_name
@click.option("--exec-command", required=True,
              help="The command to run from within the container.")
@click.option("--container-name",
              help="The container name where to execute the command. Can be omitted for "
                   "container groups with only one container.")
@click.option("--terminal-row-size", type=click.IntRange(min=1),
              help="The row size for the command output.  Default: the terminal's, else 20.")
@click.option("--terminal-col-size", type=click.IntRange(min=1),
              help="The col size for the command output.  Default: the terminal's, else 80.")
@_errors
def exec_(resource_group: str, name: str, exec_command: str, container_name: str | None,
          terminal_row_size: int | None, terminal_col_size: int | None) -> None:
    """Execute a command from within a running container of a container group.

    On a terminal the session is interactive (raw mode: keys go to the
    container as typed); otherwise standard input is sent, then end-of-input
    (Ctrl-D) if there was any.

    \b
    Examples:
      skiff container exec -g MyResourceGroup --name mynginx --container-name nginx --exec-command "/bin/bash"
    """  # noqa: E501
    tty = click.get_text_stream("stdin").isatty()
    rows, cols = 20, 80
    if tty:
        with suppress(OSError):
            size = os.get_terminal_size(sys.stdin.fileno())
            if size.lines and size.columns:  # a new pseudo-terminal says 0x0
                rows, cols = size.lines, size.columns
    with _client() as client:
        container_name = _container_name(client.get(resource_group, name), container_name,
                                         single=True)
        target = client.exec(resource_group, name, container_name, exec_command,
                             rows=terminal_row_size or rows, cols=terminal_col_size or cols)
        stream(client, target, stdin="tty" if tty else "pipe")


@container.command("attach")
@_rg_name
@click.option("--container-name",
              help="The container to attach to. If omitted, the first container in the "
                   "container group will be chosen.")
@_errors
def attach(resource_group: str, name: str, container_name: str | None) -> None:
    """Attach local standard output and error streams to a container in a container group.

    Streams the container's output, from its start, until the container exits.
    """
    with _client() as client:
        container_name = _container_name(client.get(resource_group, name), container_name)
        stream(client, client.attach(resource_group, name, container_name))


@container.command("start")
@_rg_name
@click.option("--no-wait", is_flag=True,
              help="Do not wait for the long-running operation to finish.")
@_errors
def start(resource_group: str, name: str, no_wait: bool) -> None:
    """Starts all containers in a container group.

    Compute resources will be allocated and the containers started again.
    """
    with _client() as client:
        if no_wait:
            client.start(resource_group, name, wait=False)
            return
        with _progress() as progress:
            client.start(resource_group, name, progress=progress)


@container.command("stop")
@_rg_name
@_errors
def stop(resource_group: str, name: str) -> None:
    """Stops all containers in a container group.

    Compute resources will be deallocated.
    """
    with _client() as client:
        client.stop(resource_group, name)


@container.command("restart")
@_rg_name
@click.option("--no-wait", is_flag=True,
              help="Do not wait for the long-running operation to finish.")
@_errors
def restart(resource_group: str, name: str, no_wait: bool) -> None:
    """Restarts all containers in a container group.

    Restarts all containers in a container group in place. If container image
    has updates, new image will be downloaded.
    """
    with _client() as client:
        if no_wait:
            client.restart(resource_group, name, wait=False)
            return
        with _progress() as progress:
            client.restart(resource_group, name, progress=progress)


@container.command("export")
@_rg_name
@click.option("--file", "-f", "file", required=True,
              type=click.Path(dir_okay=False, writable=True, path_type=Path),
              help="The file path to export the container group.")
@_errors
def export(resource_group: str, name: str, file: Path) -> None:
    """Export a container group in yaml format.

    The file is an ACI YAML file for `create --file`, without the group's state.
    Secrets (secure environment variables, registry passwords, storage keys,
    secret volumes' contents) are not exported: the API never shows them. A
    comment at the top of the file lists where to put them back.
    """
    with _client() as client:
        group = client.get(resource_group, name)
    text = yaml.safe_dump(export_view(group), default_flow_style=False, allow_unicode=True)
    slots = secret_slots(group)
    if slots:
        text = "".join(["# Secrets are not exported. Put them back before "
                        "`skiff container create --file`:\n",
                        *(f"#   {slot}\n" for slot in slots), text])
    try:
        file.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise InvalidArgument(f"cannot write {file}: {exc.strerror or exc}") from exc
