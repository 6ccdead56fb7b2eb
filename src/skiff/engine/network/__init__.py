"""Group networks: one network namespace per group from a warm pool of CNI
slots (moved only by ``rename(2)``, so a crash loses none), virtual network
subnets on bridges of their own, per-group port filters and the host guard in
nftables, and each group's hosts and resolv.conf."""
