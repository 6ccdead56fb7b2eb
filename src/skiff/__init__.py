"""skiff: a self-hosted Azure Container Instances."""

__version__ = "0.1.0"
