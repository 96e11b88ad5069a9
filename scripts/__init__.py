"""Operational scripts (the local runner used by `make run` and the end-to-end tests)."""
