"""Config maps (``containers[].properties.configMap.keyValuePairs``): the body's rules, the
engine's spec, what counts as a change in place, and the fake engine's update in place
(a PUT through the routes: tests/unit/test_api_routes.py)."""

from __future__ import annotations

from typing import Any

import pytest

from skiff.core.spec import GroupSpec, changed_keys, config_maps, deployed
from skiff.errors import ArmError
from skiff.models import parse_container_group, to_engine_spec
from skiff.models.rules import MAX_CONFIG_MAP_BYTES, MAX_CONFIG_MAP_KEYS
from skiff.testing.fake import FakeEngine

IMAGE = "registry.test/busybox:1"


def doc(pairs: Any = None, *, script: str = "sleep 300", init: Any = None) -> dict[str, Any]:
    """A group body whose container c has ``pairs`` as its config map (None: no configMap)."""
    props: dict[str, Any] = {"image": IMAGE, "command": ["sh", "-c", script],
                             "resources": {"requests": {"cpu": 0.5, "memoryInGB": 0.5}}}
    if pairs is not None:
        props["configMap"] = {"keyValuePairs": pairs}
    body: dict[str, Any] = {"location": "local", "properties": {
        "osType": "Linux", "containers": [{"name": "c", "properties": props}]}}
    if init is not None:
        body["properties"]["initContainers"] = [{"name": "i", "properties": {
            "image": IMAGE, "configMap": init}}]
    return body


def spec_of(body: dict[str, Any]) -> GroupSpec:
    parsed = parse_container_group(body, name="g", default_location="local",
                                   known_locations=["local"])
    return to_engine_spec(parsed, group_id="gid", name="g")


def refused(body: dict[str, Any]) -> ArmError:
    with pytest.raises(ArmError) as caught:
        spec_of(body)
    assert caught.value.status == 400
    return caught.value


def test_a_config_map_reaches_the_spec_sorted_and_round_trips() -> None:
    """keyValuePairs become the container's sorted pairs; configMap {} is an empty map (a
    mount), no configMap none; the stored body keeps it as given (camelCase, any case in)."""
    spec = spec_of(doc({"b.conf": "x=1\n", "a": "1", "empty": ""}))
    assert spec.containers[0].config_map == (("a", "1"), ("b.conf", "x=1\n"), ("empty", ""))
    assert spec_of(doc(None)).containers[0].config_map is None
    body = doc(None)
    body["properties"]["containers"][0]["properties"]["configmap"] = {"keyvaluepairs": None}
    assert spec_of(body).containers[0].config_map == ()
    stored = parse_container_group(doc({"k": "v"}), name="g", default_location="local",
                                   known_locations=["local"]).to_stored()
    assert stored["properties"]["containers"][0]["properties"]["configMap"] == {
        "keyValuePairs": {"k": "v"}}


@pytest.mark.parametrize("key", ["", ".", "..", "../etc", "..data", "a/b", "a\0b", "a b",
                                 "x" * 254, "é"])
def test_a_key_that_is_no_plain_file_name_is_refused(key: str) -> None:
    """A key is a file name: no '/', NUL, '.', '..' or leading '..', at most 253 of
    [-._a-zA-Z0-9]; the error says which container, at the key's path."""
    error = refused(doc({key: "v"}))
    assert error.code == "InvalidConfigMapKey"
    assert "'c'" in error.message
    assert error.target is not None
    assert error.target.startswith("properties.containers[0].properties.configMap")


def test_the_groups_config_maps_are_bounded() -> None:
    """Over 1 MiB of keys and values, or over 1,000 keys, in the group: ConfigMapTooLarge;
    a value that no file can hold (a lone surrogate): InvalidConfigMapValue."""
    assert refused(doc({"big": "x" * MAX_CONFIG_MAP_BYTES})).code == "ConfigMapTooLarge"
    assert spec_of(doc({"big": "x" * (MAX_CONFIG_MAP_BYTES - 3)})).containers[0].config_map
    many = {f"k{i}": "" for i in range(MAX_CONFIG_MAP_KEYS + 1)}
    assert refused(doc(many)).code == "ConfigMapTooLarge"
    assert refused(doc({"k": "\ud800"})).code == "InvalidConfigMapValue"
    assert refused(doc({"k": None})).code == "InvalidRequestContent"


def test_an_init_container_has_no_config_map() -> None:
    """ACI's API gives init containers no configMap: one is refused, not kept silently."""
    error = refused(doc(None, init={"keyValuePairs": {"k": "v"}}))
    assert error.code == "ConfigMapNotSupportedForInitContainer"
    assert error.target == "properties.initContainers[0].properties.configMap"


def test_deployed_leaves_out_only_the_pairs() -> None:
    """Specs differing only in pairs deploy the same; gaining or losing a config map (a
    mount) does not; changed_keys names what changed, per container."""
    a, b = spec_of(doc({"k": "1", "gone": "x"})), spec_of(doc({"k": "2", "new": "y"}))
    assert a != b
    assert deployed(a) == deployed(b)
    assert deployed(spec_of(doc({}))) == deployed(a)
    assert deployed(spec_of(doc(None))) != deployed(a)
    assert deployed(spec_of(doc({"k": "1"}, script="sleep 1"))) != deployed(a)
    assert changed_keys(config_maps(a), config_maps(b)) == {"c": ["gone", "k", "new"]}
    assert changed_keys(config_maps(a), config_maps(a)) == {}


def test_the_fake_engine_updates_config_maps_in_place() -> None:
    """On the fake, a run() changing only pairs keeps the instance (start time, restart
    count), records ConfigMapUpdated and shows the new files; another change redeploys."""
    now = [1_700_000_000.0]
    engine = FakeEngine(clock=lambda: now[0])
    spec = spec_of(doc({"k": "1"}))
    first = engine.run(spec).containers[0]
    assert engine.config_map_files("gid") == {"c": {"k": "1"}}
    now[0] += 5
    changed = spec_of(doc({"k": "2", "n": ""}))
    after = engine.run(changed).containers[0]
    assert after.current.start_time == first.current.start_time
    assert after.restart_count == 0
    assert [e.message for e in after.events if e.name == "ConfigMapUpdated"] == [
        "config map updated in place: k, n"]
    assert engine.config_map_files("gid") == {"c": {"k": "2", "n": ""}}
    assert engine.run(changed).containers[0].events == after.events  # nothing new
    now[0] += 5
    redeployed = engine.run(spec_of(doc({"k": "2", "n": ""}, script="sleep 200")))
    assert redeployed.containers[0].current.start_time == now[0]
