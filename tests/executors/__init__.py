"""Tests of the distributed executors (a package, so that its conftest does not clash
with tests/conftest.py)."""
