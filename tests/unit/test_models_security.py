"""securityContext in skiff.models: each refusal's code and target, round trips, conversion."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from azure.mgmt.containerinstance.models import ContainerGroup

from skiff.core import spec as engine
from skiff.errors import ArmError
from skiff.models import ContainerGroupBody, parse_container_group, render_container_group
from skiff.models.convert import to_engine_spec
from skiff.models.rules import MAX_RUN_AS_ID
from skiff.testing.documents import LOCATIONS, Body, group_body, props, web

C0 = "properties.containers[0].properties.securityContext"
I0 = "properties.initContainers[0].properties.securityContext"
PROFILE = {"defaultAction": "SCMP_ACT_ALLOW",
           "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]}


def b64(doc: Any) -> str:
    text = doc if isinstance(doc, str) else json.dumps(doc)
    return base64.b64encode(text.encode()).decode()


def full_context() -> Body:
    """Every field of ACI's securityContext, valid without --allow-privileged."""
    return {"privileged": False, "allowPrivilegeEscalation": True,
            "capabilities": {"add": ["NET_ADMIN", "cap_sys_nice"], "drop": ["ALL"]},
            "runAsUser": 1000, "runAsGroup": 2000, "seccompProfile": b64(PROFILE)}


def body_with(context: Body, init: bool = False) -> Body:
    body = group_body()
    if init:
        props(body)["initContainers"][0]["properties"]["securityContext"] = context
    else:
        web(body)["securityContext"] = context
    return body


def parse(body: Body, allow_privileged: bool = False) -> ContainerGroupBody:
    return parse_container_group(body, name="mygroup", default_location="westeurope",
                                 known_locations=LOCATIONS, allow_privileged=allow_privileged)


def refused(context: Body, init: bool = False) -> ArmError:
    with pytest.raises(ArmError) as info:
        parse(body_with(context, init))
    assert info.value.status == 400
    return info.value


REFUSALS: list[tuple[str, Body, str, str]] = [
    ("privileged", {"privileged": True}, "PrivilegedContainerNotAllowed", f"{C0}.privileged"),
    ("privileged as a string", {"privileged": "true"}, "PrivilegedContainerNotAllowed",
     f"{C0}.privileged"),
    ("unknown capability", {"capabilities": {"add": ["NET_ADMIN", "FLY"]}},
     "InvalidCapability", f"{C0}.capabilities.add[1]"),
    ("unknown dropped capability", {"capabilities": {"drop": ["CAP_NOPE"]}},
     "InvalidCapability", f"{C0}.capabilities.drop[0]"),
    ("host capability", {"capabilities": {"add": ["SYS_ADMIN"]}}, "CapabilityNotAllowed",
     f"{C0}.capabilities.add[0]"),
    ("all capabilities", {"capabilities": {"add": ["all"]}}, "CapabilityNotAllowed",
     f"{C0}.capabilities.add[0]"),
    ("negative runAsUser", {"runAsUser": -1}, "InvalidRunAsId", f"{C0}.runAsUser"),
    ("runAsUser 2^32-1", {"runAsUser": 2**32 - 1}, "InvalidRunAsId", f"{C0}.runAsUser"),
    ("runAsGroup too big", {"runAsGroup": 2**40}, "InvalidRunAsId", f"{C0}.runAsGroup"),
    ("seccomp not base64", {"seccompProfile": "not base64!"}, "InvalidSeccompProfile",
     f"{C0}.seccompProfile"),
    ("seccomp not JSON", {"seccompProfile": b64("{nope")}, "InvalidSeccompProfile",
     f"{C0}.seccompProfile"),
    ("seccomp a list", {"seccompProfile": b64([1])}, "InvalidSeccompProfile",
     f"{C0}.seccompProfile"),
    ("seccomp no defaultAction", {"seccompProfile": b64({"syscalls": []})},
     "InvalidSeccompProfile", f"{C0}.seccompProfile"),
    ("seccomp rule without action", {"seccompProfile": b64(
        {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"]}]})},
     "InvalidSeccompProfile", f"{C0}.seccompProfile"),
    ("seccomp bad minKernel", {"seccompProfile": b64(
        {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO",
             "includes": {"minKernel": "new"}}]})},
     "InvalidSeccompProfile", f"{C0}.seccompProfile"),
    ("capabilities a string", {"capabilities": "NET_ADMIN"}, "InvalidRequestContent",
     f"{C0}.capabilities"),
    ("runAsUser a word", {"runAsUser": "root"}, "InvalidRequestContent", f"{C0}.runAsUser"),
]


@pytest.mark.parametrize(("case", "context", "code", "target"), REFUSALS,
                         ids=[r[0] for r in REFUSALS])
def test_each_refusal_answers_its_code_and_target(case: str, context: Body, code: str,
                                                  target: str) -> None:
    """A securityContext broken in one way is refused with 400, its code and the value's path."""
    error = refused(context)
    assert (error.code, error.target) == (code, target), error.message
    assert error.message


def test_init_containers_are_checked_too() -> None:
    """An init container's securityContext is held to the same rules."""
    error = refused({"privileged": True}, init=True)
    assert (error.code, error.target) == ("PrivilegedContainerNotAllowed", f"{I0}.privileged")


def test_privileged_and_host_capabilities_pass_where_allowed() -> None:
    """With allow_privileged, privileged and SYS_ADMIN are admitted; unknown names are not."""
    body = body_with({"privileged": True, "capabilities": {"add": ["SYS_ADMIN", "ALL"]}})
    assert parse(body, allow_privileged=True).properties.containers[0].name == "web"
    with pytest.raises(ArmError) as info:
        parse(body_with({"capabilities": {"add": ["FLY"]}}), allow_privileged=True)
    assert info.value.code == "InvalidCapability"


def test_limits_of_run_as_ids_pass() -> None:
    """runAsUser and runAsGroup take 0 and 2^32-2."""
    parse(body_with({"runAsUser": 0, "runAsGroup": MAX_RUN_AS_ID}))


def test_a_valid_context_round_trips() -> None:
    """A full securityContext is stored, read back and answered exactly as sent."""
    context = full_context()
    stored = parse(body_with(context)).to_stored()
    assert stored["properties"]["containers"][0]["properties"]["securityContext"] == context
    again = ContainerGroupBody.from_stored(json.loads(json.dumps(stored)))
    answer = render_container_group(again, resource_id="/x", name="mygroup",
                                    provisioning_state="Succeeded", view=None)
    assert answer["properties"]["containers"][0]["properties"]["securityContext"] == context


def test_the_azure_sdk_reads_the_answered_context() -> None:
    """The SDK's model deserializes the answered securityContext field by field."""
    answer = render_container_group(parse(body_with(full_context())), resource_id="/x",
                                    name="mygroup", provisioning_state="Succeeded", view=None)
    sdk = ContainerGroup.deserialize(answer)
    context = sdk.containers[0].security_context
    assert context is not None
    assert context.capabilities is not None
    assert context.seccomp_profile is not None
    assert context.allow_privilege_escalation is True
    assert context.capabilities.add == ["NET_ADMIN", "cap_sys_nice"]
    assert context.capabilities.drop == ["ALL"]
    assert (context.run_as_user, context.run_as_group) == (1000, 2000)
    assert json.loads(base64.b64decode(context.seccomp_profile)) == PROFILE


def test_names_match_in_any_case_and_unknown_fields_are_kept() -> None:
    """Property names match case-insensitively; fields of later api-versions round-trip."""
    context = {"RunAsUser": 5, "CAPABILITIES": {"Add": ["NET_RAW"], "future": 1},
               "futureField": "x"}
    stored = parse(body_with(context)).to_stored()
    out = stored["properties"]["containers"][0]["properties"]["securityContext"]
    assert out == {"runAsUser": 5, "capabilities": {"add": ["NET_RAW"], "future": 1},
                   "futureField": "x"}


def test_conversion_to_the_engine() -> None:
    """convert maps every field; the profile arrives decoded, and absence means defaults."""
    spec = to_engine_spec(parse(body_with(full_context())), group_id="g", name="mygroup")
    security = spec.containers[0].security
    assert security == engine.SecurityContext(
        privileged=False, allow_privilege_escalation=True,
        cap_add=("NET_ADMIN", "cap_sys_nice"), cap_drop=("ALL",), run_as_user=1000,
        run_as_group=2000, seccomp_profile=PROFILE)
    assert security.seccomp_profile == PROFILE
    assert security.seccomp_digest is not None
    assert spec.containers[1].security == engine.SecurityContext()
    assert spec.init_containers[0].security == engine.SecurityContext()


def test_a_changed_profile_changes_the_engine_spec() -> None:
    """Two profiles make unequal engine contexts with different reprs (what redeploys)."""
    one = engine.SecurityContext(seccomp_profile=PROFILE)
    other = engine.SecurityContext(seccomp_profile={**PROFILE, "defaultAction": "SCMP_ACT_LOG"})
    assert one != other
    assert repr(one) != repr(other)
    assert one == engine.SecurityContext(seccomp_profile=json.loads(json.dumps(PROFILE)))
