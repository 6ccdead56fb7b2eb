"""Issue 16's surface driven by the Azure SDKs that speak it, against a running skiff:
azure-mgmt-containerinstance 10.2.0b2 and azure-mgmt-standbypool 2.1.0, which the project's
own install cannot hold (it pins azure-mgmt-containerinstance < 11 at 10.1, for az's
output). Run by tests/e2e/test_sdk_2025.py with the Python of the venv .ci/install makes
for them (``/opt/skiff-sdk-2025``), never imported by the tests.

Environment: ``SKIFF_URL``, ``SKIFF_TOKEN``, ``SKIFF_CA``, ``SKIFF_SUBSCRIPTION``,
``SKIFF_IMAGE`` (busybox), ``SKIFF_RG`` (the resource group to work in) and
``SKIFF_API_VERSION`` (the api-version the container instance client sends; empty: the
SDK's own default). Prints, as its last line, a JSON object of what it found; the test
asserts on it. Waits poll a condition up to a deadline (``until``), never sleep a guess.
"""

from __future__ import annotations

import datetime
import json
import os
import sys
import time
from collections.abc import Callable
from typing import Any, TypeVar

from azure.core.credentials import AccessToken
from azure.core.exceptions import HttpResponseError
from azure.mgmt.containerinstance import ContainerInstanceManagementClient
from azure.mgmt.containerinstance import models as aci
from azure.mgmt.standbypool import StandbyPoolMgmtClient
from azure.mgmt.standbypool import models as pools

T = TypeVar("T")
URL = os.environ["SKIFF_URL"]
SUB = os.environ["SKIFF_SUBSCRIPTION"]
RG = os.environ["SKIFF_RG"]
IMAGE = os.environ["SKIFF_IMAGE"]
API = os.environ.get("SKIFF_API_VERSION") or None
RG_ID = f"/subscriptions/{SUB}/resourceGroups/{RG}/providers"
PROFILE_ID = f"{RG_ID}/Microsoft.ContainerInstance/containerGroupProfiles/app"
POOL_ID = f"{RG_ID}/Microsoft.StandbyPool/standbyContainerGroupPools/pool"
NGROUP_ID = f"{RG_ID}/Microsoft.ContainerInstance/ngroups/ng"
#: The app rereads its configuration file, as an application would.
WATCH = "while true; do echo \"seen=$(cat /mnt/configmap/app/greeting)\"; sleep 0.2; done"
#: A timeToLive far off (a date-time, as the SDK types it): nothing expires in the test.
FAR = datetime.datetime(2099, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)
GRACE = datetime.datetime(2099, 1, 1, 0, 0, 30, tzinfo=datetime.UTC)


class Token:
    """A credential handing the SDKs the skiff token."""

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken(os.environ["SKIFF_TOKEN"], int(time.time()) + 3600)


def until(check: Callable[[], T], holds: Callable[[T], object], what: str,
          timeout_s: float = 90) -> T:
    """``check()``'s first value ``holds`` is true of, polled; a failure names ``what``."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if holds(value):
            return value
        if time.monotonic() > deadline:
            raise SystemExit(f"never happened: {what} (last: {value!r})")
        time.sleep(0.2)


def read_all(model: Any) -> Any:
    """``model`` with every field read, in depth: the SDKs deserialize a field when it is
    read, so an answer of the wrong shape (a date-time that is none, a list that is an
    object) raises here, not in a user's program later."""
    if isinstance(model, list):
        for item in model:
            read_all(item)
    elif isinstance(model, dict):
        for item in model.values():
            read_all(item)
    elif hasattr(model, "_attr_to_rest_field"):
        for name in model._attr_to_rest_field:
            read_all(getattr(model, name))
    return model


def refused(call: Callable[[], object]) -> list[object]:
    """The exception type, HTTP status and ARM code of ``call``'s refusal."""
    try:
        call()
    except HttpResponseError as exc:
        return [type(exc).__name__, exc.status_code, exc.error.code if exc.error else None]
    raise SystemExit("a call that should have been refused was answered")


def container(name: str, command: str, greeting: str | None = None) -> aci.Container:
    return aci.Container(
        name=name, image=IMAGE, command=["sh", "-c", command],
        resources=aci.ResourceRequirements(
            requests=aci.ResourceRequests(cpu=0.1, memory_in_gb=0.1)),
        config_map=None if greeting is None else aci.ConfigMap(
            key_value_pairs={"greeting": greeting}))


def profile(revision: int) -> aci.ContainerGroupProfile:
    """Revision 1: the config-map app; revision 2: the same, with the lifetime fields."""
    made = aci.ContainerGroupProfile(
        location="local", os_type="Linux", restart_policy="Always",
        containers=[container("app", WATCH, greeting="profile")])
    if revision == 2:
        made.shutdown_grace_period = GRACE
        made.time_to_live = FAR
    return made


def from_profile(greeting: str) -> aci.ContainerGroup:
    """A group of profile revision 1 whose container's config map says ``greeting``."""
    return aci.ContainerGroup(
        location="local",
        containers=[aci.Container(name="app", config_map=aci.ConfigMap(
            key_value_pairs={"greeting": greeting}))],
        container_group_profile=aci.ContainerGroupProfileReferenceDefinition(
            id=PROFILE_ID, revision=1))


def logs(client: ContainerInstanceManagementClient, group: str) -> str:
    return client.containers.list_logs(RG, group, "app").content or ""


def main() -> None:
    options: dict[str, Any] = {"base_url": URL, "connection_verify": os.environ["SKIFF_CA"],
                               "polling_interval": 0.2}
    client = ContainerInstanceManagementClient(
        Token(), SUB, **options, **({"api_version": API} if API else {}))
    standby = StandbyPoolMgmtClient(Token(), SUB, **options)
    found: dict[str, Any] = {"api_version": client._config.api_version}

    # A profile of two revisions, listed and read back by number.
    first = read_all(client.cg_profile.create_or_update(RG, "app", profile(1)))
    second = read_all(client.cg_profile.create_or_update(RG, "app", profile(2)))
    found["revisions"] = [first.revision, second.revision, second.registered_revisions]
    found["listed"] = sorted(p.revision for p in
                             read_all(list(client.cg_profile.list_all_revisions(RG, "app"))))
    again = read_all(client.cg_profile.get_by_revision_number(RG, "app", "2"))
    found["lifetime"] = [again.shutdown_grace_period == GRACE, again.time_to_live == FAR]
    found["by_rg"] = [p.name for p in
                      read_all(list(client.cg_profiles.list_by_resource_group(RG)))]
    found["by_sub"] = PROFILE_ID.lower() in [
        p.id.lower() for p in read_all(list(client.cg_profiles.list_by_subscription()))]
    tagged = read_all(client.cg_profile.update(RG, "app", aci.ContainerGroupProfilePatch(
        tags={"team": "sdk"})))
    found["profile_tags"] = [tagged.tags, tagged.revision,
                             read_all(client.cg_profile.get(RG, "app")).revision]
    found["errors"] = [refused(lambda: client.cg_profile.get_by_revision_number(RG, "app", "9")),
                       refused(lambda: client.cg_profile.get(RG, "nothing"))]

    # A group of revision 1 with its own config map, then the map changed in place.
    group = read_all(client.container_groups.begin_create_or_update(
        RG, "cm", from_profile("hello")).result())
    found["group"] = [group.provisioning_state, group.container_group_profile.revision,
                      group.containers[0].config_map.key_value_pairs]
    until(lambda: logs(client, "cm"), lambda text: "seen=hello\n" in text, "the app reads hello")
    before = read_all(client.container_groups.get(RG, "cm")).containers[0].instance_view
    read_all(client.container_groups.begin_create_or_update(
        RG, "cm", from_profile("bonjour")).result())
    until(lambda: logs(client, "cm"), lambda text: "seen=bonjour\n" in text,
          "the app reads bonjour")
    after = read_all(client.container_groups.get(RG, "cm"))
    view = after.containers[0].instance_view
    found["in_place"] = [view.restart_count, before.restart_count,
                         view.current_state.start_time == before.current_state.start_time,
                         after.containers[0].config_map.key_value_pairs]

    # An NGroup of 2 members of revision 2, scaled to 3 by a PATCH; stopped and started.
    made = read_all(client.ngroups.begin_create_or_update(RG, "ng", aci.NGroup(
        location="local", elastic_profile=aci.ElasticProfile(
            desired_count=2, container_group_naming_policy=(
                aci.ElasticProfileContainerGroupNamingPolicy(
                    guid_naming_policy=aci.ElasticProfileContainerGroupNamingPolicyGuidNamingPolicy(
                        prefix="m-")))),
        container_group_profiles=[aci.ContainerGroupProfileStub(
            resource=aci.ApiEntityReference(id=PROFILE_ID), revision=2)])).result())
    found["ngroup"] = [made.elastic_profile.desired_count, made.provisioning_state]

    def members(state: str = "Running") -> list[aci.ContainerGroup]:
        """The NGroup's members (listed: a list has no instance views, as ACI's) in
        ``state`` (read one by one)."""
        listed = [g.name for g in read_all(list(client.container_groups.list_by_resource_group(
            RG))) if (g.tags or {}).get("orchestratorId", "").lower() == NGROUP_ID.lower()]
        read = [read_all(client.container_groups.get(RG, name)) for name in listed]
        return [g for g in read if g.provisioning_state == "Succeeded"
                and g.instance_view is not None and g.instance_view.state == state]

    until(members, lambda m: len(m) == 2, "two members")
    patched = read_all(client.ngroups.begin_update(RG, "ng", aci.NGroupPatch(
        elastic_profile=aci.ElasticProfile(desired_count=3))).result())
    grown = until(members, lambda m: len(m) == 3, "three members")
    found["members"] = sorted({(g.container_group_profile.revision, g.name[:2]) for g in grown})
    found["ngroup_count"] = [patched.elastic_profile.desired_count,
                             read_all(client.ngroups.get(RG, "ng")).elastic_profile.desired_count,
                             [n.name for n in read_all(list(client.ngroups.list_by_resource_group(
                                 RG)))]]
    client.ngroups.stop(RG, "ng")
    until(lambda: members("Stopped"), lambda m: len(m) == 3, "three members stopped")
    client.ngroups.begin_start(RG, "ng").result()
    until(members, lambda m: len(m) == 3, "three members running again")
    client.ngroups.begin_restart(RG, "ng").result()
    until(members, lambda m: len(m) == 3, "three members running after a restart")

    # A standby pool of one ready member of revision 1, and a claim answered Running.
    pool = standby.standby_container_group_pools.begin_create_or_update(
        RG, "pool", pools.StandbyContainerGroupPoolResource(
            location="local", properties=pools.StandbyContainerGroupPoolResourceProperties(
                elasticity_profile=pools.StandbyContainerGroupPoolElasticityProfile(
                    max_ready_capacity=1, refill_policy="always"),
                container_group_properties=pools.ContainerGroupProperties(
                    container_group_profile=pools.ContainerGroupProfile(
                        id=PROFILE_ID, revision=1))))).result()
    read_all(pool)
    found["pool"] = [pool.properties.provisioning_state,
                     pool.properties.elasticity_profile.max_ready_capacity,
                     [p.name for p in read_all(list(
                         standby.standby_container_group_pools.list_by_subscription()))]]
    pool_tags = read_all(standby.standby_container_group_pools.update(
        RG, "pool", pools.StandbyContainerGroupPoolResourceUpdate(tags={"team": "sdk"})))
    found["pool_tags"] = [pool_tags.tags, pool_tags.properties.elasticity_profile
                          .max_ready_capacity]

    def ready() -> int:
        view = read_all(standby.standby_container_group_pool_runtime_views.get(
            RG, "pool", "latest"))
        counts = view.properties.instance_count_summary[0].instance_counts_by_state
        return next(c.count for c in counts if c.state == "Running")

    until(ready, lambda n: n == 1, "a ready member")
    found["views"] = [v.name for v in read_all(list(
        standby.standby_container_group_pool_runtime_views.list_by_standby_pool(RG, "pool")))]
    claimed = client.container_groups.begin_create_or_update(RG, "claimed", aci.ContainerGroup(
        location="local",
        containers=[aci.Container(name="app", config_map=aci.ConfigMap(
            key_value_pairs={"greeting": "claimed"}))],
        standby_pool_profile=aci.StandbyPoolProfileDefinition(id=POOL_ID))).result()
    read_all(claimed)
    found["claim"] = [claimed.provisioning_state, claimed.instance_view.state,
                      claimed.is_created_from_standby_pool]
    until(lambda: logs(client, "claimed"), lambda text: "seen=claimed\n" in text,
          "the claimed app reads its config map")

    # Everything goes through the SDKs' deletes.
    standby.standby_container_group_pools.begin_delete(RG, "pool").result()
    client.ngroups.begin_delete(RG, "ng").result()
    for name in ("cm", "claimed"):
        client.container_groups.begin_delete(RG, name).result()
    client.cg_profile.delete(RG, "app")
    until(lambda: [g.name for g in client.container_groups.list_by_resource_group(RG)],
          lambda names: names == [], "no group left")
    found["pools_left"] = [p.name for p in
                           standby.standby_container_group_pools.list_by_resource_group(RG)]
    print(json.dumps(found))


if __name__ == "__main__":
    sys.exit(main())
