"""The create page's two ways to a container group body: the form and an ACI YAML file.

The form is the Azure portal's "Create container instance" (basics, networking,
advanced) and makes the body ``skiff container create``'s flags make
(:func:`skiff.documents.group_body`, the same translation as az's); the YAML tab takes
what ``skiff container create --file`` takes (:func:`skiff.documents.body_from_yaml`).
The portal checks only what it must to build a body (a number is a number, a pair has a
``=``); everything else is the API's to judge, and its error is shown next to the field
its ARM ``target`` names (:func:`field_of`), so the page and the API cannot disagree.

Secret values (registry password, secure environment variables, a YAML file carrying
either) are never written back into a page: a form shown again asks for them again.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from skiff.documents import InvalidDocument, body_from_yaml, group_body, secrets_of

#: The form's fields whose values are secret: never rendered back.
SECRET_FIELDS = frozenset({"registry_password", "secure_env", "af_key", "secret_files"})
#: The form's fields (name → default), in the order of the page.
FIELDS: dict[str, str] = {
    "scope": "", "name": "", "location": "", "image": "", "registry_server": "",
    "registry_username": "", "registry_password": "", "cpu": "1", "memory": "1.5",
    "networking": "public", "dns_label": "", "subnet": "", "ports": "80", "protocol": "TCP",
    "restart_policy": "Always", "env": "", "secure_env": "", "command": "",
    "af_account": "", "af_share": "", "af_key": "", "af_mount": "", "af_readonly": "",
    "ed_mount": "", "secret_files": "", "secret_mount": "", "git_repository": "",
    "git_directory": "", "git_revision": "", "git_mount": "",
}
#: The volumes the form makes, in the body's order: (kind, the ARM key, its fields'
#: prefix). A volume's index in the body names its kind (:func:`field_of`).
VOLUME_KINDS = ("azureFile", "emptyDir", "secret", "gitRepo")
#: Within a volume's error target (``...volumes[i].<rest>``), its field, per kind.
_VOLUME_TARGETS: dict[str, tuple[tuple[str, str], ...]] = {
    "azureFile": ((r"shareName", "af_share"), (r"storageAccountKey", "af_key"),
                  (r"", "af_account")),
    "emptyDir": ((r"", "ed_mount"),),
    "secret": ((r"", "secret_files"),),
    "gitRepo": ((r"directory", "git_directory"), (r"revision", "git_revision"),
                (r"", "git_repository")),
}
_MOUNTS = {"azureFile": "af_mount", "emptyDir": "ed_mount", "secret": "secret_mount",
           "gitRepo": "git_mount"}
NETWORKING = {"public": "Public", "private": "Private", "none": "None"}
RESTART_POLICIES = ("Always", "OnFailure", "Never")
PROTOCOLS = ("TCP", "UDP")

#: An ARM error's ``target`` (its tail) → the form's field, first match wins.
_TARGETS: tuple[tuple[str, str], ...] = (
    (r"imageRegistryCredentials.*password", "registry_password"),
    (r"imageRegistryCredentials.*username", "registry_username"),
    (r"imageRegistryCredentials", "registry_server"),
    (r"ipAddress\.dnsNameLabel", "dns_label"),
    (r"subnetIds", "subnet"),
    (r"ports", "ports"),
    (r"ipAddress(\.type)?$", "networking"),
    (r"resources.*cpu", "cpu"),
    (r"resources.*memory", "memory"),
    (r"\.image$", "image"),
    (r"\.command$", "command"),
    (r"restartPolicy", "restart_policy"),
    (r"containers\[0\]\.name$", "name"),
    (r"^name$", "name"),
    (r"^location$", "location"),
)
#: ARM codes without a target that still concern one field.
_CODES = {"ResourceGroupNotFound": "scope", "SubscriptionNotFound": "scope",
          "InvalidImage": "image", "InaccessibleImage": "image",
          "LocationNotAvailableForResourceType": "location", "NoRegisteredProviderFound":
          "location", "ServiceUnavailable": "cpu", "StorageAccountNotFound": "af_account",
          "ShareNotFound": "af_share", "InvalidGitRepoVolume": "git_repository",
          "InvalidSecretVolume": "secret_files", "InvalidAzureFileVolume": "af_account"}
_VOLUME = re.compile(r"volumes\[(\d+)\]\.?(.*)$")
_MOUNT = re.compile(r"volumeMounts\[(\d+)\]")
_ENV = re.compile(r"environmentVariables\[(\d+)\]")
_SECRET_KEYS = re.compile(r"secureValue|password|storageAccountKey|secret", re.IGNORECASE)


class FormInvalid(Exception):
    """The form cannot make a body: the message of each field at fault."""

    def __init__(self, errors: Mapping[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = dict(errors)


@dataclass(frozen=True)
class Target:
    """Where a group is created: its subscription, resource group and name."""

    subscription: str
    resource_group: str
    name: str


def values_of(form: Mapping[str, str]) -> dict[str, str]:
    """The form's fields as sent (defaults for those missing), to render it again: the
    secret ones emptied."""
    return {k: ("" if k in SECRET_FIELDS else form.get(k, default).strip())
            for k, default in FIELDS.items()}


def form_body(form: Mapping[str, str]) -> tuple[Target, dict[str, Any]]:
    """The group the form describes, and its ARM body; :class:`FormInvalid` when a field
    cannot be read (the API judges the rest)."""
    get = {k: form.get(k, default).strip() for k, default in FIELDS.items()}
    errors: dict[str, str] = {}
    subscription, _, resource_group = get["scope"].partition("/")
    if not subscription or not resource_group:
        errors["scope"] = "Choose a resource group."
    if not get["name"]:
        errors["name"] = "Name the container group."
    if not get["image"]:
        errors["image"] = "Name an image, e.g. mcr.microsoft.com/azuredocs/aci-helloworld."
    cpu = _number(get["cpu"], "cpu", "CPU cores", errors)
    memory = _number(get["memory"], "memory", "Memory (GB)", errors)
    ports = _ports(get["ports"], errors)
    env = _pairs(form.get("env", ""), "env", errors)
    secure_env = _pairs(form.get("secure_env", ""), "secure_env", errors)
    networking = NETWORKING.get(get["networking"].lower())
    if networking is None:
        errors["networking"] = "Choose Public, Private or None."
    if get["restart_policy"] not in RESTART_POLICIES:
        errors["restart_policy"] = "Choose Always, OnFailure or Never."
    if get["protocol"] not in PROTOCOLS:
        errors["protocol"] = "Choose TCP or UDP."
    if networking == "Private" and not get["subnet"]:
        errors["subnet"] = "A private group is placed in a subnet: give its resource ID."
    if networking != "Public" and get["dns_label"]:
        errors["dns_label"] = "Only a public group has a DNS name label."
    volumes = _volumes(get, form, errors)
    if errors:
        raise FormInvalid(errors)
    server = get["registry_server"] or None
    body = group_body(
        name=get["name"], image=get["image"], location=get["location"] or None, cpu=cpu,
        memory=memory, ports=ports, protocol=get["protocol"],
        ip_address=None if networking == "None" else networking,
        dns_name_label=get["dns_label"] or None, restart_policy=get["restart_policy"],
        command_line=get["command"] or None, environment_variables=env,
        secure_environment_variables=secure_env, registry_login_server=server,
        registry_username=get["registry_username"] if server else None,
        registry_password=form.get("registry_password", "") if server else None,
        subnet_id=get["subnet"] if networking == "Private" else None, **volumes)
    return Target(subscription, resource_group, get["name"]), body


def volume_kinds(form: Mapping[str, str]) -> tuple[str, ...]:
    """The kinds of the volumes the form asks for, in the body's order (empty fields of a
    kind: none of it)."""
    get = {k: form.get(k, "").strip() for k in FIELDS}
    wanted = {"azureFile": any(get[k] for k in ("af_account", "af_share", "af_key",
                                                 "af_mount")),
              "emptyDir": bool(get["ed_mount"]),
              "secret": bool(get["secret_files"] or get["secret_mount"]),
              "gitRepo": any(get[k] for k in ("git_repository", "git_directory",
                                              "git_revision", "git_mount"))}
    return tuple(kind for kind in VOLUME_KINDS if wanted[kind])


def _volumes(get: Mapping[str, str], form: Mapping[str, str],
             errors: dict[str, str]) -> dict[str, Any]:
    """``group_body``'s volume arguments from the form's Volumes part; a part left empty
    is no volume, one half filled says what it lacks (as az's flags do)."""
    found: dict[str, Any] = {}
    kinds = volume_kinds(form)
    if "azureFile" in kinds:
        for field, what in (("af_account", "the storage account's name"),
                            ("af_share", "the share's name"), ("af_key", "the account's key"),
                            ("af_mount", "where it is mounted")):
            if not (form.get(field, "") if field == "af_key" else get[field]):
                errors[field] = f"An Azure file share volume needs {what}."
        found["azure_file"] = {"account": get["af_account"], "share": get["af_share"],
                               "key": form.get("af_key", ""), "mount_path": get["af_mount"],
                               "read_only": "true" if get["af_readonly"] else "false"}
    if "emptyDir" in kinds:
        found["empty_dir"] = get["ed_mount"]
    if "secret" in kinds:
        files = dict(_pairs(form.get("secret_files", ""), "secret_files", errors))
        if not files and "secret_files" not in errors:
            errors["secret_files"] = "A secret volume needs a file: NAME=base64 content."  # noqa: S105
        if not get["secret_mount"]:
            errors["secret_mount"] = "A secret volume needs where it is mounted."  # noqa: S105
        found.update(secrets={k: v.strip() for k, v in files.items()},
                     secrets_mount_path=get["secret_mount"])
    if "gitRepo" in kinds:
        if not get["git_repository"]:
            errors["git_repository"] = "A gitRepo volume needs the repository's URL."
        if not get["git_mount"]:
            errors["git_mount"] = "A gitRepo volume needs where it is mounted."
        found["git_repo"] = {"repository": get["git_repository"],
                             "directory": get["git_directory"],
                             "revision": get["git_revision"], "mount_path": get["git_mount"]}
    return found


def yaml_body(form: Mapping[str, str]) -> tuple[Target, dict[str, Any]]:
    """The group an ACI YAML file (the YAML tab's text) describes, and its ARM body."""
    subscription, _, resource_group = form.get("scope", "").strip().partition("/")
    errors = {} if subscription and resource_group else {"scope": "Choose a resource group."}
    text = form.get("yaml", "")
    if not text.strip():
        errors["yaml"] = "Paste an ACI YAML file, or choose one."
    if errors:
        raise FormInvalid(errors)
    try:
        name, body = body_from_yaml(text, None, "the YAML")
    except InvalidDocument as exc:
        raise FormInvalid({"yaml": exc.message}) from exc
    return Target(subscription, resource_group, name), body


def has_secrets(text: str) -> bool:
    """Whether an ACI YAML file carries a secret value (then it is not shown again)."""
    try:
        _, body = body_from_yaml(text, None, "the YAML")
    except InvalidDocument:  # unreadable: shown again only without a secret's key in it
        return _SECRET_KEYS.search(text) is not None
    return any(secrets_of(body))


def field_of(target: str | None, code: str, env_count: int, tab: str = "form",
             volumes: tuple[str, ...] = ()) -> str:
    """The form's field an ARM error concerns ("" when none: it is shown above the
    form). ``env_count``: how many plain variables come before the secure ones in the
    body (the form sends both in one list); ``volumes``: the kinds of the body's volumes
    (:func:`volume_kinds`), whose index in a target names the part of the form. On the
    YAML tab, everything but the resource group is the file's."""
    if tab == "yaml":
        return "scope" if _CODES.get(code) == "scope" else "yaml"
    if target:
        env = _ENV.search(target)
        if env:
            return "env" if int(env.group(1)) < env_count else "secure_env"
        volume, mount = _VOLUME.search(target), _MOUNT.search(target)
        if volume and int(volume.group(1)) < len(volumes):
            kind = volumes[int(volume.group(1))]
            return next(f for p, f in _VOLUME_TARGETS[kind] if re.search(p, volume.group(2)))
        if mount and int(mount.group(1)) < len(volumes):
            return _MOUNTS[volumes[int(mount.group(1))]]
        for pattern, field in _TARGETS:
            if re.search(pattern, target):
                return field
    return _CODES.get(code, "")


def _number(text: str, field: str, label: str, errors: dict[str, str]) -> float:
    try:
        value = float(text)
    except ValueError:
        errors[field] = f"{label} must be a number."
        return 0.0
    if value != value or value in (float("inf"), float("-inf")):
        errors[field] = f"{label} must be a number."
    return value


def _ports(text: str, errors: dict[str, str]) -> tuple[int, ...]:
    words = [w for w in re.split(r"[\s,]+", text) if w]
    if not all(w.isdigit() and 0 < int(w) < 65536 for w in words):
        errors["ports"] = "Ports are numbers from 1 to 65535, separated by commas or spaces."
        return ()
    if len(set(words)) != len(words):
        errors["ports"] = "A port is listed more than once."
    return tuple(int(w) for w in words)


def _pairs(text: str, field: str, errors: dict[str, str]) -> list[tuple[str, str]]:
    pairs = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            errors[field] = f"Line {number} is not in the form NAME=value."
            return []
        pairs.append((key.strip(), value))
    return pairs
