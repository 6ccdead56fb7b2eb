"""The node engine: images, networks, runtimes and the group supervisor of one machine."""
