"""``skiff kube ...``: the Kubernetes backend's commands that need no cluster.

``skiff kube render`` prints, as YAML, the Kubernetes objects a container group becomes
(:mod:`skiff.kube.objects`), so an operator can review them before running skiff over a
cluster. The group is read as ``skiff container create --file`` reads it (an ACI YAML
file, or an ARM JSON body) and checked by the API's own rules, so a file the API would
refuse is refused here with the same ARM error. Nothing is sent anywhere.

The models and the mapping are imported inside the command, as node-local commands
import the engine: ``skiff --help`` loads neither.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from skiff.cli.bodies import body_from_file
from skiff.cli.common import InvalidArgument, handle_errors, keep_secret
from skiff.documents import secrets_of

if TYPE_CHECKING:
    from skiff.kube.objects import Obj

#: The subscription ``render`` names a namespace after when given none (a namespace's
#: name depends on it: skiff.kube.naming).
DEFAULT_SUBSCRIPTION = "00000000-0000-0000-0000-000000000000"


@click.group("kube")
def kube() -> None:
    """The Kubernetes backend: see what container groups become on a cluster.

    Each group becomes a Pod with its Secrets, ConfigMaps, a LoadBalancer Service for a
    public IP and a NetworkPolicy, in one namespace per subscription and resource group,
    all owned by one anchor ConfigMap. To run skiff's groups over a cluster: skiff serve
    --backend kubernetes.
    """


@kube.command("render")
@click.option("--file", "-f", "file", required=True,
              type=click.Path(dir_okay=False, path_type=Path),
              help="The container group: an ACI YAML file, or its ARM JSON body (as for "
                   "skiff container create --file).")
@click.option("--name", "-n", help="The group's name (default: the file's).")
@click.option("--namespace", help="The namespace to render into. Default: the one skiff "
                                  "makes for --subscription and --resource-group.")
@click.option("--resource-group", "-g", "resource_group", default="default",
              show_default=True, help="The resource group the namespace is named after.")
@click.option("--subscription", default=DEFAULT_SUBSCRIPTION, show_default=True,
              help="The subscription the namespace is named after.")
@click.option("--namespace-prefix", default="skiff", show_default=True,
              help="The prefix of the namespaces skiff makes.")
@click.option("--dns-zone", default=None,
              help="The zone of DNS name labels (<label>.<location>.<zone>), for "
                   "external-dns' annotation. Default: skiff's (skiff.internal).")
@click.option("--runtime-class", default="gvisor", show_default=True,
              help="The RuntimeClass of isolation Sandbox groups (the cluster's gVisor "
                   "one).")
@click.option("--git-image", default="docker.io/alpine/git", show_default=True,
              help="The image of the init containers that clone gitRepo volumes (pin a "
                   "tag or digest your cluster may pull).")
@click.option("--gpu-product", "gpu_products", multiple=True, metavar="LABEL",
              help="A value of the nvidia.com/gpu.product label (GPU Feature Discovery's) "
                   "that the cluster's GPU nodes carry, e.g. NVIDIA-H100-80GB-HBM3 "
                   "(repeatable): a GPU group's Pod is placed on the nodes whose label "
                   "is of its SKU, as skiff serve does from the cluster's nodes. Without "
                   "it, the Pod shows its GPU limit and toleration, no node affinity.")
@click.option("--show-secrets", is_flag=True,
              help="Print the Secrets' values (base64) instead of leaving them empty.")
@handle_errors
def render(file: Path, name: str | None, namespace: str | None, resource_group: str,
           subscription: str, namespace_prefix: str, dns_zone: str | None,
           runtime_class: str, git_image: str, gpu_products: tuple[str, ...],
           show_secrets: bool) -> None:
    """Print the Kubernetes objects a container group becomes, as YAML, without a cluster.

    The namespace comes first, then the group's anchor and the objects it owns (their
    owner references name the anchor's uid, which only a cluster gives: they are left
    out here). Secrets' values are printed empty unless --show-secrets.

    \b
    Examples:
      skiff kube render --file web.yaml
      skiff kube render --file web.yaml -g prod --subscription $SUB
      skiff kube render --file web.json --name web --namespace team-a
      skiff kube render --file train.yaml --gpu-product NVIDIA-H100-80GB-HBM3
    """
    import yaml  # type: ignore[import-untyped,unused-ignore]

    from skiff.kube import objects as kube_objects

    group_name, body = body_from_file(file, name)
    keep_secret(*secrets_of(body))
    found = group_objects(body, group_name, namespace=namespace,
                          resource_group=resource_group, subscription=subscription,
                          namespace_prefix=namespace_prefix, dns_zone=dns_zone,
                          runtime_class=runtime_class, git_image=git_image,
                          gpu_products=gpu_products or None)
    if not show_secrets:
        found = kube_objects.redacted(found)
    click.echo(f"# skiff kube render: container group {group_name!r}")
    for obj in found:
        click.echo("---\n" + yaml.safe_dump(obj, sort_keys=False), nl=False)


def group_objects(body: dict[str, Any], name: str, *, namespace: str | None = None,
                  resource_group: str = "default", subscription: str = DEFAULT_SUBSCRIPTION,
                  namespace_prefix: str = "skiff", dns_zone: str | None = None,
                  runtime_class: str = "gvisor",
                  git_image: str = "docker.io/alpine/git",
                  gpu_products: Sequence[str] | None = None) -> list[Obj]:
    """The namespace and every object of group ``name`` of ARM body ``body``, checked by
    the API's rules first (ArmError as the API answers); secrets included.
    ``gpu_products``: the ``nvidia.com/gpu.product`` values of the cluster's GPU nodes
    (None: not known, no node affinity)."""
    import uuid

    from skiff.core.reference import parse as parse_reference
    from skiff.core.spec import SubnetPlacement
    from skiff.kube import naming
    from skiff.kube import objects as kube_objects
    from skiff.models import parse_container_group, to_engine_spec
    from skiff.models.labels import fqdn, group_label
    from skiff.models.regions import Locations
    from skiff.models.rules import subnet_key
    from skiff.settings import ApiSettings, DnsSettings

    api, dns = ApiSettings(), DnsSettings()
    parse_reference(git_image)  # InvalidReference, as for a container's image
    if not naming.is_subdomain(runtime_class):
        raise InvalidArgument(f"--runtime-class {runtime_class[:80]!r} is not a RuntimeClass "
                              "name (a DNS-1123 subdomain)")
    parsed = parse_container_group(body, name=name, default_location=api.location,
                                   known_locations=Locations(api.location),
                                   allow_privileged=True)
    props = parsed.properties
    subnet = None
    key = subnet_key(props)
    if key is not None:
        subnet = SubnetPlacement(vnet=key.rsplit("/subnets/", 1)[0], subnet=key, prefix="")
    uid = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{subscription}/{resource_group}/{name}".lower()))
    spec = to_engine_spec(parsed, group_id=uid, name=name, subnet=subnet)
    label = group_label(parsed, tenant=dns.tenant, subscription=subscription,
                        resource_group=resource_group, group_uid=uid)
    if namespace is None:
        namespace = naming.namespace_name(subscription, resource_group, prefix=namespace_prefix)
        space = kube_objects.namespace_object(namespace, subscription=subscription,
                                              resource_group=resource_group)
    else:
        space = kube_objects.namespace_object(namespace)
    placement = kube_objects.Placement(
        namespace=namespace,
        public=props.ip_address is not None and props.ip_address.type == "Public",
        dns_name=None if label is None else fqdn(label, parsed.location,
                                                 dns_zone or dns.zone),
        sandbox_runtime_class=runtime_class, git_image=git_image,
        gpu_products=None if gpu_products is None else _by_sku(gpu_products))
    return [space, *kube_objects.group_objects(spec, placement)]


def _by_sku(products: Sequence[str]) -> dict[str, tuple[str, ...]]:
    """``--gpu-product`` values by the SKU each reads as (MIG and shared ones refused)."""
    from skiff.kube.gpus import product_sku

    found: dict[str, set[str]] = {}
    for product in products:
        sku = product_sku(product)
        if sku is None:
            raise InvalidArgument(f"--gpu-product {product[:80]!r} is a MIG slice or a "
                                  "time-sliced GPU, which skiff does not place groups on")
        found.setdefault(sku, set()).add(product)
    return {sku: tuple(sorted(values)) for sku, values in found.items()}
