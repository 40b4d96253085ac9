"""Where the code location finds its sync file, and the one knob the file does not hold yet.

The sync file is named by ``KIZEN_SYNC_CONFIG``. Without it the embedded demo is used:
``.demo/syncs.yaml``, which ``kizen-sync demo --workdir .demo`` writes next to a seeded SQLite
warehouse. A missing file is a load error shown in the Dagster UI with the command to run,
rather than an empty code location that leaves people guessing.
"""

import os
from pathlib import Path

import dagster as dg

from kizen_sync.errors import ConfigError, ConfigProblem

__all__ = [
    "BACKFILL_POLICIES",
    "BACKFILL_POLICY_ENV",
    "DEFAULT_SYNC_FILE",
    "SYNC_FILE_ENV",
    "backfill_policy_from_env",
    "sync_file_path",
]

SYNC_FILE_ENV = "KIZEN_SYNC_CONFIG"
#: Relative to the code location's working directory (the repository root in workspace.yaml).
DEFAULT_SYNC_FILE = Path(".demo/syncs.yaml")
#: ``multi_run`` (default: one run per partition) or ``single_run`` (one run for a backfill).
BACKFILL_POLICY_ENV = "KIZEN_SYNC_BACKFILL_POLICY"

BACKFILL_POLICIES: dict[str, dg.BackfillPolicy | None] = {
    # One partition per run: a failed slice is retried alone and never holds up the others,
    # which suits a rate-limited API best. None *is* Dagster's multi_run(1); spelling it out
    # would only add Dagster's beta warning for the `backfill_policy` parameter.
    "multi_run": None,
    # One run for the whole range: fewer runs to watch when many small partitions are re-synced.
    "single_run": dg.BackfillPolicy.single_run(),
}


def sync_file_path() -> Path:
    """The sync file to load: ``$KIZEN_SYNC_CONFIG`` or the demo's ``.demo/syncs.yaml``.

    Raises:
        ConfigError: the file does not exist, saying how to create or name one.
    """
    named = os.environ.get(SYNC_FILE_ENV)
    path = Path(named) if named else DEFAULT_SYNC_FILE
    if path.is_file():
        return path
    if named:
        problem = f"{SYNC_FILE_ENV} names {path}, which is not a file"
    else:
        problem = (
            f"{SYNC_FILE_ENV} is not set and the demo sync file {path} does not exist; "
            "create it with `kizen-sync demo --workdir .demo`"
        )
    raise ConfigError(
        [ConfigProblem(SYNC_FILE_ENV, f"{problem} (or set {SYNC_FILE_ENV} to your sync file)")]
    )


def backfill_policy_from_env() -> dg.BackfillPolicy | None:
    """The backfill policy named by ``$KIZEN_SYNC_BACKFILL_POLICY`` (default ``multi_run``).

    ``None`` stands for Dagster's default, one partition per run.

    Raises:
        ConfigError: an unknown policy name, listing the known ones.
    """
    name = os.environ.get(BACKFILL_POLICY_ENV, "multi_run")
    if name not in BACKFILL_POLICIES:
        known = ", ".join(BACKFILL_POLICIES)
        raise ConfigError(
            [ConfigProblem(BACKFILL_POLICY_ENV, f"unknown policy {name!r} (use one of: {known})")]
        )
    return BACKFILL_POLICIES[name]
