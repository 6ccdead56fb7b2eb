"""ARM's and ACI's limits on a container group's body, refused at PUT with their codes.

Each class of input the hardening issue found accepted (names, locations, tags,
environment variables, commands, secret volumes, mount paths) is checked at
its bound: the last value accepted and the first refused. Errors never quote
a secret.
"""

from __future__ import annotations

import base64
import copy
from typing import Any

import pytest

from skiff.errors import ArmError
from skiff.models import parse_container_group
from skiff.models.arm import (
    MAX_TAG_NAME,
    MAX_TAG_VALUE,
    MAX_TAGS,
    check_location_text,
    check_resource_group_name,
    check_tags,
    merge_patch,
)
from skiff.models.network import parse_vnet
from skiff.models.rules import MAX_ENV_VARS, MAX_SECRET_VOLUME_BYTES


def group(**container: Any) -> dict[str, Any]:
    props: dict[str, Any] = {"image": "busybox", "resources": {
        "requests": {"cpu": 1, "memoryInGB": 1}}, **container.pop("props", {})}
    return {"location": "local", "properties": {
        "osType": "Linux", "containers": [{"name": "c", "properties": props}], **container}}


def parse(body: dict[str, Any]) -> None:
    parse_container_group(body, name="g", default_location="local", known_locations=["local"])


def refused(body: dict[str, Any]) -> ArmError:
    with pytest.raises(ArmError) as caught:
        parse(body)
    assert caught.value.status == 400
    return caught.value


@pytest.mark.parametrize("name", ["rg", "a" * 90, "my.rg_(1)-x", "groupé", "a.b", "1"])
def test_valid_resource_group_names_pass(name: str) -> None:
    """Letters (Unicode too), digits, '_', '-', '.', '(' and ')', up to 90: accepted."""
    check_resource_group_name(name)


@pytest.mark.parametrize("name", ["", "a" * 91, "a" * 5000, "rg.", "..", "a\nb", "a\x00b",
                                  "a b", "a/b", "a%b", "rg\t"])
def test_invalid_resource_group_names_are_refused(name: str) -> None:
    """Empty, over 90, a trailing period, control characters, spaces, '/': refused."""
    with pytest.raises(ArmError) as caught:
        check_resource_group_name(name)
    assert caught.value.code == "InvalidResourceGroup"


@pytest.mark.parametrize("location", ["", "   ", None, 5, "x" * 91, "west\neurope"])
def test_locations_that_are_not_names_are_refused(location: Any) -> None:
    """A location must be a short printable non-empty string."""
    with pytest.raises(ArmError) as caught:
        check_location_text(location)
    assert caught.value.code in ("LocationRequired", "InvalidLocation")


def test_tags_at_their_bounds_pass() -> None:
    """50 tags, a 512-character name and a 256-character value are ARM's limits."""
    tags = {f"t{i}": "v" for i in range(MAX_TAGS - 1)}
    tags["n" * MAX_TAG_NAME] = "v" * MAX_TAG_VALUE
    assert check_tags(tags) == tags


@pytest.mark.parametrize(("tags", "code"), [
    ({f"t{i}": "v" for i in range(MAX_TAGS + 1)}, "InvalidTagCount"),
    ({f"t{i}": "v" for i in range(10_000)}, "InvalidTagCount"),
    ({"n" * (MAX_TAG_NAME + 1): "v"}, "InvalidTagNameLength"),
    ({"n": "v" * (MAX_TAG_VALUE + 1)}, "InvalidTagValueLength"),
    ({"a/b": "v"}, "InvalidTagNameCharacters"),
    ({"a<b": "v"}, "InvalidTagNameCharacters"),
    ({"a\nb": "v"}, "InvalidTagNameCharacters"),
    ({"": "v"}, "InvalidTagNameCharacters"),
    ({"n": 1}, "InvalidTagValue"),
    ({"n": None}, "InvalidTagValue"),
    ({"n": {"nested": "x"}}, "InvalidTagValue"),
    ([1, 2], "InvalidRequestContent"),
])
def test_tags_beyond_arms_limits_are_refused(tags: Any, code: str) -> None:
    """Too many tags, too long, reserved characters, values that are not strings."""
    with pytest.raises(ArmError) as caught:
        check_tags(tags)
    assert caught.value.code == code


@pytest.mark.parametrize("parse_body", ["group", "vnet"])
def test_bodies_apply_arms_rules_before_reading_types(parse_body: str) -> None:
    """A numeric tag value is refused, not read as a string; an empty location is refused."""
    def run(body: dict[str, Any]) -> None:
        if parse_body == "group":
            parse(body)
        else:
            parse_vnet(body, name="v", default_location="local")

    base: dict[str, Any] = (group() if parse_body == "group" else {
        "location": "local", "properties": {"addressSpace": {"addressPrefixes": ["10.9.0.0/16"]}}})
    for broken, code in (({"tags": {"n": 5}}, "InvalidTagValue"),
                         ({"location": ""}, "LocationRequired")):
        with pytest.raises(ArmError) as caught:
            run({**base, **broken})
        assert caught.value.code == code


def test_environment_variables_are_bounded() -> None:
    """1,000 variables pass; 1,001 (or 10,000) are TooManyEnvironmentVariables."""
    def env(count: int) -> dict[str, Any]:
        return group(props={"environmentVariables": [
            {"name": f"V{i}", "value": "x"} for i in range(count)]})

    parse(env(MAX_ENV_VARS))
    assert refused(env(MAX_ENV_VARS + 1)).code == "TooManyEnvironmentVariables"
    assert refused(env(10_000)).code == "TooManyEnvironmentVariables"


@pytest.mark.parametrize("field", ["value", "secureValue"])
def test_nul_in_an_environment_value_is_refused_without_echoing_it(field: str) -> None:
    """A NUL cannot reach a process's environment; the error does not quote the value."""
    error = refused(group(props={"environmentVariables": [
        {"name": "V", field: "s3cret\x00tail"}]}))
    assert error.code == "InvalidEnvironmentVariable"
    assert "s3cret" not in error.message


@pytest.mark.parametrize("where", ["command", "probe", "init"])
def test_nul_in_a_command_is_refused(where: str) -> None:
    """Every command word (container, init container, exec probe) is a C string."""
    words = ["sh", "-c", "echo\x00x"]
    if where == "command":
        body = group(props={"command": words})
    elif where == "probe":
        body = group(props={"livenessProbe": {"exec": {"command": words}}})
    else:
        body = group(initContainers=[{"name": "i", "properties": {
            "image": "busybox", "command": words}}])
    assert refused(body).code == "InvalidCommand"


def secret_group(files: dict[str, str]) -> dict[str, Any]:
    return group(props={"volumeMounts": [{"name": "s", "mountPath": "/s"}]},
                 volumes=[{"name": "s", "secret": files}])


@pytest.mark.parametrize("key", ["..\\x", "..data", ".", "..", "a/b", "a b", "a\x00",
                                 "k" * 254, ""])
def test_secret_file_names_beyond_the_rule_are_refused(key: str) -> None:
    """A secret's file name is a Kubernetes Secret key: [-._a-zA-Z0-9], 1-253, not '..'*."""
    assert refused(secret_group({key: "eA=="})).code == "InvalidSecretVolume"


def test_secret_files_are_bounded_to_one_mebibyte() -> None:
    """1 MiB of content passes; a byte more is refused, without quoting any of it."""
    at_limit = base64.b64encode(b"s" * MAX_SECRET_VOLUME_BYTES).decode()
    parse(secret_group({"a.txt": at_limit, "b-1_.conf": ""}))
    over = base64.b64encode(b"s" * (MAX_SECRET_VOLUME_BYTES // 2 + 3)).decode()
    error = refused(secret_group({"a": over, "b": over}))
    assert error.code == "InvalidSecretVolume"
    assert over[:16] not in error.message


@pytest.mark.parametrize("path", ["/", "/proc", "/proc/sys", "/sys", "/sys/fs/cgroup", "/dev",
                                  "/dev/", "//dev", "/dev/pts", "/./proc"])
def test_mount_paths_the_runtime_needs_are_refused(path: str) -> None:
    """A volume cannot hide /, /proc, /sys or /dev from the container."""
    body = group(props={"volumeMounts": [{"name": "v", "mountPath": path}]},
                 volumes=[{"name": "v", "emptyDir": {}}])
    assert refused(body).code == "InvalidVolumeMountPath"


@pytest.mark.parametrize("path", ["/dev/shm", "/data", "/procfs", "/device"])
def test_other_mount_paths_pass(path: str) -> None:
    """/dev/shm (a common emptyDir) and look-alike names stay allowed."""
    parse(group(props={"volumeMounts": [{"name": "v", "mountPath": path}]},
                volumes=[{"name": "v", "emptyDir": {}}]))


@pytest.mark.parametrize("image", ["[::1]:99999/x", "[::1]:0/x", "[1::2::3]/x", "[::1]:port/x",
                                   "host:65536/x"])
def test_registry_hosts_that_cannot_be_reached_are_refused(image: str) -> None:
    """A port outside 1-65535 or a bracketed host that is no IPv6 address: InvalidImageReference."""
    assert refused(group(props={"image": image})).code == "InvalidImageReference"


@pytest.mark.parametrize("image", ["[::1]:5000/x", "[::1]/x", "host:65535/x"])
def test_registry_hosts_at_their_bounds_pass(image: str) -> None:
    """An IPv6 literal (with or without a port) and port 65535 are valid registry hosts."""
    parse(group(props={"image": image}))


@pytest.mark.parametrize(("target", "patch", "merged"), [
    ({"a": {"b": 1, "c": 2}}, {"a": {"b": 3}}, {"a": {"b": 3, "c": 2}}),
    ({"a": {"b": 1, "c": 2}}, {"a": {"c": None}}, {"a": {"b": 1}}),
    ({"a": [1, 2]}, {"a": [3]}, {"a": [3]}),
    ({"a": 1}, {"b": {"c": None, "d": 4}}, {"a": 1, "b": {"d": 4}}),
    ({"a": {"b": 1}}, {"a": "flat"}, {"a": "flat"}),
    ({"a": 1}, {}, {"a": 1}),
])
def test_merge_patch_is_rfc_7396(target: dict[str, Any], patch: dict[str, Any],
                                 merged: dict[str, Any]) -> None:
    """ARM's PATCH bodies merge in depth; null removes; lists and scalars replace; the
    target is left as it was."""
    before = copy.deepcopy(target)
    assert merge_patch(target, patch) == merged
    assert target == before
