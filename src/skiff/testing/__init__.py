"""Helpers for skiff's tests, benchmarks and demo: real components, set up small."""
