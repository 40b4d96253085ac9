"""What the tests and the benchmarks share: worlds to run syncs in, and judges from outside.

The tests import it (``tests/reliability``, the conftest fixtures) and so does ``bench/``
(``python -m bench.reliability`` runs the same fault runs, kill loop and bad-input catalogue at
full size); nothing here imports ``bench``. One module per job:

- :mod:`.postgres`: PostgreSQL databases and schemas a test run owns, and the sweep of the
  ones a killed run left behind;
- :mod:`.journal`: the emulator served over HTTP with a journal of every record write;
- :mod:`.people`: the generated contacts source table and its seeded changes;
- :mod:`.verdict`: Kizen (the emulator's own state) compared with the warehouse, and the
  audit table's one-terminal-outcome rule;
- :mod:`.faults`: seeded fault runs; :mod:`.crash_loop` and :mod:`.crash_analysis`: the
  ``kill -9`` loop and what each kill cost;
- :mod:`.overlap`: two CLI processes of one sync at once, gated at chosen moments;
- :mod:`.bad_input`: the bad-input catalogue.
"""
