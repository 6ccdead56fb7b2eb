"""The JavaScript SDK signs in to skiff: @azure/identity's ClientSecretCredential (the
authority host skiff, instance discovery off) and @azure/arm-containerinstance.

Needs ``node`` and the two packages in a ``node_modules`` directory named by
``SKIFF_NODE_MODULES`` (``npm install @azure/identity @azure/arm-containerinstance``);
skipped without them. The API runs over the fake engine (no root).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from skiff.testing.inprocess import fake_https

MODULES = os.environ.get("SKIFF_NODE_MODULES", "")
pytestmark = pytest.mark.skipif(
    not (shutil.which("node") and MODULES and (Path(MODULES) / "@azure" / "identity").is_dir()
         and (Path(MODULES) / "@azure" / "arm-containerinstance").is_dir()),
    reason="no node, or no @azure/identity and @azure/arm-containerinstance in "
           "SKIFF_NODE_MODULES")

SUB = "00000000-0000-0000-0000-00000000a3a3"
SCRIPT = """
const { ClientSecretCredential } = require("@azure/identity");
const { ContainerInstanceManagementClient } = require("@azure/arm-containerinstance");
(async () => {
  const [url, tenant, appId, secret, sub] = process.argv.slice(2);
  const cred = new ClientSecretCredential(tenant, appId, secret,
    { authorityHost: url, disableInstanceDiscovery: true });
  const client = new ContainerInstanceManagementClient(cred, sub,
    { endpoint: url, credentialScopes: [`${url}/.default`] });
  const made = await client.containerGroups.beginCreateOrUpdateAndWait("jsrg", "web", {
    location: "local", osType: "Linux", containers: [{ name: "c",
      image: "registry.test/busybox:1",
      resources: { requests: { cpu: 0.1, memoryInGB: 0.1 } } }] });
  const names = [];
  for await (const g of client.containerGroups.list()) names.push(g.name);
  let refused = "";
  try {
    await client.containerGroups.get("jsrg", "web", { requestOptions: {} });
    const other = new ContainerInstanceManagementClient(cred, "not-mine",
      { endpoint: url, credentialScopes: [`${url}/.default`] });
    await other.containerGroups.get("rg", "x");
  } catch (e) { refused = e.code; }
  console.log(JSON.stringify({ state: made.provisioningState, names, refused }));
})().catch((e) => { console.error(e); process.exit(1); });
"""


def test_client_secret_credential_and_the_arm_client(tmp_path: Path) -> None:
    """A Contributor principal signs in with ClientSecretCredential, creates and lists
    a group; another subscription answers AuthorizationFailed."""
    with fake_https(tmp_path / "root") as server:
        record, secret = server.plane.store.create_principal("js")
        server.plane.store.put_assignment("00000000-0000-0000-0000-00000000a3a4",
                                          f"/subscriptions/{SUB}",
                                          "b24988ac-6180-42a0-ab88-20f7382dd24c",
                                          record.object_id, "ServicePrincipal")
        script = tmp_path / "check.js"
        script.write_text(SCRIPT)
        done = subprocess.run(
            ["node", str(script), server.url, server.plane.store.tenant_id(), record.app_id,
             secret, SUB],
            env=os.environ | {"NODE_PATH": MODULES, "NODE_EXTRA_CA_CERTS": str(server.ca)},
            capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, (done.stdout, done.stderr)
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    assert answer == {"state": "Succeeded", "names": ["web"], "refused": "AuthorizationFailed"}
