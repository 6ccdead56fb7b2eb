// @azure/identity's ClientSecretCredential signs in to skiff, then the ARM client
// creates and lists a group (tests/e2e/test_js_signin.py).
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
