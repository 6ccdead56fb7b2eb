"""Running containers: OCI runtimes (runc, gVisor's runsc) called under conmon,
k8s-file logs with rotation, gVisor sandboxes holding a group's containers,
and the cgroup knobs skiff sets itself."""
