"""What this node's hardware offers groups beyond CPUs and memory.

AMD SEV-SNP (ACI's ``Confidential`` sku runs each group in a utility VM whose memory
the hardware encrypts and attests) is there when the host's KVM can launch SNP guests:
the AMD Secure Processor's device ``/dev/sev`` exists (the ``ccp`` driver found the
firmware) and the ``kvm_amd`` module has SNP on (``/sys/module/kvm_amd/parameters/sev_snp``
reads ``Y`` or ``1``). ``/dev/sev-guest`` is the other side (inside such a guest) and says
nothing of the host. Hardware does not change while skiff runs: the answer is kept.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

#: Where the answers are read; a test points them elsewhere.
SEV_DEVICE = Path("/dev/sev")
SNP_PARAMETER = Path("/sys/module/kvm_amd/parameters/sev_snp")


def _sev_snp_host(device: Path, parameter: Path) -> bool:
    try:
        enabled = parameter.read_text().strip() in ("Y", "y", "1")
    except OSError:  # no kvm_amd (an Intel host, no KVM): no SNP
        return False
    return enabled and device.exists()


@cache
def sev_snp_host() -> bool:
    """Whether this host can launch AMD SEV-SNP guests (read once)."""
    return _sev_snp_host(SEV_DEVICE, SNP_PARAMETER)
