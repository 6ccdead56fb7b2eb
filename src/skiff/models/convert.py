"""From a validated ARM body to the engine's :class:`~skiff.core.spec.GroupSpec`.

The engine knows nothing of ARM's shapes; this is the one place that maps
them. The body has passed :mod:`skiff.models.rules` (or was stored after it
did), so nothing here validates again: it only translates, with ACI's
defaults where a field is absent.

Init containers have no ``resources`` in ACI. They run before the group's
containers start, so each is given the group's whole size (the sum of its
containers' requests), as a group's cgroup would allow anyway.
"""

from __future__ import annotations

from typing import Any

from skiff.core import spec as engine
from skiff.core.gpus import canonical as canonical_sku
from skiff.errors import InvalidInput, UnsupportedVolumeType
from skiff.models.body import (
    Container,
    ContainerGroupBody,
    ContainerProbe,
    EnvironmentVariable,
    InitContainer,
    SecurityContext,
    Volume,
    VolumeMount,
)
from skiff.models.profile import Lifetime
from skiff.models.rules import azure_file_field, decode_seccomp_profile, gpu_request


def to_engine_spec(body: ContainerGroupBody, *, group_id: str, name: str,
                   subnet: engine.SubnetPlacement | None = None) -> engine.GroupSpec:
    """The group as the engine runs it; ``group_id`` is the engine's id for it,
    ``subnet`` the virtual network subnet its ``subnetIds`` names (resolved by the
    caller, which has the store)."""
    props = body.properties
    group_size = engine.Resources(
        cpu=sum(c.properties.resources.requests.cpu for c in props.containers),
        memory_gb=sum(c.properties.resources.requests.memory_in_gb for c in props.containers),
    )
    dns = None
    if props.dns_config is not None:
        dns = engine.DnsConfig(
            name_servers=tuple(props.dns_config.name_servers),
            search_domains=tuple((props.dns_config.search_domains or "").split()),
            options=props.dns_config.options or "",
        )
    return engine.GroupSpec(
        id=group_id,
        name=name,
        containers=tuple(_container(c) for c in props.containers),
        init_containers=tuple(_init_container(c, group_size) for c in props.init_containers),
        volumes=tuple(_volume(v) for v in props.volumes),
        restart_policy=engine.RestartPolicy(props.restart_policy),
        credentials=tuple(
            engine.RegistryCredentialSpec(server=c.server, username=c.username,
                                          password=c.password)
            for c in props.image_registry_credentials
        ),
        dns=dns,
        ip_ports=tuple(engine.Port(port=q.port, protocol=q.protocol)
                       for q in (props.ip_address.ports if props.ip_address else [])),
        subnet=subnet,
        isolation=(props.isolation or "Container").lower(),
        stop_grace_s=_grace(props.model_extra or {}),
    )


def _grace(extra: dict[str, Any]) -> float | None:
    """A group made from a profile stops its containers with the profile's
    ``shutdownGracePeriod`` (a group's own is an unknown property, as in ACI)."""
    if extra.get("containerGroupProfile") is None:
        return None
    return Lifetime.of(extra).grace_s


def _container(container: Container) -> engine.Container:
    p = container.properties
    requests, limits = p.resources.requests, p.resources.limits
    gpu = gpu_request(requests.gpu)
    return engine.Container(
        name=container.name,
        image=p.image,
        command=tuple(p.command) if p.command else None,
        env=_env(p.environment_variables),
        resources=engine.Resources(
            cpu=requests.cpu,
            memory_gb=requests.memory_in_gb,
            cpu_limit=limits.cpu if limits is not None else None,
            memory_limit_gb=limits.memory_in_gb if limits is not None else None,
            gpu_count=gpu[0] if gpu is not None else 0,
            gpu_sku=canonical_sku(gpu[1]) if gpu is not None else "",
        ),
        ports=tuple(engine.Port(port=q.port, protocol=q.protocol) for q in p.ports or []),
        volume_mounts=_mounts(p.volume_mounts),
        liveness=_probe(p.liveness_probe),
        readiness=_probe(p.readiness_probe),
        security=_security(p.security_context),
        config_map=(None if p.config_map is None
                    else tuple(sorted((p.config_map.key_value_pairs or {}).items()))),
    )


def _init_container(container: InitContainer, size: engine.Resources) -> engine.Container:
    p = container.properties
    return engine.Container(
        name=container.name,
        image=p.image,
        command=tuple(p.command) if p.command else None,
        env=_env(p.environment_variables),
        resources=size,
        volume_mounts=_mounts(p.volume_mounts),
        security=_security(p.security_context),
    )


def _security(context: SecurityContext | None) -> engine.SecurityContext:
    if context is None:
        return engine.SecurityContext()
    caps = context.capabilities
    profile = None
    if context.seccomp_profile is not None:
        profile = decode_seccomp_profile(context.seccomp_profile)
        if profile is None:  # the rules refuse it; only a stored body from elsewhere
            raise InvalidInput("the seccompProfile is not base64 of a JSON object")
    return engine.SecurityContext(
        privileged=bool(context.privileged),
        allow_privilege_escalation=context.allow_privilege_escalation,
        cap_add=tuple(caps.add or ()) if caps else (),
        cap_drop=tuple(caps.drop or ()) if caps else (),
        run_as_user=context.run_as_user,
        run_as_group=context.run_as_group,
        seccomp_profile=profile,
    )


def _env(env: list[EnvironmentVariable] | None) -> tuple[engine.EnvVar, ...]:
    return tuple(
        engine.EnvVar(name=v.name, value=v.secure_value, secure=True)
        if v.secure_value is not None
        else engine.EnvVar(name=v.name, value=v.value or "")
        for v in env or []
    )


def _mounts(mounts: list[VolumeMount] | None) -> tuple[engine.VolumeMount, ...]:
    return tuple(
        engine.VolumeMount(name=m.name, mount_path=m.mount_path, read_only=bool(m.read_only))
        for m in mounts or []
    )


def _probe(probe: ContainerProbe | None) -> engine.Probe | None:
    if probe is None:
        return None
    action: engine.ExecAction | engine.HttpGetAction
    if probe.exec_ is not None:
        action = engine.ExecAction(command=tuple(probe.exec_.command or ()))
    else:
        assert probe.http_get is not None  # the rules require exactly one of the two
        get = probe.http_get
        path = get.path or "/"
        action = engine.HttpGetAction(
            port=get.port,
            path=path if path.startswith("/") else f"/{path}",
            scheme=get.scheme or "http",
            headers=tuple((h.name or "", h.value or "") for h in get.http_headers or []),
        )
    # ACI's (and Kubernetes') defaults where a number is absent.
    defaults = engine.Probe(action=action)
    return engine.Probe(
        action=action,
        initial_delay_s=_or(probe.initial_delay_seconds, defaults.initial_delay_s),
        period_s=_or(probe.period_seconds, defaults.period_s),
        timeout_s=_or(probe.timeout_seconds, defaults.timeout_s),
        failure_threshold=int(_or(probe.failure_threshold, defaults.failure_threshold)),
        success_threshold=int(_or(probe.success_threshold, defaults.success_threshold)),
    )


def _or(value: int | None, default: float) -> float:
    return default if value is None else value


def _volume(volume: Volume) -> engine.Volume:
    source: (engine.EmptyDirVolume | engine.SecretVolume | engine.GitRepoVolume
             | engine.AzureFileVolume)
    if volume.azure_file is not None:
        def field(name: str) -> Any:
            return azure_file_field(volume.azure_file or {}, name)

        source = engine.AzureFileVolume(account=str(field("storageAccountName") or ""),
                                        share=str(field("shareName") or ""),
                                        key=str(field("storageAccountKey") or ""),
                                        read_only=field("readOnly") is True)
    elif volume.secret is not None:
        source = engine.SecretVolume(files=tuple(sorted(volume.secret.items())))
    elif volume.git_repo is not None:
        repo = volume.git_repo
        source = engine.GitRepoVolume(repository=repo.repository, directory=repo.directory,
                                      revision=repo.revision)
    elif volume.empty_dir is not None:
        source = engine.EmptyDirVolume()
    else:  # none: refused by the rules, so only a stored body from elsewhere
        raise UnsupportedVolumeType(f"volume {volume.name!r} has no source")
    return engine.Volume(name=volume.name, source=source)
