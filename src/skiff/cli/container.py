"""``skiff container ...``: the ``az container`` commands, against skiff's API.

The commands, their flags and their output are az's, so that what people
know (and their scripts) carry over: ``create`` takes the same flags or an ACI
YAML file, ``-o json`` prints a group as az prints it (the Azure SDK's model,
flattened: camelCase attribute names, no ``properties`` wrapper,
``resourceGroup`` added), ``-o table`` is az's table of container groups, and
``--query`` is JMESPath applied before the output, as in az.

This module holds the command group and the commands that manage groups
(create, show, list, delete, start, stop, restart, export); the rest lives
beside it: the ARM body of ``create``'s flags and files in
:mod:`skiff.cli.bodies`, az's view of a group in :mod:`skiff.cli.views`, the
output formats in :mod:`skiff.cli.output`, the client, errors and shared
flags in :mod:`skiff.cli.common`, and the streaming commands (logs, exec,
attach) in :mod:`skiff.cli.streams`. The commands talk HTTP to the API
through :class:`skiff.client.SkiffClient`, never to the engine.

Failures print one line, ``ERROR: (Code) message``, on stderr and exit 1
(3 when the API answered 404, as az does); never a traceback. Secrets given
on the command line (secure environment variables, the registry password) are
never printed, not even inside an error message the server sent back.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import click

from skiff.cli.bodies import (
    SYSTEM_IDENTITY,
    azure_file_flags,
    body_from_file,
    check_network_flags,
    check_ports,
    gitrepo_flags,
    identity_body,
    parse_pairs,
    registry_server,
    secrets_flags,
)
from skiff.cli.common import (
    AzCommand,
    InvalidArgument,
    confirm_delete,
    handle_errors,
    keep_secret,
    new_client,
    rg_name,
    show_progress,
)
from skiff.cli.ngroups import ngroup
from skiff.cli.output import emit, output_options
from skiff.cli.profile import profile
from skiff.cli.streams import attach, exec_, logs
from skiff.cli.subnets import (
    DEFAULT_SUBNET_PREFIX,
    DEFAULT_VNET_PREFIX,
    ensure_subnet,
    subnet_ref,
)
from skiff.cli.views import az_view, group_table
from skiff.client import API_VERSION, SkiffClient
from skiff.documents import export_yaml, group_body, secrets_of


@click.group("container")
@click.pass_context
def container(ctx: click.Context) -> None:
    """Manage container groups, as `az container` does, through skiff's API.

    The API is SKIFF_URL (default https://127.0.0.1:8443), reached with the
    token SKIFF_TOKEN (default: the file admin.token of the data root
    SKIFF_DATA_ROOT, default /var/lib/skiff) and trusting the CA SKIFF_CA
    (default: ca.pem of the data root); SKIFF_SUBSCRIPTION names the subscription.
    """
    if ctx.obj is None:
        ctx.obj = SkiffClient.from_env


@container.command("create", cls=AzCommand)
@click.option("--resource-group", "-g", "resource_group", required=True,
              help="Name of resource group.")
@click.option("--name", "-n", help="The name of the container group.")
@click.option("--image", help="The container image name.")
@click.option("--file", "-f", "file", type=click.Path(dir_okay=False, path_type=Path),
              help="The path to the input file (an ACI YAML file); the other "
                   "container flags are then ignored.")
@click.option("--location", "-l",
              help="Location. Default: the resource group's location.")
@click.option("--cpu", type=float, default=1, show_default=True,
              help="The required number of CPU cores of the containers, accurate to one "
                   "decimal place.")
@click.option("--memory", type=float, default=1.5, show_default=True,
              help="The required memory of the containers in GB, accurate to one decimal place.")
@click.option("--ports", type=click.IntRange(1, 65535), multiple=True, metavar="PORT [PORT ...]",
              help="A list of ports to open. Space-separated list of ports.  Default: 80. "
                   "Opened on the group's IP address: without --ip-address, --dns-name-label "
                   "or --subnet there is none, and no port is opened (as in az).")
@click.option("--protocol", type=click.Choice(["TCP", "UDP"], case_sensitive=False),
              help="The network protocol to use.")
@click.option("--ip-address", type=click.Choice(["Public", "Private"], case_sensitive=False),
              help="The IP address type of the container group.")
@click.option("--dns-name-label",
              help="The dns name label for container group with public IP.")
@click.option("--restart-policy", default="Always", show_default=True,
              type=click.Choice(["Always", "Never", "OnFailure"], case_sensitive=False),
              help="Restart policy for all containers within the container group.")
@click.option("--command-line",
              help="The command line to run when the container is started, e.g. "
                   "'/bin/bash -c myscript.sh'.")
@click.option("--environment-variables", "-e", multiple=True, metavar="KEY=VALUE [KEY=VALUE ...]",
              help="A list of environment variable for the container. Space-separated values "
                   "in 'key=value' format.")
@click.option("--secure-environment-variables", multiple=True,
              metavar="KEY=VALUE [KEY=VALUE ...]",
              help="A list of secure environment variable for the container. Space-separated "
                   "values in 'key=value' format.")
@click.option("--registry-login-server", help="The container image registry login server.")
@click.option("--registry-username",
              help="The username to log in container image registry server.")
@click.option("--registry-password",
              help="The password to log in container image registry server (prompted for "
                   "when omitted on a terminal).")
@click.option("--isolation", type=click.Choice(["sandbox", "container"], case_sensitive=False),
              help="skiff: run the group in one gVisor sandbox (a user-space kernel between "
                   "it and the host) or as hardened runc containers. Default: the server's "
                   "(skiff serve --default-isolation).")
@click.option("--os-type", type=click.Choice(["Linux", "Windows"], case_sensitive=False),
              default="Linux", show_default=True, help="The OS type of the containers.")
@click.option("--priority", type=click.Choice(["Regular", "Spot"], case_sensitive=False),
              help="The priority of the container group. Spot: admitted on spare capacity "
                   "only, evicted when a Regular group needs its cores, started again once "
                   "capacity is spare; no IP address, Standard sku only, at most 4 CPU.")
@click.option("--sku", type=click.Choice(["Standard", "Dedicated", "Confidential"],
                                         case_sensitive=False),
              help="The SKU of the container group. Confidential needs a node with AMD "
                   "SEV-SNP.")
@click.option("--vnet",
              help="The name of the VNET when creating a new one or referencing an existing "
                   "one. Can also reference an existing vnet by ID.")
@click.option("--vnet-address-prefix", default=DEFAULT_VNET_PREFIX, show_default=True,
              metavar="PREFIX",
              help="The IP address prefix to use when creating a new VNET in CIDR format.")
@click.option("--subnet",
              help="The name of the subnet when creating a new VNET or referencing an "
                   "existing one. Can also reference an existing subnet by ID. The group "
                   "gets a private IP address in it (no --dns-name-label); a subnet that does "
                   "not exist is made, its VNET too.")
@click.option("--subnet-address-prefix", default=DEFAULT_SUBNET_PREFIX, show_default=True,
              metavar="PREFIX",
              help="The subnet IP address prefix to use when creating a new VNET in CIDR "
                   "format.")
@click.option("--azure-file-volume-share-name",
              help="The name of the Azure File share to be mounted as a volume.")
@click.option("--azure-file-volume-account-name",
              help="The name of the storage account that contains the Azure File share.")
@click.option("--azure-file-volume-account-key",
              help="The storage account access key used to access the Azure File share.")
@click.option("--azure-file-volume-mount-path",
              help="The path within the container where the azure file volume should be "
                   "mounted. Must not contain colon ':'.")
@click.option("--secrets", multiple=True, metavar="KEY=VALUE [KEY=VALUE ...]",
              help="Space-separated secrets in 'key=value' format: each a file named key "
                   "holding value, in a secret volume mounted at --secrets-mount-path "
                   "(needed with it).")
@click.option("--secrets-mount-path",
              help="The path within the container where the secrets volume should be "
                   "mounted. Must not contain colon ':'.")
@click.option("--gitrepo-url",
              help="The URL of a git repository to be mounted as a volume (cloned before "
                   "the containers start).")
@click.option("--gitrepo-dir",
              help="The target directory path in the git repository. Must not contain "
                   "'..'.")
@click.option("--gitrepo-revision",
              help="The commit hash for the specified revision.")
@click.option("--gitrepo-mount-path",
              help="The path within the container where the git repo volume should be "
                   "mounted. Must not contain colon ':'.")
@click.option("--assign-identity", "assign_identity", multiple=True, is_flag=False,
              flag_value=SYSTEM_IDENTITY, metavar="[ID ...]",
              help="Space-separated identities to assign: [system] for the group's own "
                   "(system-assigned) identity, or user-assigned identities' resource ids; "
                   "alone, the system identity.")
@click.option("--profile", "profile_ref",
              help="Make the group from a container group profile: its resource id, or "
                   "its name in the group's resource group (skiff container profile). The "
                   "container flags are then ignored.")
@click.option("--profile-revision", type=click.IntRange(min=1),
              help="The profile's revision to make the group from. Default: its current "
                   "one.")
@click.option("--no-wait", is_flag=True,
              help="Do not wait for the long-running operation to finish.")
@output_options
@handle_errors
def create(resource_group: str, name: str | None, image: str | None, file: Path | None,
           location: str | None, cpu: float, memory: float, ports: tuple[int, ...],
           protocol: str | None, ip_address: str | None, dns_name_label: str | None,
           restart_policy: str, command_line: str | None, environment_variables: tuple[str, ...],
           secure_environment_variables: tuple[str, ...], registry_login_server: str | None,
           registry_username: str | None, registry_password: str | None, isolation: str | None,
           os_type: str, priority: str | None, sku: str | None, vnet: str | None,
           vnet_address_prefix: str, subnet: str | None,
           subnet_address_prefix: str, azure_file_volume_share_name: str | None,
           azure_file_volume_account_name: str | None,
           azure_file_volume_account_key: str | None,
           azure_file_volume_mount_path: str | None, secrets: tuple[str, ...],
           secrets_mount_path: str | None, gitrepo_url: str | None, gitrepo_dir: str | None,
           gitrepo_revision: str | None, gitrepo_mount_path: str | None,
           assign_identity: tuple[str, ...],
           profile_ref: str | None, profile_revision: int | None, no_wait: bool, output: str,
           query: Any) -> None:
    """Create a container group.

    Waits until the group is deployed (a progress display on stderr) and prints
    it; exits 1 with the error if the deployment failed.

    \b
    Examples:
      skiff container create -g MyResourceGroup --name myapp --image myimage:latest --cpu 1 --memory 1
      skiff container create -g MyResourceGroup --name myapp --image nginx --ports 80 443 --dns-name-label contoso
      skiff container create -g MyResourceGroup --name myapp --image myimage:latest --command-line "/bin/sh -c '/path to/myscript.sh'"
      skiff container create -g MyResourceGroup --name myjob --image myimage:latest --priority Spot
      skiff container create -g MyResourceGroup --name myapp --image myimage:latest --environment-variables key1=value1 key2=value2
      skiff container create -g MyResourceGroup --name myapp --image nginx --vnet MyVnet --subnet MySubnet --ports 80
      skiff container create -g MyResourceGroup --name myapp -f containerGroup.yaml
      skiff container create -g MyResourceGroup --name myapp --profile web --profile-revision 2
      skiff container create -g MyResourceGroup --name myapp --image alpine --azure-file-volume-share-name myshare --azure-file-volume-account-name mystorageaccount --azure-file-volume-account-key KEY --azure-file-volume-mount-path /data
      skiff container create -g MyResourceGroup --name myapp --image alpine --secrets mysecret1=mystring1 mysecret2=mystring2 --secrets-mount-path /mnt/secrets
      skiff container create -g MyResourceGroup --name myapp --image alpine --gitrepo-url https://github.com/user/myrepo.git --gitrepo-dir ./dir1 --gitrepo-mount-path /src
      skiff container create -g MyResourceGroup --name myapp --image myimage:latest --assign-identity
      skiff container create -g MyResourceGroup --name myapp --image myimage:latest --assign-identity [system] /subscriptions/mySubscriptionId/resourceGroups/myRG/providers/Microsoft.ManagedIdentity/userAssignedIdentities/myID
    """  # noqa: E501
    keep_secret(registry_password, azure_file_volume_account_key,
                *(v.partition("=")[2] for v in secure_environment_variables),
                *(v.partition("=")[2] for v in secrets))
    body: dict[str, Any] = {}
    # The flags' body waits for the subnet's id, known once the client has found or made it.
    build: Callable[..., dict[str, Any]] | None = None
    if file is not None:
        if vnet or subnet:
            raise click.UsageError("--vnet and --subnet cannot be used with --file: give the "
                                   "subnet in the file's properties.subnetIds.")
        name, body = body_from_file(file, name)
        keep_secret(*secrets_of(body))
    elif profile_ref:
        if not name:
            raise click.UsageError("Missing option '--name' / '-n'.")
        body = {"properties": {"containerGroupProfile": {"id": profile_ref}}}
        if profile_revision is not None:
            body["properties"]["containerGroupProfile"]["revision"] = profile_revision
    else:
        if not name:
            raise click.UsageError("Missing option '--name' / '-n'.")
        if not image:
            raise click.UsageError("Missing option '--image' (or give a --file).")
        check_network_flags(vnet=vnet, subnet=subnet, ip_address=ip_address,
                             dns_name_label=dns_name_label)
        check_ports(ports, has_ip=bool(ip_address or dns_name_label or subnet))
        azure_file = azure_file_flags(share=azure_file_volume_share_name,
                                      account=azure_file_volume_account_name,
                                      key=azure_file_volume_account_key,
                                      mount_path=azure_file_volume_mount_path)
        secret_volume = secrets_flags(secrets, secrets_mount_path)
        if secret_volume is not None:
            keep_secret(*secret_volume[0].values())  # as sent (base64): never echoed either
        git_repo = gitrepo_flags(url=gitrepo_url, directory=gitrepo_dir,
                                 revision=gitrepo_revision, mount_path=gitrepo_mount_path)
        if (registry_username or registry_password) and not registry_login_server:
            registry_login_server = registry_server(image)
            if registry_login_server is None:
                raise InvalidArgument("Please specify --registry-login-server in order to use "
                                      "a custom image registry.")
        if registry_login_server:
            if not registry_username:
                raise InvalidArgument("Please specify --registry-username and "
                                      "--registry-password in order to use custom image "
                                      "registry.")
            if not registry_password:
                if not click.get_text_stream("stdin").isatty():
                    raise InvalidArgument("Please specify --registry-password in order to use "
                                          "custom image registry.")
                registry_password = click.prompt("Image registry password", hide_input=True)
                keep_secret(registry_password)
        build = partial(
            group_body, name=name, image=image, cpu=cpu, memory=memory, ports=ports or (80,),
            protocol=protocol, ip_address=ip_address, dns_name_label=dns_name_label,
            restart_policy=restart_policy, command_line=command_line,
            environment_variables=parse_pairs(environment_variables, "--environment-variables"),
            secure_environment_variables=parse_pairs(secure_environment_variables,
                                                "--secure-environment-variables"),
            registry_login_server=registry_login_server, registry_username=registry_username,
            registry_password=registry_password, os_type=os_type, isolation=isolation,
            azure_file=azure_file, priority=priority, sku=sku,
            secrets=None if secret_volume is None else secret_volume[0],
            secrets_mount_path=None if secret_volume is None else secret_volume[1],
            git_repo=git_repo)
    with new_client() as client:
        if profile_ref and "/" not in profile_ref:  # a name: the group's resource group's
            body["properties"]["containerGroupProfile"]["id"] = client.profile_url(
                resource_group, profile_ref)
        ref = None if build is None or not subnet else subnet_ref(
            subscription=client.subscription, resource_group=resource_group, vnet=vnet,
            subnet=subnet)
        location = location or body.get("location") or (  # a profile's group: its location
            None if profile_ref else client.resource_group_location(resource_group))
        if build is not None:
            subnet_id = None if ref is None else ensure_subnet(
                client, ref, location=location, vnet_prefix=vnet_address_prefix,
                subnet_prefix=subnet_address_prefix)
            body = build(subnet_id=subnet_id)
        if location:
            body["location"] = location
        if assign_identity:
            body["identity"] = identity_body(assign_identity)
        if no_wait:
            client.create_or_update(resource_group, name, body, wait=False)
            return
        with show_progress() as progress:
            group = client.create_or_update(resource_group, name, body, progress=progress)
    if output != "none":
        emit(az_view(group), output, query, table=group_table)


@container.command("show")
@rg_name
@output_options
@handle_errors
def show(resource_group: str, name: str, output: str, query: Any) -> None:
    """Get the details of a container group."""
    with new_client() as client:
        group = client.get(resource_group, name)
    emit(az_view(group), output, query, table=group_table)


@container.command("list")
@click.option("--resource-group", "-g", "resource_group",
              help="Name of resource group. Default: every group of the subscription.")
@output_options
@handle_errors
def list_(resource_group: str | None, output: str, query: Any) -> None:
    """List container groups."""
    with new_client() as client:
        groups = client.list(resource_group)
    emit([az_view(g) for g in groups], output, query, table=group_table)


@container.command("delete")
@rg_name
@click.option("--yes", "-y", is_flag=True, help="Do not prompt for confirmation.")
@click.option("--no-wait", is_flag=True,
              help="Do not wait for the long-running operation to finish.")
@output_options
@handle_errors
def delete(resource_group: str, name: str, yes: bool, no_wait: bool, output: str,
           query: Any) -> None:
    """Delete a container group."""
    confirm_delete(yes)
    with new_client() as client:
        if no_wait:
            deleted = client.delete(resource_group, name, wait=False)
        else:
            with show_progress() as progress:
                deleted = client.delete(resource_group, name, progress=progress)
    if deleted and output != "none":
        emit(az_view(deleted), output, query, table=group_table)


@container.command("start")
@rg_name
@click.option("--no-wait", is_flag=True,
              help="Do not wait for the long-running operation to finish.")
@handle_errors
def start(resource_group: str, name: str, no_wait: bool) -> None:
    """Starts all containers in a container group.

    Compute resources will be allocated and the containers started again.
    """
    with new_client() as client:
        if no_wait:
            client.start(resource_group, name, wait=False)
            return
        with show_progress() as progress:
            client.start(resource_group, name, progress=progress)


@container.command("stop")
@rg_name
@handle_errors
def stop(resource_group: str, name: str) -> None:
    """Stops all containers in a container group.

    Compute resources will be deallocated.
    """
    with new_client() as client:
        client.stop(resource_group, name)


@container.command("restart")
@rg_name
@click.option("--no-wait", is_flag=True,
              help="Do not wait for the long-running operation to finish.")
@handle_errors
def restart(resource_group: str, name: str, no_wait: bool) -> None:
    """Restarts all containers in a container group.

    Restarts all containers in a container group in place. If container image
    has updates, new image will be downloaded.
    """
    with new_client() as client:
        if no_wait:
            client.restart(resource_group, name, wait=False)
            return
        with show_progress() as progress:
            client.restart(resource_group, name, progress=progress)


@container.command("export")
@rg_name
@click.option("--file", "-f", "file", required=True,
              type=click.Path(dir_okay=False, writable=True, path_type=Path),
              help="The file path to export the container group.")
@handle_errors
def export(resource_group: str, name: str, file: Path) -> None:
    """Export a container group in yaml format.

    The file is an ACI YAML file for `create --file`, without the group's state.
    Secrets (secure environment variables, registry passwords, storage keys,
    secret volumes' contents) are not exported: the API never shows them. A
    comment at the top of the file lists where to put them back.
    """
    with new_client() as client:
        group = client.get(resource_group, name)
    text = export_yaml(group, API_VERSION)
    try:
        file.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise InvalidArgument(f"cannot write {file}: {exc.strerror or exc}") from exc


# The streaming commands live in skiff.cli.streams; they are this group's all the same.
container.add_command(logs)
container.add_command(exec_)
container.add_command(attach)
container.add_command(ngroup)
container.add_command(profile)
