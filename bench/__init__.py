"""Kindling benchmark harness.

Run from the repository root with ``python -m bench`` (see ``bench/README.md``).
Every figure is a ratio against a bare-Flask baseline measured in the same run.
"""
