"""Helpers for skiff's tests, benchmarks and demo: real components set up small, a fake
API for the CLI, shared test documents, and the one waiting loop."""
