"""The contract between the control plane and the engines that run groups.

What a control plane asks of an engine (:mod:`~skiff.core.spec`: a group in the
engine's terms), what it gets back (:mod:`~skiff.core.view`: what was observed)
and the checks both sides share (image references, capabilities, seccomp
profiles). Everything here is plain data and pure functions on the standard
library: ``import skiff.models`` or ``skiff --help`` pulls in no engine, no
store and no C extension through it (a test holds this).
"""
