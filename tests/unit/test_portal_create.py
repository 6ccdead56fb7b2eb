"""The portal's create page in process: the form and the YAML tab make the bodies the CLI
makes, the API's validation errors land next to the field their target names, secret
values never come back in a page, and only a form of the session's own page is obeyed."""

from __future__ import annotations

import re

import pytest

from skiff.portal.creating import field_of, form_body
from skiff.testing.inprocess import BASE, InProcessClient
from tests.unit.test_portal import (  # noqa: F401  (fixtures)
    GROUPS,
    RG,
    SAME_ORIGIN,
    SUB,
    admin,
    admin_token,
    browser,
    csrf_of,
    served,
    sign_in,
)

IMAGE = "registry.test/b:1"


@pytest.fixture
def signed(browser: InProcessClient, admin: InProcessClient,  # noqa: F811
           admin_token: str) -> InProcessClient:  # noqa: F811
    """A signed-in browser, and a resource group to create in."""
    assert admin.put(RG, json={"location": "local"}).status_code == 201
    sign_in(browser, admin_token)
    return browser


def form(page: InProcessClient, **fields: str) -> dict[str, str]:
    base = {"csrf": csrf_of(page.get("/portal/create").text), "tab": "form",
            "scope": f"{SUB}/rg", "name": "web", "image": IMAGE, "cpu": "0.5", "memory": "1",
            "networking": "public", "ports": "80", "protocol": "TCP",
            "restart_policy": "OnFailure"}
    return {**base, **fields}


def field_error(html: str, field: str) -> str:
    """The error shown under ``field`` (its input marked invalid and pointing at it)."""
    assert re.search(rf'id="{field}"[^>]*aria-invalid="true" aria-describedby="{field}-error"',
                     html), f"{field} is not marked invalid"
    found = re.search(rf'<p id="{field}-error" class="error field-error">([^<]*)</p>', html)
    assert found is not None
    return found.group(1)


def test_the_form_creates_the_group_the_cli_would(signed: InProcessClient,
                                                 admin: InProcessClient) -> None:  # noqa: F811
    """Basics, networking and advanced make one container named as the group, with its
    ports on a public address, its variables (the secure one hidden by the API), its
    command and policy; the browser lands on the new group's page."""
    answer = signed.post("/portal/create", headers=SAME_ORIGIN, data=form(
        signed, dns_label="web-portal", env="MODE=demo\n", secure_env="TOKEN=s3cr3t-value",
        command="/bin/sh -c 'echo hi; sleep 3600'"))
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"] == f"/portal/groups/{SUB}/rg/web?done=create"
    props = admin.get(f"{GROUPS}/web").json()["properties"]
    container = props["containers"][0]
    assert container["name"] == "web"
    assert container["properties"]["command"] == ["/bin/sh", "-c", "echo hi; sleep 3600"]
    assert container["properties"]["resources"]["requests"] == {"cpu": 0.5, "memoryInGB": 1.0}
    assert container["properties"]["environmentVariables"] == [
        {"name": "MODE", "value": "demo"}, {"name": "TOKEN"}]
    assert props["ipAddress"]["dnsNameLabel"] == "web-portal"
    assert props["ipAddress"]["ports"] == [{"protocol": "TCP", "port": 80}]
    assert props["restartPolicy"] == "OnFailure"
    assert "s3cr3t-value" not in signed.get(answer.headers["location"]).text


def test_the_api_error_is_shown_next_to_its_field_and_secrets_are_not_echoed(
        signed: InProcessClient, admin: InProcessClient) -> None:  # noqa: F811
    """A DNS label the API refuses marks that field with the API's message; the page shown
    again keeps the other values but neither the secure variables nor the password."""
    answer = signed.post("/portal/create", headers=SAME_ORIGIN, data=form(
        signed, dns_label="no_underscores", secure_env="TOKEN=s3cr3t-value",
        registry_server="registry.test", registry_username="me",
        registry_password="pa55-word"))
    assert answer.status_code == 200
    assert "DNS name label" in field_error(answer.text, "dns_label")
    assert "s3cr3t-value" not in answer.text
    assert "pa55-word" not in answer.text
    assert 'value="registry.test"' in answer.text
    assert 'value="no_underscores"' in answer.text
    assert admin.get(f"{GROUPS}/web").status_code == 404


@pytest.mark.parametrize(("fields", "field", "words"), [
    ({"ports": "80, eighty"}, "ports", "numbers from 1 to 65535"),
    ({"env": "JUST_A_NAME"}, "env", "NAME=value"),
    ({"networking": "private"}, "subnet", "subnet"),
    ({"cpu": "lots"}, "cpu", "must be a number"),
    ({"name": "Web_1"}, "name", "is invalid"),          # the API's
    ({"image": ""}, "image", "Name an image"),
])
def test_fields_the_form_or_the_api_refuses(signed: InProcessClient, fields: dict[str, str],
                                            field: str, words: str) -> None:
    """Each refusal is shown under its own field, whether the form or the API found it."""
    answer = signed.post("/portal/create", headers=SAME_ORIGIN, data=form(signed, **fields))
    assert answer.status_code == 200, answer.text
    assert words in field_error(answer.text, field)


def test_the_yaml_tab_creates_from_an_aci_yaml_file(signed: InProcessClient,
                                                   admin: InProcessClient) -> None:  # noqa: F811
    """The YAML tab takes what `skiff container create --file` takes; a broken file is
    marked with PyYAML's position; one that carries a secret is not shown again."""
    csrf = csrf_of(signed.get("/portal/create?tab=yaml").text)
    text = (f"name: from-yaml\nproperties:\n  osType: Linux\n  containers:\n  - name: app\n"
            f"    properties:\n      image: {IMAGE}\n      resources:\n        requests:\n"
            "          cpu: 0.5\n          memoryInGB: 0.5\n")
    answer = signed.post("/portal/create", headers=SAME_ORIGIN,
                         data={"csrf": csrf, "tab": "yaml", "scope": f"{SUB}/rg", "yaml": text})
    assert answer.status_code == 303, answer.text
    assert admin.get(f"{GROUPS}/from-yaml").json()["properties"]["containers"][0]["name"] == "app"

    broken = signed.post("/portal/create", headers=SAME_ORIGIN, data={
        "csrf": csrf, "tab": "yaml", "scope": f"{SUB}/rg",
        "yaml": "name: x\nproperties: [\n  secureValue: hush-hush\n"})
    assert broken.status_code == 200
    assert "line 4" in field_error(broken.text, "yaml")
    assert "hush-hush" not in broken.text

    refused = signed.post("/portal/create", headers=SAME_ORIGIN, data={
        "csrf": csrf, "tab": "yaml", "scope": f"{SUB}/rg",
        "yaml": text.replace("from-yaml", "Bad_Name")})
    assert refused.status_code == 200
    assert "is invalid" in field_error(refused.text, "yaml")
    assert "Bad_Name" in refused.text  # no secret in it: shown again to be fixed


def test_a_create_without_the_sessions_csrf_is_refused(signed: InProcessClient,
                                                      admin: InProcessClient) -> None:  # noqa: F811
    """A forged form (a wrong CSRF token, or from another site) creates nothing."""
    forged = signed.post("/portal/create", headers=SAME_ORIGIN,
                         data=form(signed, csrf="forged"))
    cross = signed.post("/portal/create", headers={"Origin": "https://evil.example"},
                        data=form(signed))
    assert forged.status_code == cross.status_code == 403
    assert admin.get(f"{GROUPS}/web").status_code == 404


@pytest.mark.parametrize(("target", "code", "field"), [
    ("properties.containers[0].properties.environmentVariables[0].name", "X", "env"),
    ("properties.containers[0].properties.environmentVariables[2].name", "X", "secure_env"),
    ("properties.containers[0].properties.resources.requests.memoryInGB", "X", "memory"),
    ("properties.imageRegistryCredentials[0].password", "X", "registry_password"),
    ("properties.ipAddress.ports[0].port", "X", "ports"),
    ("properties.containers[0].properties.image", "X", "image"),
    (None, "ResourceGroupNotFound", "scope"),
    (None, "SomethingElse", ""),
])
def test_an_arm_target_names_its_field(target: str | None, code: str, field: str) -> None:
    """ARM targets (two plain variables before the secure ones) map to the form's fields;
    an error about nothing in particular goes above the form."""
    assert field_of(target, code, 2) == field


def test_the_form_body_is_the_cli_body() -> None:
    """No IP address asked for: no ports opened, as `skiff container create` does."""
    target, body = form_body({"scope": "s/rg", "name": "n", "image": "i", "networking": "none",
                              "ports": "80"})
    assert (target.subscription, target.resource_group, target.name) == ("s", "rg", "n")
    assert "ipAddress" not in body["properties"]


def test_a_reader_is_offered_no_resource_group_to_create_in(
        browser: InProcessClient, admin: InProcessClient) -> None:  # noqa: F811
    """The form lists only the resource groups whose role allows containerGroups/write: a
    Reader sees none, and the page says why; its forced create meets the API's 403,
    shown above the form."""
    assert admin.put(RG, json={"location": "local"}).status_code == 201
    principal = admin.post("/skiff/servicePrincipals", json={
        "displayName": "r", "role": "Reader", "scopes": [RG]}).json()
    answer = browser.post(f"/{principal['tenant']}/oauth2/v2.0/token", data={
        "grant_type": "client_credentials", "client_id": principal["appId"],
        "client_secret": principal["password"], "scope": f"{BASE}/.default"})
    sign_in(browser, answer.json()["access_token"])
    page = browser.get("/portal/create").text
    assert f'value="{SUB}/rg"' not in page
    assert "containerGroups/write" in page
    forced = browser.post("/portal/create", headers=SAME_ORIGIN, data=form(browser))
    assert "AuthorizationFailed" in forced.text
    assert admin.get(f"{GROUPS}/web").status_code == 404


STORAGE = f"{RG}/providers/Microsoft.Storage/storageAccounts"


def storage_key(admin: InProcessClient) -> str:  # noqa: F811
    """A storage account ``acct`` with a share ``data`` in ``rg``: its first key."""
    assert admin.put(f"{STORAGE}/acct", json={"location": "local", "kind": "StorageV2",
                                              "sku": {"name": "Standard_LRS"}}).status_code == 200
    made = admin.put(f"{STORAGE}/acct/fileServices/default/shares/data",
                     json={"properties": {"shareQuota": 1}})
    assert made.status_code in (200, 201), made.text
    return str(admin.post(f"{STORAGE}/acct/listKeys").json()["keys"][0]["value"])


def test_the_form_makes_the_volumes_the_cli_makes(signed: InProcessClient,
                                                 admin: InProcessClient) -> None:  # noqa: F811
    """Each filled part of Volumes is a volume mounted in the container, in the body
    `group_body` makes for the same arguments (az's volume names); the key and the
    secret's content never reach a page."""
    key = storage_key(admin)
    fields = {"af_account": "acct", "af_share": "data", "af_key": key, "af_mount": "/mnt/data",
              "af_readonly": "1", "ed_mount": "/scratch", "secret_files": "token=aHVzaA==\n",
              "secret_mount": "/secrets", "git_repository": "https://git.test/repo.git",
              "git_directory": "src", "git_revision": "abc123", "git_mount": "/repo"}
    answer = signed.post("/portal/create", headers=SAME_ORIGIN, data=form(signed, **fields))
    assert answer.status_code == 303, answer.text
    _, sent = form_body(form(signed, **fields))
    assert [v["name"] for v in sent["properties"]["volumes"]] == [
        "azurefile", "emptydir", "secrets", "gitrepo"]
    props = admin.get(f"{GROUPS}/web").json()["properties"]
    assert props["volumes"][0]["azureFile"]["shareName"] == "data"
    assert props["volumes"][0]["azureFile"]["readOnly"] is True
    assert props["volumes"][1] == {"name": "emptydir", "emptyDir": {}}
    assert props["volumes"][3]["gitRepo"] == {"repository": "https://git.test/repo.git",
                                             "directory": "src", "revision": "abc123"}
    mounts = props["containers"][0]["properties"]["volumeMounts"]
    assert [(m["name"], m["mountPath"]) for m in mounts] == [
        ("azurefile", "/mnt/data"), ("emptydir", "/scratch"), ("secrets", "/secrets"),
        ("gitrepo", "/repo")]
    shown = signed.get(answer.headers["location"]).text
    assert key not in shown
    assert "aHVzaA==" not in shown


def test_a_volume_the_api_refuses_is_marked_at_its_field(signed: InProcessClient,
                                                        admin: InProcessClient) -> None:  # noqa: F811
    """The API's target (volumes[i], i counting only the parts filled) names the field of
    the right part; the key and the secret's content are not written back."""
    key = storage_key(admin)
    answer = signed.post("/portal/create", headers=SAME_ORIGIN, data=form(
        signed, af_account="acct", af_share="data", af_key=key, af_mount="/mnt/data",
        secret_files="token=aHVzaA==", secret_mount="/secrets",
        git_repository="ftp://git.test/repo", git_mount="/repo"))
    assert answer.status_code == 200
    assert "http://, https:// or git://" in field_error(answer.text, "git_repository")
    assert key not in answer.text
    assert "aHVzaA==" not in answer.text
    assert 'value="acct"' in answer.text  # the rest is kept to be fixed
    assert admin.get(f"{GROUPS}/web").status_code == 404


@pytest.mark.parametrize(("fields", "field", "words"), [
    ({"af_account": "acct", "af_mount": "/m"}, "af_share", "the share"),
    ({"af_account": "acct", "af_share": "s", "af_mount": "/m"}, "af_key", "key"),
    ({"secret_files": "just-a-name", "secret_mount": "/s"}, "secret_files", "NAME=value"),
    ({"secret_files": "a=YQ=="}, "secret_mount", "mounted"),
    ({"git_repository": "https://git.test/r"}, "git_mount", "mounted"),
    ({"ed_mount": "relative/path"}, "ed_mount", "relative/path"),        # the API's
])
def test_volume_fields_the_form_or_the_api_refuses(signed: InProcessClient,
                                                   fields: dict[str, str], field: str,
                                                   words: str) -> None:
    """A half-filled volume says what it lacks; the API's refusal of a mount path is
    shown at that volume's mount path."""
    answer = signed.post("/portal/create", headers=SAME_ORIGIN, data=form(signed, **fields))
    assert answer.status_code == 200, answer.text
    assert words in field_error(answer.text, field)


@pytest.mark.parametrize(("target", "volumes", "field"), [
    ("properties.volumes[0].azureFile.shareName", ("azureFile", "gitRepo"), "af_share"),
    ("properties.volumes[1].gitRepo.directory", ("azureFile", "gitRepo"), "git_directory"),
    ("properties.volumes[0].secret.a", ("secret",), "secret_files"),
    ("properties.containers[0].properties.volumeMounts[1].mountPath",
     ("emptyDir", "gitRepo"), "git_mount"),
    ("properties.volumes[3].name", ("emptyDir",), ""),
])
def test_a_volume_target_names_its_part(target: str, volumes: tuple[str, ...],
                                        field: str) -> None:
    """A volume's index counts the parts filled, in the form's order."""
    assert field_of(target, "X", 0, "form", volumes) == field
