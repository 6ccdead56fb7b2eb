"""The Kubernetes backend: container groups placed as Pods on a cluster the operator runs.

A second implementation of the :class:`~skiff.core.engine.Engine` protocol,
:class:`skiff.kube.engine.KubeEngine` (``skiff serve --backend kubernetes``): the mapping of
a group to Kubernetes objects (:mod:`skiff.kube.objects`, named by :mod:`skiff.kube.naming`,
printed by ``skiff kube render``), the reading of Pods' status back as ACI's instance view
(:mod:`skiff.kube.status`), and the official ``kubernetes`` client behind
:mod:`skiff.kube.cluster`, imported only when an engine is made.

It imports :mod:`skiff.core` and :mod:`skiff.errors`, nothing else of skiff's: what it is
given is a :class:`~skiff.core.spec.GroupSpec` and where the group goes (a
:class:`~skiff.kube.objects.Placement`, from the control plane's
:class:`~skiff.kube.engine.Where`).
"""
