"""Bad input: one catalogue of the ways a source, a sync file or Kizen can be wrong.

Each :class:`~tests.support.bad_input.lab.BadInput` names a class of bad input, what the user
should see, and a check that builds the situation against the in-process emulator and a SQLite
warehouse, runs the sync, and asserts both what the user sees (the message names the offending
key, row or field) and that nothing already synced is lost. Three kinds of expected result:

- ``error before any write``: the run stops with one error and the emulator saw no write
  (:mod:`.stops`);
- ``record fails``: that row fails with a readable message in the run report, the audit table
  and ``open_failures``; the other rows of the same run are written; the record keeps what it
  had in Kizen (:mod:`.values`, :mod:`.kizen`);
- ``synced``: the input is valid though unusual and must arrive exactly.

The checks assert with ``pytest.raises``, so running them needs the ``dev`` extra.
"""

from __future__ import annotations

from tests.support.bad_input.catalogue import CATALOGUE
from tests.support.bad_input.lab import ERROR, FAILS, SYNCED, BadInput, run_case

__all__ = ["CATALOGUE", "ERROR", "FAILS", "SYNCED", "BadInput", "run_case"]
