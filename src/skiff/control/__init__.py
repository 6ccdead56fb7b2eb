"""The control plane between the API and the engine: the reconcile loop."""
