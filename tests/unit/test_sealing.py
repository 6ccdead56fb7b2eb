"""Unit tests for skiff.store.sealing and skiff.store.bodysecrets: the node key, sealed
values, and where a container group's body holds its secrets."""

from __future__ import annotations

import base64
import json
import multiprocessing
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from skiff.store.bodysecrets import seal_body, slots, unseal_body
from skiff.store.sealing import KEY_BYTES, PREFIX, Sealer, SealingError, load_key

KEY = bytes(range(KEY_BYTES))
OTHER_KEY = bytes(reversed(range(KEY_BYTES)))


def test_a_sealed_value_opens_again_and_hides_its_text() -> None:
    """seal then unseal gives the text back (non-ASCII and a lone surrogate too); the
    sealed form carries the format prefix and neither the text nor its base64."""
    sealer = Sealer(KEY)
    for text in ("s3cret-value", "", "päss wörd ✓", "lone \ud800 half", "x" * 100_000):
        sealed = sealer.seal(text, "ctx")
        assert sealed.startswith(PREFIX)
        if len(text) >= 4:
            assert text not in sealed
            assert base64.b64encode(text.encode("utf-8", "surrogatepass")).decode() not in sealed
        assert sealer.unseal(sealed, "ctx") == text


def test_two_seals_of_one_value_differ() -> None:
    """A random nonce per value: equal secrets do not show as equal sealed values."""
    sealer = Sealer(KEY)
    assert sealer.seal("same", "ctx") != sealer.seal("same", "ctx")


def test_another_key_does_not_open_it() -> None:
    """A value sealed with one key does not open with another; the error quotes no value."""
    sealed = Sealer(KEY).seal("s3cret-value", "ctx")
    with pytest.raises(SealingError, match="does not open") as caught:
        Sealer(OTHER_KEY).unseal(sealed, "ctx")
    assert "s3cret" not in str(caught.value)


def test_a_changed_value_does_not_open() -> None:
    """Flipping any one byte of the sealed value (nonce, ciphertext or tag) is detected."""
    sealer = Sealer(KEY)
    sealed = sealer.seal("s3cret-value", "ctx")
    raw = bytearray(base64.urlsafe_b64decode(sealed[len(PREFIX):]))
    for i in range(len(raw)):
        changed = raw.copy()
        changed[i] ^= 0x01
        with pytest.raises(SealingError):
            sealer.unseal(PREFIX + base64.urlsafe_b64encode(bytes(changed)).decode(), "ctx")


@pytest.mark.parametrize("garbled", ["s3cret-value", "skf1:", "skf1:!!!!", "skf1:AAAA",
                                     "skf2:" + "A" * 40])
def test_garbled_or_unsealed_values_are_refused(garbled: str) -> None:
    """A value without the prefix, not base64, or too short is refused, never returned."""
    with pytest.raises(SealingError):
        Sealer(KEY).unseal(garbled, "ctx")


def test_a_value_moved_to_another_place_does_not_open() -> None:
    """The associated data binds a value to its context: another group or field refuses it."""
    sealer = Sealer(KEY)
    sealed = sealer.seal("s3cret-value", "containerGroups/a/properties/x")
    with pytest.raises(SealingError, match="containerGroups/b"):
        sealer.unseal(sealed, "containerGroups/b/properties/x")


def test_a_key_is_32_bytes() -> None:
    """A key of any other length is a programming error."""
    with pytest.raises(ValueError, match="32 bytes"):
        Sealer(b"short")


# ---- the key file -------------------------------------------------------------------------


def test_the_key_is_made_once_owner_only(tmp_path: Path) -> None:
    """The first load with create makes the key: 0600 in a new 0700 directory, base64 of
    32 random bytes; later loads read the same key."""
    path = tmp_path / "keys" / "node.key"
    key = load_key(path, create=True)
    assert len(key) == KEY_BYTES
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert base64.b64decode(path.read_text().strip()) == key
    assert load_key(path, create=True) == key
    assert load_key(path, create=False) == key
    assert os.listdir(path.parent) == ["node.key"]  # no temporary file left


def test_a_missing_key_is_not_made_when_the_store_needs_the_old_one(tmp_path: Path) -> None:
    """Without create, a missing key is an error naming the path to restore."""
    path = tmp_path / "keys" / "node.key"
    with pytest.raises(SealingError, match=f"{path}.*missing: restore it"):
        load_key(path, create=False)
    assert not path.exists()


def test_a_key_open_to_others_is_refused(tmp_path: Path) -> None:
    """A key file others may read is refused, as ssh refuses such a private key."""
    path = tmp_path / "node.key"
    load_key(path, create=True)
    os.chmod(path, 0o644)
    with pytest.raises(SealingError, match="chmod 600"):
        load_key(path, create=True)


@pytest.mark.parametrize("content", ["", "not base64 at all!", base64.b64encode(b"k" * 16)
                                     .decode()])
def test_a_key_file_that_holds_no_key_is_refused(tmp_path: Path, content: str) -> None:
    """A key file that is not 32 bytes in base64 is refused, not replaced."""
    path = tmp_path / "node.key"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, content.encode())
    os.close(fd)
    with pytest.raises(SealingError, match="not 32 bytes"):
        load_key(path, create=True)
    assert path.read_text() == content


def test_an_operators_key_is_read(tmp_path: Path) -> None:
    """A key the operator made (``head -c 32 /dev/urandom | base64``) is used as is."""
    path = tmp_path / "node.key"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, base64.b64encode(OTHER_KEY) + b"\n")
    os.close(fd)
    assert load_key(path, create=True) == OTHER_KEY


def _load(path: str, out: Any) -> None:
    out.put(load_key(Path(path), create=True))


def test_two_processes_making_the_key_at_once_share_one(tmp_path: Path) -> None:
    """Processes racing to make the key all end with the same one."""
    path = tmp_path / "keys" / "node.key"
    context = multiprocessing.get_context("fork")
    out = context.Queue()
    processes = [context.Process(target=_load, args=(str(path), out)) for _ in range(4)]
    for p in processes:
        p.start()
    keys = [out.get(timeout=30) for _ in processes]
    for p in processes:
        p.join(30)
    assert len(set(keys)) == 1
    assert keys[0] == load_key(path, create=False)


# ---- the secrets of a body ----------------------------------------------------------------


def full_body() -> dict[str, Any]:
    """A body with a secret in every place one may be, and as many plain fields."""
    return {"location": "local", "properties": {
        "osType": "Linux",
        "initContainers": [{"name": "i", "properties": {"image": "busybox",
                            "environmentVariables": [{"name": "I", "secureValue": "init-sv"}]}}],
        "containers": [{"name": "c", "properties": {
            "image": "busybox", "resources": {"requests": {"cpu": 1, "memoryInGB": 1}},
            "environmentVariables": [{"name": "PLAIN", "value": "plain-value"},
                                     {"name": "S", "secureValue": "app-sv"}]}}],
        "imageRegistryCredentials": [{"server": "r.test", "username": "u",
                                      "password": "reg-pw"}],
        "volumes": [{"name": "s", "secret": {"a.txt": "c2VjcmV0LWZpbGU="}},
                    {"name": "f", "azureFile": {"shareName": "share",
                                                "storageAccountName": "acct",
                                                "StorageAccountKey": "acct-key"}}],
        "diagnostics": {"logAnalytics": {"workspaceId": "w", "workspaceKey": "ws-key"}},
        "extensions": [{"name": "e", "properties": {"extensionType": "kube-proxy",
                                                    "protectedSettings": {"k": "ext-secret"}}}],
    }}


SECRETS = ("init-sv", "app-sv", "reg-pw", "c2VjcmV0LWZpbGU=", "acct-key", "ws-key",
           "ext-secret")


def test_every_secret_of_a_body_is_found() -> None:
    """The slots are the fields ACI never answers, keys of free-form fields in any case."""
    pointers = [pointer for _, _, pointer in slots(full_body())]
    assert pointers == [
        "/properties/initContainers/0/properties/environmentVariables/0/secureValue",
        "/properties/containers/0/properties/environmentVariables/1/secureValue",
        "/properties/imageRegistryCredentials/0/password",
        "/properties/volumes/0/secret/a.txt",
        "/properties/volumes/1/azureFile/StorageAccountKey",
        "/properties/diagnostics/logAnalytics/workspaceKey",
        "/properties/extensions/0/properties/protectedSettings",
    ]


def test_a_sealed_body_hides_every_secret_and_opens_to_the_same_body() -> None:
    """seal_body leaves no secret in the JSON and touches nothing else; unseal_body gives
    the very body back (an object-valued secret included); the input is not changed."""
    sealer = Sealer(KEY)
    body = full_body()
    sealed = seal_body(body, sealer, "uid1")
    assert body == full_body()
    text = json.dumps(sealed)
    for secret in SECRETS:
        assert secret not in text
    for plain in ("plain-value", "a.txt", "acct"):
        assert plain in text
    assert unseal_body(json.loads(text), sealer, "uid1") == full_body()


def test_a_body_opens_only_for_its_own_group() -> None:
    """A sealed body copied to another group's row does not open there."""
    sealer = Sealer(KEY)
    sealed = seal_body(full_body(), sealer, "uid1")
    with pytest.raises(SealingError, match="containerGroups/uid2/properties/initContainers"):
        unseal_body(sealed, sealer, "uid2")


def test_secrets_swapped_within_a_body_do_not_open() -> None:
    """Two sealed secrets of one group swapped between fields are refused."""
    sealer = Sealer(KEY)
    sealed = seal_body(full_body(), sealer, "uid1")
    creds = sealed["properties"]["imageRegistryCredentials"][0]
    var = sealed["properties"]["containers"][0]["properties"]["environmentVariables"][1]
    creds["password"], var["secureValue"] = var["secureValue"], creds["password"]
    with pytest.raises(SealingError):
        unseal_body(sealed, sealer, "uid1")


def test_a_secret_left_in_clear_is_refused() -> None:
    """A body whose secret field holds a plain value (written around the store) is refused
    rather than handed out as if it had been sealed."""
    sealer = Sealer(KEY)
    sealed = seal_body(full_body(), sealer, "uid1")
    sealed["properties"]["imageRegistryCredentials"][0]["password"] = "reg-pw"
    with pytest.raises(SealingError, match="not sealed"):
        unseal_body(sealed, sealer, "uid1")
