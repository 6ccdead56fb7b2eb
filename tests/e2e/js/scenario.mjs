// The JavaScript ACI SDK against a running skiff: one scenario, its findings printed as
// JSON for tests/e2e/test_js_sdk.py to check. Reads SKIFF_URL, SKIFF_TOKEN,
// SKIFF_SUBSCRIPTION and SKIFF_IMAGE; NODE_EXTRA_CA_CERTS names skiff's CA.
import { ContainerInstanceManagementClient } from "@azure/arm-containerinstance";

const { SKIFF_URL, SKIFF_TOKEN, SKIFF_SUBSCRIPTION, SKIFF_IMAGE } = process.env;
// A TokenCredential handing the SDK a skiff token.
const credential = {
  getToken: async () => ({ token: SKIFF_TOKEN, expiresOnTimestamp: Date.now() + 3600_000 }),
};
const client = new ContainerInstanceManagementClient(credential, SKIFF_SUBSCRIPTION, {
  endpoint: SKIFF_URL,
});
const fast = { updateIntervalInMs: 200 };
const rg = "jsrg";
const name = "jsweb";

const created = await client.containerGroups.beginCreateOrUpdateAndWait(rg, name, {
  location: "eastus",
  osType: "Linux",
  containers: [{
    name: "main",
    image: SKIFF_IMAGE,
    command: ["sh", "-c", "sleep 300"],
    resources: { requests: { cpu: 0.5, memoryInGB: 0.5 } },
  }],
}, fast);
const outbound = await client.containerGroups.getOutboundNetworkDependenciesEndpoints(rg, name);
const deleted = await client.containerGroups.beginDeleteAndWait(rg, name, fast);
let gone = false;
try {
  await client.containerGroups.get(rg, name);
} catch (error) {
  gone = error.statusCode === 404;
}
const absent = await client.containerGroups.beginDeleteAndWait(rg, name, fast);
console.log(JSON.stringify({
  created: { location: created.location, provisioningState: created.provisioningState },
  outbound,
  deleted: deleted && { name: deleted.name, id: deleted.id, location: deleted.location,
                        image: deleted.containers?.[0]?.image },
  gone,
  absent: absent ?? null,
}));
