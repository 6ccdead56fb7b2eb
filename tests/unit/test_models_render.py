"""Unit tests for skiff.models' answers: redaction, instance views, the Azure SDK reading them."""

from __future__ import annotations

import datetime
import json
from typing import Any

from azure.mgmt.containerinstance.models import ContainerGroup

from skiff.core.view import ContainerView, Event, GroupView, State
from skiff.models import ContainerGroupBody, render_container_group
from skiff.testing.documents import (
    REGISTRY_PASSWORD,
    SECRET_B64,
    SECRET_FILE,
    SECURE_VALUE,
    group_body,
    parse,
)

RID = ("/subscriptions/0000/resourceGroups/rg/providers/Microsoft.ContainerInstance/"
       "containerGroups/mygroup")
T0 = 1_700_000_000.25  # 2023-11-14T22:13:20.250Z


def group_view() -> GroupView:
    """A running group whose web container restarted once and whose init container finished."""
    web = ContainerView(name="web", cid="c-web", restart_count=1,
                        current=State("Running", start_time=T0 + 10, detail_status=""),
                        previous=State("Terminated", T0 + 1, 137, T0 + 9, "OOMKilled"))
    web.event("Pulled", "Successfully pulled image nginx:1.25", now=T0)
    web.event("Started", "Started container", now=T0 + 1)
    web.event("Started", "Started container", now=T0 + 10)
    sidecar = ContainerView(name="sidecar", cid="c-side", current=State("Waiting"))
    init = ContainerView(name="init", cid="c-init", init=True,
                         current=State("Terminated", T0, 0, T0 + 0.5, "Completed"))
    return GroupView(group_id="g1", name="mygroup", state="Running", ip="10.88.0.5",
                     containers=[web, sidecar], init_containers=[init],
                     events=[Event("Scheduled", "on node", "Normal", 1, T0, T0)])


def render(view: GroupView | None = None, **kw: Any) -> dict[str, Any]:
    """Render the test body with defaults for the keyword arguments."""
    args: dict[str, Any] = {"resource_id": RID, "name": "mygroup",
                            "provisioning_state": "Succeeded", "view": view}
    args.update(kw)
    return render_container_group(parse(group_body()), **args)


def test_rendered_answer_has_arm_shape() -> None:
    """id, name, type, location, tags and properties with provisioningState and instance views."""
    out = render(group_view(), fqdn="myweb.westeurope.skiff.local")
    assert (out["id"], out["name"], out["type"]) == (
        RID, "mygroup", "Microsoft.ContainerInstance/containerGroups")
    assert (out["location"], out["tags"]) == ("westeurope", {"team": "web"})
    p = out["properties"]
    assert (p["provisioningState"], p["osType"], p["restartPolicy"], p["sku"]) == (
        "Succeeded", "Linux", "Always", "Standard")
    assert p["ipAddress"]["ip"] == "10.88.0.5"
    assert p["ipAddress"]["fqdn"] == "myweb.westeurope.skiff.local"
    assert p["instanceView"] == {"state": "Running", "events": [{
        "count": 1, "firstTimestamp": "2023-11-14T22:13:20.250Z",
        "lastTimestamp": "2023-11-14T22:13:20.250Z", "name": "Scheduled", "message": "on node",
        "type": "Normal"}]}
    web = p["containers"][0]["properties"]["instanceView"]
    assert web["restartCount"] == 1
    assert web["currentState"] == {"state": "Running", "startTime": "2023-11-14T22:13:30.250Z",
                                   "detailStatus": ""}
    assert web["previousState"]["exitCode"] == 137
    assert web["previousState"]["finishTime"] == "2023-11-14T22:13:29.250Z"
    assert [(e["name"], e["count"]) for e in web["events"]] == [("Pulled", 1), ("Started", 2)]
    assert "previousState" not in p["containers"][1]["properties"]["instanceView"]
    init = p["initContainers"][0]["properties"]["instanceView"]
    assert init["currentState"]["state"] == "Terminated"
    assert init["currentState"]["exitCode"] == 0


def test_explicit_ip_wins_over_the_view() -> None:
    """The ip argument is answered over the view's address."""
    assert render(group_view(), ip="192.0.2.7")["properties"]["ipAddress"]["ip"] == "192.0.2.7"


def test_without_a_view_instance_views_are_left_out() -> None:
    """No view (not yet on a node): no instanceView is made up, and no ip is answered."""
    out = render(None, provisioning_state="Pending")
    p = out["properties"]
    assert "instanceView" not in p
    assert "ip" not in p["ipAddress"]
    assert all("instanceView" not in c["properties"] for c in p["containers"])


def test_list_answers_leave_out_instance_views() -> None:
    """include_instance_view=False leaves every instanceView out but keeps the ip."""
    out = render(group_view(), include_instance_view=False)
    assert "instanceView" not in json.dumps(out)
    assert out["properties"]["ipAddress"]["ip"] == "10.88.0.5"


def test_secrets_are_never_answered() -> None:
    """secureValue, registry passwords and secret volume contents are absent from the answer."""
    out = render(group_view())
    text = json.dumps(out)
    for secret in (SECURE_VALUE, REGISTRY_PASSWORD, SECRET_B64, SECRET_FILE):
        assert secret not in text
    assert "secureValue" not in text
    assert "password" not in text
    env = out["properties"]["containers"][0]["properties"]["environmentVariables"]
    assert env == [{"name": "MODE", "value": "prod"}, {"name": "TOKEN"}]
    assert out["properties"]["imageRegistryCredentials"] == [
        {"server": "registry.example.com", "username": "me"}]
    assert out["properties"]["volumes"][1] == {"name": "secrets", "secret": {"key.txt": None}}


def test_secrets_of_unmodelled_properties_are_never_answered() -> None:
    """storageAccountKey, workspaceKey and protectedSettings are dropped from stored bodies."""
    stored = parse(group_body()).to_stored()
    p = stored["properties"]
    p["volumes"].append({"name": "share", "azureFile": {
        "shareName": "s", "storageAccountName": "acct", "storageAccountKey": "ACCOUNT-KEY-1"}})
    p["diagnostics"] = {"logAnalytics": {"workspaceId": "w", "workspaceKey": "WORKSPACE-KEY-2"}}
    p["extensions"] = [{"name": "e", "properties": {"extensionType": "t",
                                                    "protectedSettings": {"k": "PROTECTED-3"}}}]
    out = render_container_group(ContainerGroupBody.from_stored(stored), resource_id=RID,
                                 name="mygroup", provisioning_state="Succeeded", view=None)
    text = json.dumps(out)
    for secret in ("ACCOUNT-KEY-1", "WORKSPACE-KEY-2", "PROTECTED-3"):
        assert secret not in text
    assert out["properties"]["volumes"][3]["azureFile"]["storageAccountName"] == "acct"
    assert out["properties"]["diagnostics"]["logAnalytics"] == {"workspaceId": "w"}


def test_render_leaves_the_body_alone() -> None:
    """Rendering redacts a copy: the body still holds its secrets for the engine."""
    body = parse(group_body())
    render_container_group(body, resource_id=RID, name="mygroup",
                           provisioning_state="Succeeded", view=group_view())
    assert SECURE_VALUE in json.dumps(body.to_stored())


def test_azure_sdk_reads_the_answer() -> None:
    """The SDK's ContainerGroup.deserialize accepts the answer and sees its fields."""
    # Any: the SDK types every field as optional; a None here fails the test anyway.
    group: Any = ContainerGroup.deserialize(render(group_view(), fqdn="myweb.example"))
    assert group.provisioning_state == "Succeeded"
    assert group.name == "mygroup"
    assert group.os_type == "Linux"
    web = group.containers[0]
    assert web.instance_view.current_state.state == "Running"
    assert web.instance_view.current_state.start_time == datetime.datetime(
        2023, 11, 14, 22, 13, 30, 250000, tzinfo=datetime.UTC)
    assert web.instance_view.previous_state.exit_code == 137
    assert web.instance_view.restart_count == 1
    assert [e.name for e in web.instance_view.events] == ["Pulled", "Started"]
    assert web.instance_view.events[1].count == 2
    assert web.resources.requests.memory_in_gb == 1.5
    assert web.liveness_probe.http_get.port == 80
    assert web.environment_variables[1].name == "TOKEN"
    assert web.environment_variables[1].secure_value is None
    assert group.init_containers[0].instance_view.current_state.detail_status == "Completed"
    assert group.ip_address.ip == "10.88.0.5"
    assert group.ip_address.fqdn == "myweb.example"
    assert group.ip_address.ports[0].protocol == "TCP"
    assert group.instance_view.state == "Running"
    assert group.instance_view.events[0].name == "Scheduled"
    assert group.image_registry_credentials[0].password is None
    assert group.volumes[1].secret == {"key.txt": None}
    assert group.volumes[2].git_repo.repository == "https://example.com/x/y.git"


def test_azure_sdk_reads_an_answer_without_view_and_with_extras() -> None:
    """A pending answer with identity, zones and diagnostics is read by the SDK too."""
    body = group_body()
    body.update(identity={"type": "SystemAssigned"}, zones=["2"])
    body["properties"]["diagnostics"] = {"logAnalytics": {"workspaceId": "w",
                                                          "workspaceKey": "k"}}
    body["properties"]["dnsConfig"] = {"nameServers": ["10.0.0.2"], "searchDomains": "a.b"}
    out = render_container_group(parse(body), resource_id=RID, name="mygroup",
                                 provisioning_state="Pending", view=None)
    group: Any = ContainerGroup.deserialize(out)
    assert group.provisioning_state == "Pending"
    assert group.identity.type == "SystemAssigned"
    assert group.zones == ["2"]
    assert group.containers[0].instance_view is None
    assert group.diagnostics.log_analytics.workspace_id == "w"
    assert group.dns_config.search_domains == "a.b"
