"""``skiff image``: the node's images, on a data root directly, as ``podman image`` does.

These commands work on the node's engine (its image store), not through the
API, so they import it inside the command: ``skiff --help`` and the API
commands load no engine.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from skiff.core.reference import parse
from skiff.errors import SkiffError
from skiff.settings import DEFAULT_DATA_ROOT, ImageSettings, Settings

if TYPE_CHECKING:
    from skiff.engine.images import Image, ImageStore, RegistryCredential

F = TypeVar("F", bound=Callable[..., Any])


def _errors(func: F) -> F:
    """Print skiff's errors as one clear line and exit 1; never a traceback."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except SkiffError as exc:
            click.echo(f"error: {exc.code}: {exc.message}", err=True)
            sys.exit(1)

    return wrapper  # type: ignore[return-value]


@click.group()
@click.option("--data-root", type=click.Path(path_type=Path), default=DEFAULT_DATA_ROOT,
              show_default=True, envvar="SKIFF_DATA_ROOT", help="Where skiff keeps its state.")
@click.option("--insecure-registry", "insecure", multiple=True, metavar="HOST[:PORT]",
              help="Reach this registry over plain HTTP or unverified TLS (loopback "
                   "registries always are). Repeatable.")
@click.pass_context
def image(ctx: click.Context, data_root: Path, insecure: tuple[str, ...]) -> None:
    """Manage the images of this node: pull, import, list, inspect, remove, prune."""
    from skiff.engine.images import ImageStore  # the node's engine, for this command only

    settings = Settings(data_root=data_root,
                        images=ImageSettings(insecure_registries=insecure))
    ctx.obj = ImageStore(settings.images_root, settings.images)


def _row(img: Image) -> str:
    age = time.strftime("%Y-%m-%d %H:%M", time.localtime(img.updated))
    return f"{img.reference:<60} {img.id:<12} {img.size / 1e6:>8.1f} MB  {img.source:<8} {age}"


@image.command("pull")
@click.argument("reference")
@click.option("--username", "-u", help="Registry user name.")
@click.option("--password-stdin", is_flag=True,
              help="Read the registry password from standard input (never from an argument).")
@click.pass_obj
@_errors
def pull(store: ImageStore, reference: str, username: str | None, password_stdin: bool) -> None:
    """Pull REFERENCE (e.g. busybox, myreg.azurecr.io/app:1, repo@sha256:...)."""
    creds: list[RegistryCredential] = []
    if username:
        if not password_stdin:
            raise click.UsageError("--username needs --password-stdin")
        password = sys.stdin.readline().rstrip("\n")
        from skiff.engine.images import RegistryCredential

        creds.append(RegistryCredential(parse(reference).domain, username, password))
    start = time.perf_counter()
    img = store.pull(reference, creds)
    click.echo(f"{img.reference} {img.digest} ({(time.perf_counter() - start) * 1e3:.0f} ms)")


@image.command("import")
@click.argument("archive", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--name", help="Name the image (else the name stored in the archive).")
@click.pass_obj
@_errors
def import_(store: ImageStore, archive: Path, name: str | None) -> None:
    """Import a `docker save` tarball or an OCI archive, for offline use."""
    img = store.import_archive(archive, name)
    click.echo(f"{img.reference} {img.digest}")


@image.command("ls")
@click.option("--output", "-o", type=click.Choice(["table", "json"]), default="table",
              show_default=True)
@click.pass_obj
@_errors
def ls(store: ImageStore, output: str) -> None:
    """List the images in the local store."""
    images = store.list()
    if output == "json":
        click.echo(json.dumps([_summary(i) for i in images], indent=2))
        return
    click.echo(f"{'REFERENCE':<60} {'ID':<12} {'SIZE':>11}  {'SOURCE':<8} UPDATED")
    for img in images:
        click.echo(_row(img))


def _summary(img: Image) -> dict[str, Any]:
    return {"reference": img.reference, "id": img.id, "digest": img.digest, "size": img.size,
            "source": img.source, "layers": list(img.layers), "config": img.config.to_json()}


@image.command("inspect")
@click.argument("name")
@click.pass_obj
@_errors
def inspect(store: ImageStore, name: str) -> None:
    """Show an image's digest, layers and config as JSON (by reference, digest or id)."""
    click.echo(json.dumps(_summary(store.get(name)), indent=2))


@image.command("rm")
@click.argument("names", nargs=-1, required=True)
@click.option("--force", "-f", is_flag=True, help="Remove even if a container uses it.")
@click.pass_obj
@_errors
def rm(store: ImageStore, names: tuple[str, ...], force: bool) -> None:
    """Remove images and free what nothing else uses."""
    for name in names:
        click.echo(f"removed {store.remove(name, force=force).reference}")
    store.prune()


@image.command("prune")
@click.pass_obj
@_errors
def prune(store: ImageStore) -> None:
    """Delete blobs and layers that no image and no container uses."""
    removed = store.prune()
    click.echo(", ".join(f"{count} {what}" for what, count in removed.items()) + " removed")
