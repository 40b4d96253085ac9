"""Pre-flight checks of a real account and warehouse: ``kizen-sync check``, and the part a
run performs before its first write. Reads only.

- :mod:`.results`: :class:`Check` / :class:`CheckReport` and their stable JSON form;
- :mod:`.kizen`: reachability, TLS, credentials, objects, fields, options, tags, reads;
- :mod:`.warehouse`: connection, sources and columns, state tables and DDL rights;
- :mod:`.project`: all of them for one sync file (the command itself is in :mod:`kizen_sync.cli`).
"""

from kizen_sync.preflight.results import EXIT_OK, EXIT_PROBLEMS, Check, CheckReport, Status

__all__ = ["EXIT_OK", "EXIT_PROBLEMS", "Check", "CheckReport", "Status"]
