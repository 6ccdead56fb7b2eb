"""The ``skiff`` command line."""
