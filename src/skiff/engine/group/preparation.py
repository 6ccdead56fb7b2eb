"""Everything a group's containers need before the first one starts.

Preparing a group is one concern with three parts that run side by side:
the images (one pull, or registry check, per distinct image, on the
supervisor's pool), the network (a namespace from the warm pool, then the
group's firewall) and the volumes (the containers' config maps with them). A
cached image is used at once while its registry check runs; the supervisor
waits for the check (:func:`pulled`) before it lets that container's process
run, so an image the caller may not read never runs. A part that fails fails
the group, with the reason the instance view shows.
"""

from __future__ import annotations

import concurrent.futures

from skiff.core.secrets import scrub, secrets_of
from skiff.core.spec import GroupSpec, config_maps
from skiff.engine.group.record import Group, sync_views
from skiff.engine.images import Image, ImageStore, RegistryCredential
from skiff.engine.network.networks import Attachment, Networks
from skiff.engine.runtime.driver import RuntimeDriver
from skiff.engine.spec import container as containerspec
from skiff.engine.volumes.manager import Volumes
from skiff.errors import ImageError, ShareMountFailed, SkiffError


def prepare(group: Group, *, pool: concurrent.futures.Executor, images: ImageStore,
            networks: Networks, volumes: Volumes, driver: RuntimeDriver) -> None:
    """Images, network and volumes: everything the containers need (the volumes owned
    as the group's ``driver`` maps its users)."""
    spec = group.spec
    sync_views(group)
    creds = [RegistryCredential(c.server, c.username, c.password) for c in spec.credentials]
    wanted = {c.name: c.image for c in (*spec.init_containers, *spec.containers)}
    for view in group.view.all_containers():
        if view.current.state == "Waiting":
            view.event("Pulling", f'pulling image "{wanted[view.name]}"')
    # One pull (or check) per distinct image. A cached image is used at once
    # while its registry check runs: the supervisor waits for the check before
    # it lets the container's process run.
    pulls = {ref: pool.submit(images.pull, ref, creds)
             for ref in dict.fromkeys(wanted.values())}
    attaching = pool.submit(network, networks, spec)
    try:
        group.volume_paths = volumes.prepare(spec.id, spec.volumes,
                                             owner=containerspec.volume_owner(driver, spec))
        group.config_maps = config_maps(spec)
        group.config_map_paths, _ = volumes.config_maps.write(spec.id, group.config_maps)
    except ShareMountFailed as exc:  # ACI's event for a share it cannot mount
        group.view.event("FailedMountAzureFileVolume", scrub(exc.message, secrets_of(spec)),
                         warning=True)
        group.fail(f"volumes could not be prepared: {exc.message}")
    except SkiffError as exc:
        group.fail(f"volumes could not be prepared: {exc.message}")
    for name, ref in wanted.items():
        cached = images.cached(ref)
        if cached is not None:
            group.images[name] = cached
            group.checks[name] = pulls[ref]
        else:
            pulled(group, name, ref, pulls[ref])
    try:
        group.attachment = attaching.result()
        group.view.ip = group.attachment.ip
    except SkiffError as exc:
        group.fail(f"network could not be set up: {exc.message}")
    group.prepared = group.failed_reason is None


def network(networks: Networks, spec: GroupSpec) -> Attachment:
    """The group's network, filtered: only ``ip_ports`` reachable from outside
    the group (re-applied on every preparation, so adoption restores it), and
    the host guarded from the groups (once per supervisor). The node itself is
    no exception: HTTP probes run from inside the group's namespace."""
    attachment = networks.setup(spec.id, spec.name, spec.dns, spec.subnet)
    networks.protect(attachment, spec.ip_ports, spec.subnet)
    return attachment


def pulled(group: Group, name: str, ref: str, pull: concurrent.futures.Future[Image]) -> bool:
    """Take the result of a pull; False (and the group failed) if it failed."""
    view = group.view.container(name)
    assert view is not None
    try:
        image = pull.result()
    except ImageError as exc:
        message = scrub(exc.message, secrets_of(group.spec))  # a registry may echo one
        view.event("Failed", f'failed to pull image "{ref}": {message}', warning=True)
        view.current.detail_status = message
        group.fail(f"container {name}: {message}")
        return False
    group.images[name] = image
    if view.current.state == "Waiting":
        view.event("Pulled", f'image "{ref}" is present')
    return True
