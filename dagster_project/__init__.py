"""Dagster wiring over :mod:`kizen_sync`: assets, checks, jobs, schedules and a sensor per sync.

Everything here is built from the same sync file as the ``kizen-sync`` CLI; the library does
the work and never imports Dagster. The code location is :mod:`dagster_project.definitions`.
"""
