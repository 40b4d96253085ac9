"""Benchmarks of kizen-sync (run each module with ``python -m bench.<name>``)."""
