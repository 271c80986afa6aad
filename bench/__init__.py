"""Benchmarks: each module prints a table. Run as `python -m bench.<name>`."""
