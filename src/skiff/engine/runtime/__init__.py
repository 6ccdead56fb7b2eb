"""Running containers: the runtime driver protocol the supervisor speaks
(:mod:`~skiff.engine.runtime.driver`), its runc and gVisor drivers
(:mod:`~skiff.engine.runtime.runc`, :mod:`~skiff.engine.runtime.gvisor`) picked by a
group's isolation (:mod:`~skiff.engine.runtime.registry`); beneath them, OCI runtimes
(runc, gVisor's runsc) called under conmon, k8s-file logs with rotation, gVisor
sandboxes holding a group's containers, and the cgroup knobs skiff sets itself."""
