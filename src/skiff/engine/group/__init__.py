"""A group's lifecycle on this node: the :class:`~skiff.engine.group.supervisor.Supervisor`
decides when (prepare, init containers in order, app containers, restarts with
backoff, probes, teardown); beside it the group's record and instance view on
disk, the checks of a definition, preparing images/network/volumes, the pure
restart tracker and the probes."""
