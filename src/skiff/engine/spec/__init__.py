"""Each container's OCI ``config.json``, built from small composable options
(as containerd's ``pkg/oci``): the base spec, security (capabilities, seccomp,
no-new-privileges, privileged), user namespaces, the image's user, and the
assembly of one container's spec from its group."""
