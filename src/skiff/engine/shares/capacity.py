"""How many GiB of quota the node may promise: the overcommit arithmetic.

The shares' images are sparse: a share of 5120 GiB that holds 1 MiB takes
≈ 440 MiB of the host's disk (its journal and bitmaps get their host blocks at
once: see :mod:`skiff.engine.shares`). What the node can
still give the shares is the data root's free disk plus what the shares'
images already take (their own bytes count as theirs); the sum of the quotas
may reach that times the overcommit, no more.
"""

from __future__ import annotations

from dataclasses import dataclass

from skiff.errors import NodeStorageFull

GIB = 1 << 30


@dataclass(frozen=True)
class Capacity:
    """What the data root's disk holds for the shares, in bytes."""

    #: Bytes free on the data root's filesystem (for an unprivileged writer).
    free_bytes: int
    #: Bytes the shares' images take on it (allocated blocks, not their sizes).
    shares_bytes: int
    overcommit: float

    @property
    def limit_gib(self) -> int:
        """The most GiB of quota all shares together may have."""
        return int((self.free_bytes + self.shares_bytes) * self.overcommit // GIB)

    def check(self, promised_gib: int, wanted_gib: int) -> None:
        """NodeStorageFull unless ``wanted_gib`` more GiB fit beside ``promised_gib``."""
        if promised_gib + wanted_gib > self.limit_gib:
            # Naming only the request: what is left would tell a tenant what others hold.
            raise NodeStorageFull(
                f"the node's storage cannot hold {wanted_gib} GiB more of share quota; "
                "ask for a smaller quota")
