"""Measurements run inside :mod:`bench.worker` processes."""
