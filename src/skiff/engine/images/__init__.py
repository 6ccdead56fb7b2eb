"""The image engine: pull (skopeo), a content-addressed blob store, layers
unpacked once, overlayfs root filesystems, archive import and garbage
collection. :class:`ImageStore` is the whole public surface."""

from skiff.core.reference import Reference, parse
from skiff.engine.images.manifest import ImageConfig
from skiff.engine.images.registry import RegistryCredential
from skiff.engine.images.store import Image, ImageStore

__all__ = ["Image", "ImageConfig", "ImageStore", "Reference", "RegistryCredential", "parse"]
