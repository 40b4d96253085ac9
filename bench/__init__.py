"""Benchmarks of kizen-sync: ``python -m bench`` (see bench/README.md)."""
