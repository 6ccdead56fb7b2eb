"""One error hierarchy for all of skiff.

Every failure a caller can act on is a :class:`SkiffError`. Errors of lower
libraries and programs (``subprocess``, ``OSError``, ``json``, skopeo's
messages) are mapped at the boundary where they happen, with
``raise SomeSkiffError(...) from exc``, so nothing above the engine has to know
which program failed. The control plane turns each class into an ARM error
body through its ``code``; the supervisor decides whether to retry through
``transient``.

The tree::

    SkiffError
     ├── ArmError                     an API error with its HTTP status and ARM code
     ├── InvalidInput                 the caller's input is malformed
     │    ├── InvalidReference        an image reference Docker would refuse
     │    ├── InvalidGroupSpec        a group definition that cannot run
     │    └── InvalidVolume           a volume refused before touching the disk
     │         (UnsupportedVolumeType, InvalidSecretVolume, InvalidGitRepoVolume)
     ├── ImageError                   anything about images
     │    ├── ImageNotFound           the registry has no such image     (final)
     │    ├── RegistryUnauthorized    credentials missing or refused     (final)
     │    ├── RegistryUnreachable     no answer within the timeout       (transient)
     │    ├── DigestMismatch          content does not match its digest  (transient)
     │    ├── UnsupportedImage        no manifest for this platform, unknown format (final)
     │    ├── LayerRejected           a layer that tries to escape its directory (final)
     │    ├── ImageUnknown            not in the local store
     │    └── ImageInUse              removal refused: a container uses it
     ├── GroupNotFound                no such container group (or container) on this node
     ├── NetworkError                 a group's network could not be made or removed
     │    ├── CniError                a CNI plugin refused (code 11: try again)
     │    └── NetworkConflict         the subnet overlaps a route of the host
     ├── VolumeError                  preparing or removing a volume failed
     │    └── GitRepoVolumeFailed     clone or checkout failed
     │         └── GitRepoUnreachable the repository's server did not answer (transient)
     ├── UserNotFound                 the image's user or group is unknown to the image
     ├── ShareError                   anything about file shares and their accounts
     │    ├── StorageAccountNotFound  no such storage account on this node
     │    ├── ShareNotFound           no such share in the account
     │    ├── ShareAlreadyExists      a share of that name is already in the account
     │    ├── ShareInUse              removal refused: a group mounts it (named)
     │    ├── ShareQuotaTooSmall      a quota below what the share already holds
     │    ├── NodeStorageFull         the node cannot promise that much more disk
     │    └── ShareMountFailed        a group's azureFile volume cannot be mounted
     │                                (wrong key, no such account or share): a VolumeError too
     ├── SeccompProfileError          the seccomp profile is missing or malformed
     ├── RootfsError                  assembling or removing a container's rootfs failed
     ├── RuntimeFailure               the OCI runtime or conmon failed
     │    └── ContainerCreateFailed   the runtime refused the container (e.g. command not found)
     ├── NodeBusy                     a node reset refused: the server or groups still run
     └── ClusterError                 the Kubernetes API server refused or did not answer
                                      (the kubernetes backend; 5xx and no answer: transient)

Messages never contain secrets: registry passwords travel in memory-backed
files only and are never formatted into any text.
"""

from __future__ import annotations


class SkiffError(Exception):
    """The root of skiff's errors."""

    #: ARM-style error code, used by the API's error bodies.
    code: str = "InternalError"
    #: Whether trying the same thing again later may succeed.
    transient: bool = False

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ArmError(SkiffError):
    """An error the API answers as is: ``{"error": {"code", "message", "target"}}``
    with ``status``. Validation rules raise it with ACI's own codes."""

    def __init__(self, status: int, code: str, message: str, target: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.target = target


class InvalidInput(SkiffError):
    code = "InvalidRequestContent"


class InvalidReference(InvalidInput):
    code = "InvalidImageReference"


class InvalidGroupSpec(InvalidInput):
    code = "InvalidContainerGroup"


class GroupNotFound(SkiffError):
    code = "ResourceNotFound"


class ImageError(SkiffError):
    code = "InaccessibleImage"


class ImageNotFound(ImageError):
    code = "InaccessibleImage"


class RegistryUnauthorized(ImageError):
    code = "InaccessibleImage"


class RegistryUnreachable(ImageError):
    code = "RegistryUnreachable"
    transient = True


class DigestMismatch(ImageError):
    code = "ImageDigestMismatch"
    transient = True


class UnsupportedImage(ImageError):
    code = "UnsupportedImage"


class LayerRejected(ImageError):
    code = "UnsafeImageLayer"


class ImageUnknown(ImageError):
    code = "ImageNotFound"


class ImageInUse(ImageError):
    code = "ImageInUse"


class RootfsError(SkiffError):
    code = "RootfsError"


class RuntimeFailure(SkiffError):
    code = "ContainerRuntimeFailed"
    transient = True


class ContainerCreateFailed(RuntimeFailure):
    code = "ContainerCreateFailed"
    transient = False


class NetworkError(SkiffError):
    """A group's network could not be made, checked or removed."""

    code = "NetworkSetupFailed"


class CniError(NetworkError):
    """A CNI plugin refused a command; ``cni_code`` is its error code (11: try again)."""

    code = "NetworkSetupFailed"

    def __init__(self, message: str, *, plugin: str, command: str, cni_code: int) -> None:
        super().__init__(message)
        self.plugin, self.command, self.cni_code = plugin, command, cni_code
        self.transient = cni_code == 11


class NetworkConflict(NetworkError):
    """The subnet overlaps a route of the host: groups could not be reached."""

    code = "NetworkConflict"


class InvalidVolume(InvalidInput):
    """A volume the engine refuses before touching the disk."""

    code = "InvalidVolume"


class UnsupportedVolumeType(InvalidVolume):
    code = "UnsupportedVolumeType"


class InvalidSecretVolume(InvalidVolume):
    code = "InvalidSecretVolume"


class InvalidGitRepoVolume(InvalidVolume):
    code = "InvalidGitRepoVolume"


class VolumeError(SkiffError):
    """Preparing or removing a volume on the host failed."""

    code = "VolumeSetupFailed"


class GitRepoVolumeFailed(VolumeError):
    """The clone or checkout failed: no such repository or revision."""

    code = "GitRepoVolumeFailed"


class GitRepoUnreachable(GitRepoVolumeFailed):
    """The repository's server did not answer (in time): worth another try later."""

    transient = True


class UserNotFound(SkiffError):
    """The image's user or group is neither numeric nor named in its /etc/passwd, /etc/group."""

    code = "ContainerUserNotFound"


class SeccompProfileError(SkiffError):
    """The seccomp profile is missing or not a profile: the node is misconfigured."""

    code = "SeccompProfileError"


class NodeBusy(SkiffError):
    """The node is in use: ``skiff node reset`` refused (its server or groups run), or
    ``skiff serve`` refused while a reset is under way."""

    code = "NodeBusy"


class ShareError(SkiffError):
    """Anything about file shares (Azure Files) and their storage accounts."""

    code = "ShareError"


class StorageAccountNotFound(ShareError):
    code = "StorageAccountNotFound"


class ShareNotFound(ShareError):
    code = "ShareNotFound"


class ShareAlreadyExists(ShareError):
    code = "ShareAlreadyExists"


class ShareInUse(ShareError):
    """A share (or an account with shares) that a container group mounts cannot go;
    ``groups`` names the groups (the caller's own only: see the API layer)."""

    code = "ShareInUse"

    def __init__(self, message: str, *, groups: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.groups = groups


class ShareQuotaTooSmall(ShareError):
    """A quota below the bytes the share already holds (Azure refuses it too)."""

    code = "InvalidShareQuota"


class NodeStorageFull(ShareError):
    """The sum of the shares' quotas would pass the node's disk times its overcommit."""

    code = "InsufficientStorageCapacity"


class ShareMountFailed(VolumeError, ShareError):
    """A group's azureFile volume names an account, share or key that does not hold:
    the group fails with a ``FailedMountAzureFileVolume`` event, as ACI's does."""

    code = "FailedMountAzureFileVolume"


class ClusterError(SkiffError):
    """The Kubernetes API server (``skiff serve --backend kubernetes``) refused a request
    or did not answer; ``status`` is its HTTP status (0: no answer). The client's own
    exceptions never leave :mod:`skiff.kube`."""

    code = "ClusterError"

    def __init__(self, message: str, *, status: int = 0) -> None:
        super().__init__(message)
        self.status = status
        self.transient = status == 0 or status >= 500 or status == 429
