"""Managed identities end to end: a group's containers fetch their identity's tokens
from 169.254.169.254 with busybox wget, on runc and in a gVisor sandbox; the endpoint
knows each group by the namespace the request came through."""

from __future__ import annotations

import base64
import json
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from skiff.testing.catalog import BuiltImages
from skiff.testing.server import RunningServer, settled
from skiff.testing.waiting import eventually

pytestmark = pytest.mark.root

API = "?api-version=2023-05-01"
RG = "/subscriptions/sub-1/resourceGroups/rg"
GROUPS = f"{RG}/providers/Microsoft.ContainerInstance/containerGroups"
UAI = f"{RG}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/worker"
TOKEN_PATH = ("/metadata/identity/oauth2/token?api-version=2018-02-01"
              "&resource=https%3A%2F%2Fmanagement.azure.com%2F")
LABELS = ("SYS", "UAI", "NOHDR", "OTHER")
# Each section: a label, then what the client printed (the body, the status or wget's
# error). busybox wget under gVisor's host network stack (this runsc build) gets EAGAIN
# from a read that comes before the answer does, whatever the server: a sandboxed group
# asks with nc instead, which waits for its socket to be readable.
SCRIPT = f"""
get() {{
  if [ "$CLIENT" = nc ]; then
    {{ printf 'GET %s HTTP/1.1\\r\\nHost: 169.254.169.254\\r\\n' "$1"
      [ -n "$2" ] && printf '%s\\r\\n' "$2"
      printf '\\r\\n'; }} | nc 169.254.169.254 80 | grep -E '^(HTTP|[{{])'
  elif [ -n "$2" ]; then
    wget -q -O- --header "$2" "http://169.254.169.254$1" 2>&1
  else
    wget -q -O- "http://169.254.169.254$1" 2>&1
  fi
}}
P='{TOKEN_PATH}'
echo SYS; get "$P" 'Metadata: true'; echo
echo UAI; get "$P&msi_res_id=$UAI_ID" 'Metadata: true'; echo
echo NOHDR; get "$P" ''; echo
echo OTHER; get '/metadata/instance?api-version=2021-02-01' 'Metadata: true'; echo
echo ready
sleep 300
"""


def body(images: BuiltImages, identity: dict[str, Any] | None,
         isolation: str = "container") -> dict[str, Any]:
    container = {"name": "c", "properties": {
        "image": images.bb, "command": ["sh", "-c", SCRIPT],
        "environmentVariables": [{"name": "UAI_ID", "value": UAI},
                                 {"name": "CLIENT", "value": "nc" if isolation == "sandbox"
                                  else "wget"}],
        "ports": [{"port": 80}],
        "resources": {"requests": {"cpu": 0.25, "memoryInGB": 0.25}}}}
    doc: dict[str, Any] = {"location": "local", "properties": {
        "osType": "Linux", "isolation": isolation, "containers": [container],
        # Port 80 open to the world: the endpoint's address must stay closed all the same.
        "ipAddress": {"type": "Public", "ports": [{"port": 80}]}}}
    if identity is not None:
        doc["identity"] = identity
    return doc


def lines(http: httpx.Client, name: str) -> dict[str, str]:
    text = eventually(
        lambda: str(http.get(f"{GROUPS}/{name}/containers/c/logs{API}").json().get("content")),
        until=lambda out: "ready" in out, what=f"{name} fetched its tokens", timeout_s=60)
    sections: dict[str, str] = {}
    label = ""
    for line in text.splitlines():
        if line.strip() in LABELS:
            label = line.strip()
            sections[label] = ""
        elif label:
            sections[label] += line + "\n"
    return sections


def token_of(section: str) -> dict[str, Any]:
    """The JSON body a section holds."""
    found: dict[str, Any] = json.loads(section[section.index("{"):section.rindex("}") + 1])
    return found


def claims(token: str, jwk: dict[str, str]) -> dict[str, Any]:
    """The token's claims, once its RS256 signature checked with ``jwk``."""
    head, payload, signature = token.split(".")

    def raw(part: str) -> bytes:
        return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))

    key = rsa.RSAPublicNumbers(int.from_bytes(raw(jwk["e"]), "big"),
                               int.from_bytes(raw(jwk["n"]), "big")).public_key()
    key.verify(raw(signature), f"{head}.{payload}".encode(), padding.PKCS1v15(),
               hashes.SHA256())
    found: dict[str, Any] = json.loads(raw(payload))
    return found


def test_groups_get_their_own_identitys_tokens(skiff: RunningServer,
                                               images: BuiltImages) -> None:
    """A runc group and a sandboxed group each get tokens naming their own principal
    (system-assigned, or the user-assigned one msi_res_id picks), strings as IMDS
    answers; without Metadata: true, 400; other paths, 404; a group without an identity,
    IMDS's 400 Identity not found; after the group is deleted, nothing is left served."""
    http = skiff.client()
    made = http.put(f"{UAI}?api-version=2023-01-31", json={"location": "local"})
    assert made.status_code == 201, made.text
    uai = made.json()["properties"]
    both = {"type": "SystemAssigned, UserAssigned", "userAssignedIdentities": {UAI: {}}}
    for name, identity, isolation in (("runc", both, "container"),
                                      ("boxed", {"type": "SystemAssigned"}, "sandbox"),
                                      ("none", None, "container")):
        answer = http.put(f"{GROUPS}/{name}{API}", json=body(images, identity, isolation))
        assert answer.status_code == 201, answer.text
    plane = skiff.server.plane
    assert plane.identities is not None
    (jwk,) = plane.issuer.jwks()["keys"]  # the API's own key: it takes these tokens
    seen: dict[str, str] = {}
    for name in ("runc", "boxed"):
        group = settled(http, f"{GROUPS}/{name}{API}")
        assert group["properties"]["provisioningState"] == "Succeeded", group
        out = lines(http, name)
        token = token_of(out["SYS"])
        assert token["token_type"] == "Bearer"
        assert token["resource"] == "https://management.azure.com/"
        assert all(isinstance(token[k], str) for k in ("expires_in", "expires_on"))
        assert int(token["expires_on"]) > int(token["not_before"])
        found = claims(token["access_token"], jwk)
        assert found["oid"] == group["identity"]["principalId"], (name, found)
        assert found["tid"] == group["identity"]["tenantId"]
        assert found["aud"] == "https://management.azure.com/"
        seen[name] = found["oid"]
        assert "400" in out["NOHDR"], out  # busybox prints the status on an error
        assert "404" in out["OTHER"], out
        if name == "runc":
            user = token_of(out["UAI"])
            assert claims(user["access_token"], jwk)["oid"] == uai["principalId"]
            assert user["client_id"] == uai["clientId"]
            assigned = group["identity"]["userAssignedIdentities"][UAI]
            assert assigned == {"principalId": uai["principalId"], "clientId": uai["clientId"]}
    assert seen["runc"] != seen["boxed"]
    assert "400" in lines(http, "none")["SYS"]
    served = sorted(plane.store.get_group("sub-1", "rg", n).uid
                    for n in ("runc", "boxed", "none"))
    metadata = skiff.server.metadata
    assert metadata is not None
    assert metadata.groups() == served
    for name in ("runc", "boxed", "none"):
        assert http.delete(f"{GROUPS}/{name}{API}").status_code in (200, 202)
    eventually(metadata.groups, until=lambda left: left == [],
               what="the deleted groups' endpoints are withdrawn", timeout_s=30)


def _in_netns(netns: Path, script: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["nsenter", f"--net={netns}", "python3", "-c", script],
                          capture_output=True, text=True, timeout=30, check=False)


def test_another_group_cannot_reach_a_groups_endpoint(skiff: RunningServer,
                                                      images: BuiltImages) -> None:
    """From a second group's namespace, a request sent to the first group's endpoint
    through its veth (the route pointed at it, its address forged as the source) gets
    nothing, though the first group's port 80 is open; the second group's own endpoint,
    whatever source it is sent from, answers for the second group alone."""
    http = skiff.client()
    for name, identity in (("target", {"type": "SystemAssigned"}), ("neighbour", None)):
        assert http.put(f"{GROUPS}/{name}{API}",
                        json=body(images, identity)).status_code == 201
    target = settled(http, f"{GROUPS}/target{API}")
    settled(http, f"{GROUPS}/neighbour{API}")
    lines(http, "neighbour")
    store, networks = skiff.server.plane.store, skiff.server.node.networks
    record = store.get_group("sub-1", "rg", "neighbour")
    assert record is not None
    attachment = networks.get(record.uid)
    assert attachment is not None
    target_ip = target["properties"]["ipAddress"]["ip"]

    def ask(source: str | None) -> str:
        """What the endpoint answers a token request from the neighbour's namespace, sent
        from ``source`` (None: the neighbour's own address)."""
        bind = "" if source is None else (
            "s.setsockopt(socket.IPPROTO_IP, 15, 1)\n"  # IP_FREEBIND: any source address
            f"s.bind(({source!r}, 0))\n")
        script = ("import socket\ns = socket.socket()\n" + bind +
                  "s.settimeout(3)\n"
                  "try:\n"
                  "    s.connect(('169.254.169.254', 80))\n"
                  "    s.sendall(b'GET /metadata/identity/oauth2/token?api-version=2018-02-01"
                  "&resource=x HTTP/1.1\\r\\nMetadata: true\\r\\n\\r\\n')\n"
                  "    print(s.recv(4096).decode())\n"
                  "except OSError as exc:\n"
                  "    print('FAILED', exc)\n")
        done = _in_netns(attachment.netns_path, script)
        assert done.returncode == 0, done
        return done.stdout

    assert "Identity not found" in ask(None)  # its own endpoint, never the target's
    steer = (f"import subprocess; subprocess.run(['ip', 'addr', 'del', '169.254.169.254/32', "
             f"'dev', 'lo'], check=True); subprocess.run(['ip', 'route', 'add', "
             f"'169.254.169.254/32', 'via', {target_ip!r}], check=True)")
    assert _in_netns(attachment.netns_path, steer).returncode == 0
    for source in (None, target_ip):  # its own address, then the target's, forged
        answer = ask(source)
        assert "FAILED" in answer, (source, answer)
        assert "access_token" not in answer
    assert http.get(f"{GROUPS}/target{API}").json()["identity"]["principalId"]
