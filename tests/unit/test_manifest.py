"""Unit tests for skiff.engine.images.manifest: manifests, indexes and image configs."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from skiff.engine.images.manifest import (
    DOCKER_LIST,
    DOCKER_MANIFEST,
    OCI_CONFIG,
    OCI_INDEX,
    OCI_LAYER_GZIP,
    OCI_MANIFEST,
    Descriptor,
    ImageConfig,
    Manifest,
    digest_of,
    is_index,
    media_type_of,
    parse_config,
    parse_index,
    parse_manifest,
    select_platform,
)
from skiff.errors import ImageError, UnsupportedImage
from skiff.settings import Platform

DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
SCHEMA1 = "application/vnd.docker.distribution.manifest.v1+json"
SCHEMA1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"


def dg(n: int) -> str:
    """A valid, distinct sha256 digest for small integers."""
    return "sha256:" + f"{n:064x}"


def encode(doc: Any) -> bytes:
    """JSON bytes for a document, as a registry would serve them."""
    return json.dumps(doc, indent=2).encode()


def descriptor(media_type: str, n: int, size: int) -> dict[str, Any]:
    """A descriptor object as it appears in a manifest."""
    return {"mediaType": media_type, "digest": dg(n), "size": size}


def oci_manifest(**extra: Any) -> dict[str, Any]:
    """An OCI image manifest with one config and two layers."""
    doc: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor(OCI_CONFIG, 1, 1470),
        "layers": [descriptor(OCI_LAYER_GZIP, 2, 3_000_000), descriptor(OCI_LAYER_GZIP, 3, 42)],
    }
    doc.update(extra)
    return doc


def docker_manifest() -> dict[str, Any]:
    """A Docker schema 2 image manifest with one config and one layer."""
    return {
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST,
        "config": descriptor(DOCKER_CONFIG, 10, 7023),
        "layers": [descriptor(DOCKER_LAYER, 11, 32654)],
    }


def index_entry(
    n: int, os: str, arch: str, variant: str | None = None, media_type: str = OCI_MANIFEST
) -> dict[str, Any]:
    """An index entry for platform ``os/arch[/variant]``."""
    platform: dict[str, Any] = {"os": os, "architecture": arch}
    if variant is not None:
        platform["variant"] = variant
    return {**descriptor(media_type, n, 500 + n), "platform": platform}


def index(*entries: dict[str, Any], media_type: str | None = OCI_INDEX) -> bytes:
    """Index bytes holding ``entries``; ``media_type=None`` leaves mediaType out."""
    doc: dict[str, Any] = {"schemaVersion": 2, "manifests": list(entries)}
    if media_type is not None:
        doc["mediaType"] = media_type
    return encode(doc)


AMD64 = Platform(os="linux", architecture="amd64")
ARM64 = Platform(os="linux", architecture="arm64")


# --- digest_of / media_type_of / is_index ----------------------------------------------------


def test_digest_of_is_sha256_of_the_exact_bytes() -> None:
    """digest_of is ``sha256:`` plus the hex SHA-256 of the bytes as given."""
    data = b'{"a": 1}'
    assert digest_of(data) == "sha256:" + hashlib.sha256(data).hexdigest()
    assert digest_of(b'{"a":1}') != digest_of(data)  # no re-serialisation


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        ({"mediaType": DOCKER_MANIFEST, "layers": [], "config": {}}, DOCKER_MANIFEST),
        ({"mediaType": DOCKER_LIST, "manifests": []}, DOCKER_LIST),
        ({"manifests": []}, OCI_INDEX),
        ({"layers": [], "config": {}}, OCI_MANIFEST),
        ({"fsLayers": [], "schemaVersion": 1}, SCHEMA1),
        ({"mediaType": "", "layers": [], "config": {}}, OCI_MANIFEST),
    ],
)
def test_media_type_of(doc: dict[str, Any], expected: str) -> None:
    """The declared media type wins; otherwise the document's shape decides."""
    assert media_type_of(encode(doc)) == expected


def test_media_type_of_refuses_shapeless_document() -> None:
    """A document with neither layers nor manifests has no media type."""
    with pytest.raises(UnsupportedImage, match="neither layers nor manifests"):
        media_type_of(encode({"schemaVersion": 2}))


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (index(media_type=OCI_INDEX), True),
        (index(media_type=DOCKER_LIST), True),
        (index(media_type=None), True),
        (encode(oci_manifest()), False),
        (encode(docker_manifest()), False),
    ],
)
def test_is_index(data: bytes, expected: bool) -> None:
    """Indexes and manifest lists are indexes; image manifests are not."""
    assert is_index(data) is expected


# --- parse_manifest ---------------------------------------------------------------------------


def test_parse_oci_manifest() -> None:
    """An OCI manifest yields its digest, media type, config and layers in order."""
    data = encode(oci_manifest())
    manifest = parse_manifest(data)
    assert manifest == Manifest(
        digest=digest_of(data),
        media_type=OCI_MANIFEST,
        config=Descriptor(OCI_CONFIG, dg(1), 1470),
        layers=(
            Descriptor(OCI_LAYER_GZIP, dg(2), 3_000_000),
            Descriptor(OCI_LAYER_GZIP, dg(3), 42),
        ),
    )


def test_parse_docker_v2s2_manifest() -> None:
    """A Docker schema 2 manifest is read like an OCI one, keeping its media types."""
    data = encode(docker_manifest())
    manifest = parse_manifest(data)
    assert manifest.media_type == DOCKER_MANIFEST
    assert manifest.digest == digest_of(data)
    assert manifest.config == Descriptor(DOCKER_CONFIG, dg(10), 7023)
    assert manifest.layers == (Descriptor(DOCKER_LAYER, dg(11), 32654),)


def test_parse_manifest_infers_oci_when_media_type_missing() -> None:
    """A manifest without ``mediaType`` (allowed by OCI) is taken as an OCI manifest."""
    doc = oci_manifest()
    del doc["mediaType"]
    manifest = parse_manifest(encode(doc))
    assert manifest.media_type == OCI_MANIFEST
    assert len(manifest.layers) == 2


def test_parse_manifest_with_no_layers() -> None:
    """An empty layer list is a valid (if unusual) image."""
    manifest = parse_manifest(encode(oci_manifest(layers=[])))
    assert manifest.layers == ()


def test_parse_manifest_descriptor_defaults() -> None:
    """A descriptor without size or mediaType gets size -1 and an empty media type."""
    doc = oci_manifest(layers=[{"digest": dg(5)}])
    manifest = parse_manifest(encode(doc))
    assert manifest.layers == (Descriptor("", dg(5), -1),)


def test_parse_manifest_digest_is_of_the_served_bytes() -> None:
    """The same manifest serialised differently has a different digest."""
    doc = oci_manifest()
    compact = json.dumps(doc, separators=(",", ":")).encode()
    assert parse_manifest(compact).digest != parse_manifest(encode(doc)).digest
    assert parse_manifest(compact).digest == digest_of(compact)


@pytest.mark.parametrize(
    "doc",
    [
        pytest.param({"schemaVersion": 1, "fsLayers": [], "history": []}, id="shape"),
        pytest.param({"schemaVersion": 1, "mediaType": SCHEMA1, "fsLayers": []}, id="declared"),
        pytest.param(
            {"schemaVersion": 1, "mediaType": SCHEMA1_SIGNED, "fsLayers": [], "signatures": []},
            id="signed",
        ),
    ],
)
def test_parse_manifest_refuses_schema1(doc: dict[str, Any]) -> None:
    """Docker schema 1 manifests are refused with a hint to push again."""
    with pytest.raises(UnsupportedImage, match="schema 1"):
        parse_manifest(encode(doc))


@pytest.mark.parametrize("media_type", [OCI_INDEX, DOCKER_LIST])
def test_parse_manifest_refuses_index(media_type: str) -> None:
    """An index is not an image manifest."""
    with pytest.raises(UnsupportedImage, match="unsupported manifest type"):
        parse_manifest(index(index_entry(1, "linux", "amd64"), media_type=media_type))


def test_parse_manifest_refuses_unknown_media_type() -> None:
    """A manifest of an unknown media type is refused, naming the type."""
    doc = oci_manifest(mediaType="application/vnd.example.thing+json")
    with pytest.raises(UnsupportedImage, match=r"vnd\.example\.thing"):
        parse_manifest(encode(doc))


@pytest.mark.parametrize(
    ("data", "match"),
    [
        pytest.param(b"", "not valid JSON", id="empty"),
        pytest.param(b"{", "not valid JSON", id="truncated"),
        pytest.param(b"not json", "not valid JSON", id="text"),
        pytest.param(b"\xff\xfe\x00garbage", "not valid JSON", id="binary"),
        pytest.param(b"[]", "not a JSON object", id="array"),
        pytest.param(b"null", "not a JSON object", id="null"),
        pytest.param(b'"manifest"', "not a JSON object", id="string"),
        pytest.param(b"42", "not a JSON object", id="number"),
    ],
)
def test_parse_manifest_refuses_malformed_json(data: bytes, match: str) -> None:
    """Bytes that are not a JSON object are refused with UnsupportedImage."""
    with pytest.raises(UnsupportedImage, match=match):
        parse_manifest(data)


@pytest.mark.parametrize(
    "doc",
    [
        pytest.param(oci_manifest(layers=None), id="layers-null"),
        pytest.param(oci_manifest(layers={"a": 1}), id="layers-object"),
        pytest.param(oci_manifest(config=None), id="config-null"),
        pytest.param(oci_manifest(config="sha256:abc"), id="config-string"),
        pytest.param(oci_manifest(layers=["sha256:abc"]), id="layer-string"),
        pytest.param(oci_manifest(layers=[{"digest": dg(2), "size": "12"}]), id="size-string"),
        pytest.param(oci_manifest(layers=[{"digest": dg(2), "mediaType": 3}]), id="type-number"),
        pytest.param(
            {"mediaType": OCI_MANIFEST, "config": descriptor(OCI_CONFIG, 1, 1)}, id="layers-missing"
        ),
    ],
)
def test_parse_manifest_refuses_malformed_structure(doc: dict[str, Any]) -> None:
    """Manifests whose config or layers are not descriptors are refused."""
    with pytest.raises(UnsupportedImage):
        parse_manifest(encode(doc))


BAD_DIGESTS = [
    pytest.param(None, id="missing"),
    pytest.param(12, id="number"),
    pytest.param("", id="empty"),
    pytest.param("sha256:abc", id="short"),
    pytest.param("sha256:" + "a" * 65, id="long"),
    pytest.param("sha512:" + "a" * 128, id="sha512"),
    pytest.param("md5:" + "a" * 67, id="md5-padded"),
    pytest.param("a" * 71, id="no-algorithm"),
]


@pytest.mark.parametrize("digest", BAD_DIGESTS)
def test_parse_manifest_refuses_bad_layer_digest(digest: Any) -> None:
    """A layer whose digest is not sha256 of the right length is refused."""
    layer: dict[str, Any] = {"mediaType": OCI_LAYER_GZIP, "size": 1}
    if digest is not None:
        layer["digest"] = digest
    with pytest.raises(UnsupportedImage, match="layer 0"):
        parse_manifest(encode(oci_manifest(layers=[layer])))


@pytest.mark.parametrize("digest", BAD_DIGESTS)
def test_parse_manifest_refuses_bad_config_digest(digest: Any) -> None:
    """A config whose digest is not sha256 of the right length is refused."""
    config: dict[str, Any] = {"mediaType": OCI_CONFIG, "size": 1}
    if digest is not None:
        config["digest"] = digest
    with pytest.raises(UnsupportedImage, match="manifest config"):
        parse_manifest(encode(oci_manifest(config=config)))


NON_HEX_DIGESTS = [
    pytest.param("sha256:" + "g" * 64, id="non-hex"),
    pytest.param("sha256:" + "A" * 64, id="uppercase-hex"),
    pytest.param("sha256:" + "../" * 21 + "x", id="path-traversal"),
    pytest.param("sha256:" + " " * 64, id="spaces"),
]


@pytest.mark.parametrize("digest", NON_HEX_DIGESTS)
def test_parse_manifest_refuses_non_hex_digest(digest: str) -> None:
    """A digest of the right length but not lower-case hex is refused."""
    layer = {"mediaType": OCI_LAYER_GZIP, "digest": digest, "size": 1}
    with pytest.raises(UnsupportedImage):
        parse_manifest(encode(oci_manifest(layers=[layer])))


def test_unsupported_image_is_a_final_image_error() -> None:
    """Refusals are ImageErrors with the UnsupportedImage code, not retried."""
    with pytest.raises(ImageError) as info:
        parse_manifest(b"[]")
    assert isinstance(info.value, UnsupportedImage)
    assert info.value.code == "UnsupportedImage"
    assert info.value.transient is False


# --- parse_index ------------------------------------------------------------------------------


def test_parse_index_reads_entries_and_platforms() -> None:
    """Index entries keep digest, media type and platform (variant optional)."""
    entries = parse_index(
        index(
            index_entry(1, "linux", "amd64"),
            index_entry(2, "linux", "arm", "v7", media_type=DOCKER_MANIFEST),
            {**descriptor(OCI_MANIFEST, 3, 10)},
        )
    )
    assert [e.digest for e in entries] == [dg(1), dg(2), dg(3)]
    assert entries[0].platform == AMD64
    assert entries[1].platform == Platform(os="linux", architecture="arm", variant="v7")
    assert entries[1].media_type == DOCKER_MANIFEST
    assert entries[2].platform is None


def test_parse_index_empty_variant_is_none() -> None:
    """An empty ``variant`` string means no variant."""
    (entry,) = parse_index(index(index_entry(1, "linux", "arm64", "")))
    assert entry.platform == ARM64


@pytest.mark.parametrize("manifests", [[], None])
def test_parse_index_without_entries(manifests: Any) -> None:
    """An index with an empty or null manifest list has no entries."""
    assert parse_index(encode({"mediaType": OCI_INDEX, "manifests": manifests})) == ()


def test_parse_index_refuses_bad_entry_digest() -> None:
    """An index entry with a malformed digest is refused."""
    entry = {"mediaType": OCI_MANIFEST, "digest": "sha256:nope", "size": 1}
    with pytest.raises(UnsupportedImage, match="index entry"):
        parse_index(index(entry))


# --- select_platform --------------------------------------------------------------------------


def multi_platform_index(media_type: str = OCI_INDEX) -> bytes:
    """An index as BuildKit pushes it: four platforms plus attestation manifests."""
    return index(
        index_entry(1, "linux", "arm", "v7"),
        index_entry(2, "linux", "arm64", "v8"),
        index_entry(3, "linux", "amd64"),
        index_entry(4, "linux", "s390x"),
        index_entry(5, "unknown", "unknown"),
        index_entry(6, "unknown", "unknown"),
        media_type=media_type,
    )


@pytest.mark.parametrize("media_type", [OCI_INDEX, DOCKER_LIST, None])
def test_select_platform_picks_linux_amd64(media_type: str | None) -> None:
    """linux/amd64 is picked out of a several-platform index or manifest list."""
    data = index(
        index_entry(1, "linux", "arm", "v7"),
        index_entry(2, "linux", "arm64", "v8"),
        index_entry(3, "linux", "amd64"),
        index_entry(4, "windows", "amd64"),
        media_type=media_type,
    )
    assert select_platform(data, AMD64) == dg(3)


def test_select_platform_ignores_other_os_same_arch() -> None:
    """windows/amd64 is not a match for linux/amd64, whatever the order."""
    data = index(index_entry(1, "windows", "amd64"), index_entry(2, "linux", "amd64"))
    assert select_platform(data, AMD64) == dg(2)


def test_select_platform_prefers_exact_variant() -> None:
    """An exact variant match wins over earlier entries of the same architecture."""
    data = index(
        index_entry(1, "linux", "arm", "v6"),
        index_entry(2, "linux", "arm"),
        index_entry(3, "linux", "arm", "v7"),
    )
    assert select_platform(data, Platform(architecture="arm", variant="v7")) == dg(3)


def test_select_platform_prefers_no_variant_over_other_variant() -> None:
    """Without an exact variant, an entry with no variant beats one with another variant."""
    data = index(index_entry(1, "linux", "arm", "v6"), index_entry(2, "linux", "arm"))
    assert select_platform(data, Platform(architecture="arm", variant="v7")) == dg(2)


def test_select_platform_no_variant_wanted_prefers_no_variant() -> None:
    """A host without a variant takes the variant-less entry over a variant one."""
    data = index(index_entry(1, "linux", "arm64", "v8"), index_entry(2, "linux", "arm64"))
    assert select_platform(data, ARM64) == dg(2)


def test_select_platform_falls_back_to_any_variant() -> None:
    """linux/arm64 without a variant accepts the usual linux/arm64/v8 entry."""
    assert select_platform(multi_platform_index(), ARM64) == dg(2)


def test_select_platform_skips_attestation_entries() -> None:
    """``unknown/unknown`` attestation manifests are never picked."""
    data = index(index_entry(5, "unknown", "unknown"), index_entry(3, "linux", "amd64"))
    assert select_platform(data, AMD64) == dg(3)
    assert select_platform(multi_platform_index(), AMD64) == dg(3)


def test_select_platform_skips_entries_without_platform() -> None:
    """Entries with no platform at all are skipped."""
    data = index({**descriptor(OCI_MANIFEST, 9, 1)}, index_entry(3, "linux", "amd64"))
    assert select_platform(data, AMD64) == dg(3)


def test_select_platform_skips_nested_indexes() -> None:
    """An entry that is itself an index is not a manifest to run."""
    data = index(
        index_entry(1, "linux", "amd64", media_type=OCI_INDEX),
        index_entry(2, "linux", "amd64", media_type=DOCKER_LIST),
        index_entry(3, "linux", "amd64", media_type=DOCKER_MANIFEST),
    )
    assert select_platform(data, AMD64) == dg(3)


def test_select_platform_takes_first_of_equal_entries() -> None:
    """Among equally good entries, the first listed wins."""
    data = index(index_entry(7, "linux", "amd64"), index_entry(8, "linux", "amd64"))
    assert select_platform(data, AMD64) == dg(7)


def test_select_platform_refuses_and_names_offered_platforms() -> None:
    """With no match, UnsupportedImage names the wanted and every offered platform."""
    data = index(
        index_entry(1, "linux", "arm64", "v8"),
        index_entry(2, "linux", "arm", "v7"),
        index_entry(3, "windows", "amd64"),
        index_entry(4, "unknown", "unknown"),
    )
    with pytest.raises(UnsupportedImage) as info:
        select_platform(data, Platform(architecture="riscv64"))
    message = str(info.value)
    assert "no image for platform linux/riscv64" in message
    for offered in ("linux/arm64/v8", "linux/arm/v7", "windows/amd64"):
        assert offered in message
    # offered platforms are listed sorted and without duplicates
    assert "linux/arm/v7, linux/arm64/v8, unknown/unknown, windows/amd64" in message


def test_select_platform_refuses_empty_index() -> None:
    """An index with no entries offers nothing, and says so."""
    with pytest.raises(UnsupportedImage, match=r"offers: none"):
        select_platform(index(), AMD64)


def test_select_platform_refuses_malformed_index() -> None:
    """Malformed index bytes are refused with UnsupportedImage."""
    with pytest.raises(UnsupportedImage):
        select_platform(b"{oops", AMD64)


# --- parse_config -----------------------------------------------------------------------------


def full_config() -> dict[str, Any]:
    """An image config blob as ``docker build`` writes it."""
    return {
        "architecture": "amd64",
        "os": "linux",
        "created": "2024-05-01T12:00:00Z",
        "config": {
            "Entrypoint": ["/docker-entrypoint.sh"],
            "Cmd": ["nginx", "-g", "daemon off;"],
            "Env": ["PATH=/usr/local/sbin:/usr/bin", "NGINX_VERSION=1.25.5"],
            "WorkingDir": "/srv",
            "User": "101:101",
            "ExposedPorts": {"80/tcp": {}, "443/tcp": {}, "53/udp": {}},
            "Labels": {"maintainer": "NGINX", "org.opencontainers.image.version": "1.25"},
            "StopSignal": "SIGQUIT",
        },
        "rootfs": {"type": "layers", "diff_ids": [dg(20), dg(21)]},
        "history": [],
    }


def test_parse_config_exposes_runtime_fields() -> None:
    """Entrypoint, Cmd, Env, WorkingDir, User, ports, labels and diff_ids are exposed."""
    conf = parse_config(encode(full_config()))
    assert conf.entrypoint == ("/docker-entrypoint.sh",)
    assert conf.cmd == ("nginx", "-g", "daemon off;")
    assert conf.env == ("PATH=/usr/local/sbin:/usr/bin", "NGINX_VERSION=1.25.5")
    assert conf.working_dir == "/srv"
    assert conf.user == "101:101"
    assert conf.exposed_ports == ("443/tcp", "53/udp", "80/tcp")
    assert conf.labels == (
        ("maintainer", "NGINX"),
        ("org.opencontainers.image.version", "1.25"),
    )
    assert conf.stop_signal == "SIGQUIT"
    assert conf.diff_ids == (dg(20), dg(21))
    assert conf.created == "2024-05-01T12:00:00Z"


def test_parse_config_to_json() -> None:
    """to_json renders the config with Docker's key names."""
    doc = parse_config(encode(full_config())).to_json()
    assert doc == {
        "Entrypoint": ["/docker-entrypoint.sh"],
        "Cmd": ["nginx", "-g", "daemon off;"],
        "Env": ["PATH=/usr/local/sbin:/usr/bin", "NGINX_VERSION=1.25.5"],
        "WorkingDir": "/srv",
        "User": "101:101",
        "ExposedPorts": ["443/tcp", "53/udp", "80/tcp"],
        "Labels": {"maintainer": "NGINX", "org.opencontainers.image.version": "1.25"},
        "StopSignal": "SIGQUIT",
        "Created": "2024-05-01T12:00:00Z",
    }
    json.dumps(doc)  # serialisable as is


@pytest.mark.parametrize(
    "doc",
    [
        pytest.param({"rootfs": {"type": "layers", "diff_ids": []}}, id="no-config"),
        pytest.param({"config": None, "rootfs": None}, id="nulls"),
        pytest.param({"config": {}}, id="empty-config"),
        pytest.param({}, id="empty-document"),
        pytest.param(
            {
                "config": {
                    "Entrypoint": None,
                    "Cmd": None,
                    "Env": None,
                    "WorkingDir": None,
                    "User": None,
                    "ExposedPorts": None,
                    "Labels": None,
                }
            },
            id="null-fields",
        ),
    ],
)
def test_parse_config_missing_sections_give_empty_values(doc: dict[str, Any]) -> None:
    """A config without a ``config`` section (or with null fields) yields empty values."""
    conf = parse_config(encode(doc))
    assert conf == ImageConfig()
    assert conf.entrypoint == ()
    assert conf.cmd == ()
    assert conf.env == ()
    assert conf.working_dir == ""
    assert conf.user == ""
    assert conf.exposed_ports == ()
    assert conf.labels == ()
    assert conf.diff_ids == ()


def test_parse_config_single_string_command() -> None:
    """A Cmd or Entrypoint given as one string is a one-element list (Docker's strslice)."""
    conf = parse_config(encode({"config": {"Cmd": "sh", "Entrypoint": "/init"}}))
    assert conf.cmd == ("sh",)
    assert conf.entrypoint == ("/init",)


def test_parse_config_empty_lists_stay_empty() -> None:
    """An explicitly empty Entrypoint means none, not a list with an empty string."""
    conf = parse_config(encode({"config": {"Entrypoint": [], "Cmd": [""]}}))
    assert conf.entrypoint == ()
    assert conf.cmd == ("",)


@pytest.mark.parametrize(
    "doc",
    [
        pytest.param({"config": ["Cmd"]}, id="config-list"),
        pytest.param({"config": "x"}, id="config-string"),
        pytest.param({"rootfs": ["x"]}, id="rootfs-list"),
        pytest.param({"config": {"Labels": ["a=b"]}}, id="labels-list"),
        pytest.param({"config": {"ExposedPorts": ["80/tcp"]}}, id="ports-list"),
        pytest.param({"config": {"Cmd": ["sh", 1]}}, id="cmd-not-strings"),
        pytest.param({"config": {"Env": {"A": "B"}}}, id="env-object"),
        pytest.param({"config": {"Entrypoint": 5}}, id="entrypoint-number"),
        pytest.param({"rootfs": {"diff_ids": "sha256:abc"}}, id="diff-id-short"),
        pytest.param({"rootfs": {"diff_ids": ["md5:" + "a" * 67]}}, id="diff-id-md5"),
        pytest.param({"rootfs": {"diff_ids": [dg(1), 7]}}, id="diff-id-number"),
    ],
)
def test_parse_config_refuses_malformed(doc: dict[str, Any]) -> None:
    """Configs with sections or fields of the wrong shape are refused."""
    with pytest.raises(UnsupportedImage):
        parse_config(encode(doc))


@pytest.mark.parametrize(
    "data",
    [b"", b"{", b"[]", b"null", b"\xff"],
)
def test_parse_config_refuses_non_object(data: bytes) -> None:
    """Config bytes that are not a JSON object are refused."""
    with pytest.raises(UnsupportedImage, match="image config"):
        parse_config(data)


@pytest.mark.parametrize("digest", NON_HEX_DIGESTS)
def test_parse_config_refuses_non_hex_diff_id(digest: str) -> None:
    """A diff_id of the right length but not lower-case hex is refused."""
    with pytest.raises(UnsupportedImage):
        parse_config(encode({"rootfs": {"type": "layers", "diff_ids": [digest]}}))
