"""Unit tests for skiff.models.parse_yaml_deployment: ACI's YAML deployment files."""

from __future__ import annotations

import pytest

from skiff.errors import ArmError
from skiff.models import parse_yaml_deployment, to_engine_spec
from skiff.testing.documents import LOCATIONS, parse

# As in Microsoft's "Deploy a multi-container group using a YAML file" tutorial (its group
# name lower-cased, as group names must be), with a secret volume and a DNS name label.
DOCS_EXAMPLE = """\
apiVersion: 2019-12-01
location: eastus
name: mycontainergroup
properties:
  containers:
  - name: aci-tutorial-app
    properties:
      image: mcr.microsoft.com/azuredocs/aci-helloworld:latest
      resources:
        requests:
          cpu: 1
          memoryInGb: 1.5
      ports:
      - port: 80
      - port: 8080
      volumeMounts:
      - mountPath: /mnt/secrets
        name: secretvolume1
  - name: aci-tutorial-sidecar
    properties:
      image: mcr.microsoft.com/azuredocs/aci-tutorial-sidecar
      resources:
        requests:
          cpu: 1
          memoryInGb: 1.5
      environmentVariables:
      - name: PORT
        value: 8080
  osType: Linux
  ipAddress:
    type: Public
    dnsNameLabel: aci-demo-label
    ports:
    - protocol: tcp
      port: 80
    - protocol: tcp
      port: 8080
  volumes:
  - name: secretvolume1
    secret:
      mysecret1: TXkgZmlyc3Qgc2VjcmV0IEZPTwo=
      mysecret2: TXkgc2Vjb25kIHNlY3JldCBCQVIK
tags: {exampleTag: tutorial}
type: Microsoft.ContainerInstance/containerGroups
"""


def test_docs_example_reads_and_validates() -> None:
    """Microsoft's example gives its name and a body that passes every rule."""
    name, body = parse_yaml_deployment(DOCS_EXAMPLE)
    assert name == "mycontainergroup"
    assert set(body) == {"location", "properties", "tags"}
    assert body["tags"] == {"exampleTag": "tutorial"}
    group = parse(body, name)
    assert group.location == "eastus"
    assert "eastus" in LOCATIONS
    p = group.properties
    assert [c.name for c in p.containers] == ["aci-tutorial-app", "aci-tutorial-sidecar"]
    assert p.containers[0].properties.resources.requests.memory_in_gb == 1.5
    assert p.ip_address is not None
    assert [(q.port, q.protocol) for q in p.ip_address.ports] == [(80, "TCP"), (8080, "TCP")]
    assert p.ip_address.dns_name_label == "aci-demo-label"
    spec = to_engine_spec(group, group_id="g", name=name)
    assert spec.containers[1].env[0].value == "8080"
    assert dict(spec.volumes[0].source.files)["mysecret1"] == (  # type: ignore[union-attr]
        "TXkgZmlyc3Qgc2VjcmV0IEZPTwo=")


def test_yaml_types_become_json_types() -> None:
    """Dates, binary and non-string keys come out as JSON would hold them."""
    _, body = parse_yaml_deployment(
        "location: eastus\nextra:\n  when: 2024-01-02\n  blob: !!binary aGk=\n  80: x\n"
        "  yes: 1\n")
    assert body["extra"] == {"when": "2024-01-02", "blob": "aGk=", "80": "x", "true": 1}


def test_a_file_without_name_gives_none() -> None:
    """A file without a name leaves the name to the caller."""
    name, body = parse_yaml_deployment("properties: {osType: Linux}\n")
    assert name is None
    assert body == {"properties": {"osType": "Linux"}}


@pytest.mark.parametrize("text", ["", "- a\n- b\n", "just text\n", "42\n", "null\n"])
def test_a_file_that_is_not_a_mapping_is_refused(text: str) -> None:
    """Empty files, lists and scalars are InvalidRequestContent."""
    with pytest.raises(ArmError) as info:
        parse_yaml_deployment(text)
    assert (info.value.status, info.value.code) == (400, "InvalidRequestContent")


def test_malformed_yaml_is_refused_with_its_position_only() -> None:
    """A syntax error names the line, never quotes the file (which may hold secrets)."""
    with pytest.raises(ArmError) as info:
        parse_yaml_deployment("properties:\n  secureValue: TOPSECRET-1\n  bad: [unclosed\n")
    assert info.value.code == "InvalidRequestContent"
    assert "line" in info.value.message
    assert "TOPSECRET-1" not in info.value.message
    assert info.value.__cause__ is None


def test_a_name_that_is_not_a_string_is_refused() -> None:
    """name: [a] is InvalidRequestContent with target name."""
    with pytest.raises(ArmError) as info:
        parse_yaml_deployment("name: [a]\n")
    assert (info.value.code, info.value.target) == ("InvalidRequestContent", "name")
