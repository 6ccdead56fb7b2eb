"""The images the tests pull: built from busybox-static, served by two real registries.

One set, built once per test session, holds every case the engine must handle:
whiteouts, an opaque directory and a setuid file (``bb``), a rich config
(``app``), a multi-platform index (``multi``), a registry behind htpasswd
(``private_bb``), a layer that tries to leave its directory (``evil``) and more
layers than one page of overlay options (``many``). It lives here, not in a
conftest, so that test modules import its names from a package.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from skiff.testing.images import (
    ImageSpec,
    LayerBuilder,
    LayerWriter,
    Layout,
    busybox_layer,
    push,
)
from skiff.testing.registry import Registry, running_registry

PRIVATE_USER, PRIVATE_PASSWORD = "skiffuser", "s3cret-Pa55word-xyzzy"


@dataclass(frozen=True)
class BuiltImages:
    """What the session's registries hold."""

    layout: Path
    public: Registry
    private: Registry
    bb: str  # busybox + data layer (whiteout, opaque, setuid) + top layer
    app: str  # shares bb's base layer; a rich config
    multi: str  # a multi-platform index: amd64 and arm64
    private_bb: str  # bb on the registry behind htpasswd
    evil: str  # a layer that tries to leave its directory
    many: str  # 80 layers: more than one page of overlay options

    @property
    def endpoints(self) -> tuple[str, str]:
        """The registries' ``HOST:PORT``, for a node's ``allow_local_endpoints``."""
        return (self.public.host, self.private.host)


def _data_layer(b: LayerBuilder) -> None:
    b.dir("data")
    b.file("data/gone", b"hidden by the layer above\n")
    b.file("data/kept", b"kept\n")
    b.dir("cache")
    b.file("cache/old", b"hidden by the opaque marker\n")
    b.file("bin/su-test", b"#!/bin/sh\n", mode=0o4755)
    b.dir("shared", mode=0o1777)


def _top_layer(b: LayerBuilder) -> None:
    b.whiteout("data/gone")
    b.opaque("cache")
    b.file("cache/new", b"fresh\n")
    b.file("etc/motd", b"hello from skiff\n")


def _app_layer(b: LayerBuilder) -> None:
    b.dir("app")
    b.file("app/run.sh", b"#!/bin/sh\necho app\n", mode=0o755)


def _numbered(i: int) -> LayerWriter:
    def write(b: LayerBuilder) -> None:
        b.file(f"layer-{i:02d}", f"{i}\n".encode())

    return write


def _escape_layer(b: LayerBuilder) -> None:
    b.file("../../evil", b"escaped\n")


@contextlib.contextmanager
def built_images(base: Path) -> Iterator[BuiltImages]:
    """Build the images under ``base``, push them to a public and a private registry
    started there, and yield their references; the registries stop on exit."""
    layout_dir = base / "layout"
    layout = Layout(layout_dir)
    layout.tag("bb", layout.image(ImageSpec(layers=[busybox_layer, _data_layer, _top_layer])))
    layout.tag("app", layout.image(ImageSpec(
        layers=[busybox_layer, _app_layer], entrypoint=["/app/run.sh"], cmd=["--serve"],
        env=["PATH=/bin", "MODE=test"], working_dir="/app", user="65534:65534",
        exposed_ports=["80/tcp", "53/udp"], labels={"org.skiff.test": "yes"})))
    amd = layout.image(ImageSpec(layers=[busybox_layer], architecture="amd64"))
    arm = layout.image(ImageSpec(layers=[busybox_layer, _app_layer], architecture="arm64"))
    layout.tag("multi", layout.index([arm, amd]))
    layout.tag("evil", layout.image(ImageSpec(layers=[busybox_layer, _escape_layer])))
    many_layers: list[LayerWriter] = [busybox_layer, *(_numbered(i) for i in range(79))]
    layout.tag("many", layout.image(ImageSpec(layers=many_layers)))
    with running_registry(base / "public") as public, running_registry(
        base / "private", user=PRIVATE_USER, password=PRIVATE_PASSWORD
    ) as private:
        for tag in ("bb", "app", "evil", "many"):
            push(layout_dir, tag, public.host, f"test/{tag}")
        push(layout_dir, "multi", public.host, "test/multi", all_platforms=True)
        push(layout_dir, "bb", private.host, "secret/bb", creds=private.creds)
        yield BuiltImages(
            layout=layout_dir, public=public, private=private,
            bb=f"{public.host}/test/bb:bb", app=f"{public.host}/test/app:app",
            multi=f"{public.host}/test/multi:multi", private_bb=f"{private.host}/secret/bb:bb",
            evil=f"{public.host}/test/evil:evil", many=f"{public.host}/test/many:many",
        )
