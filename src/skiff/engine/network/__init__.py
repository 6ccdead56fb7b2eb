"""Group networks: one network namespace per group from a warm pool of CNI
slots (moved only by ``rename(2)``, so a crash loses none), virtual network
subnets on bridges of their own, per-group port filters and the host guard in
nftables, and each group's hosts and resolv.conf.

The entry point is :class:`~skiff.engine.network.networks.Networks`, a facade
over the parts, one concern each:

- ``addressing``: names from the data root's hash, the public subnet, CNI
  configurations, gateways;
- ``slots``: the on-disk layout (pool/, pools/, work/, groups/), making and
  destroying one slot;
- ``pool``: the warm pools (the public network's, a subnet's pool of one) and
  their refill threads;
- ``teardown``: retiring slots through work/, in the background for deleted
  groups, and the reaper of what a crash left;
- ``groups``: a group's directory, files and :class:`Attachment`;
- ``vnets``: host guards, virtual network isolation and removal.

Below them: ``cni`` (the plugins' protocol, slot records), ``netns``
(namespaces), ``resolv`` (hosts and resolv.conf), ``subnets`` (virtual network
bridges and nftables isolation), ``firewall`` (per-group filters, host guard).
"""
