"""The Kubernetes backend: container groups placed as Pods on a cluster the operator runs.

A second implementation of the :class:`~skiff.core.engine.Engine` protocol, built in
increments. What is here works without a cluster: the mapping of a group to Kubernetes
objects (:mod:`skiff.kube.objects`, named by :mod:`skiff.kube.naming`), printed by
``skiff kube render``, and the reading of Pods' status back as ACI's instance view
(:mod:`skiff.kube.status`). The engine that applies and watches them (``skiff serve
--backend kubernetes``, with the official ``kubernetes`` client imported only below this
package) is the next increment.

It imports :mod:`skiff.core` and nothing else of skiff's: what it is given is a
:class:`~skiff.core.spec.GroupSpec` and a :class:`~skiff.kube.objects.Placement`.
"""
