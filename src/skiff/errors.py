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
     ├── InvalidInput                 the caller's input is malformed
     │    └── InvalidReference        an image reference Docker would refuse
     ├── ImageError                   anything about images
     │    ├── ImageNotFound           the registry has no such image     (final)
     │    ├── RegistryUnauthorized    credentials missing or refused     (final)
     │    ├── RegistryUnreachable     no answer within the timeout       (transient)
     │    ├── DigestMismatch          content does not match its digest  (transient)
     │    ├── UnsupportedImage        no manifest for this platform, unknown format (final)
     │    ├── LayerRejected           a layer that tries to escape its directory (final)
     │    ├── ImageUnknown            not in the local store
     │    └── ImageInUse              removal refused: a container uses it
     ├── RootfsError                  assembling or removing a container's rootfs failed
     └── RuntimeFailure               the OCI runtime or conmon failed
          └── ContainerCreateFailed   the runtime refused the container (e.g. command not found)

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


class InvalidInput(SkiffError):
    code = "InvalidRequestContent"


class InvalidReference(InvalidInput):
    code = "InvalidImageReference"


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
