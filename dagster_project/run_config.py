"""Run configuration shown in the launchpad; each maps onto `kizen_sync.models.RunOptions`."""

import dagster as dg
from pydantic import Field

from kizen_sync.models import Partition, RunOptions

__all__ = ["BACKFILL_LEASE_WAIT_S", "BackfillRunConfig", "SyncRunConfig"]

#: A backfill launches its partitions as runs at the same time, while the warehouse lease lets
#: one run per sync write: each partition waits its turn (bounded) instead of failing.
BACKFILL_LEASE_WAIT_S = 1800.0


class SyncRunConfig(dg.Config):
    """Options of one incremental sync run (asset ``kizen/<sync>``)."""

    dry_run: bool = Field(
        default=False,
        description="Plan only: show what would be sent; nothing is sent, no state is written.",
    )
    full_refresh: bool = Field(
        default=False,
        description="Compare every mapped field of every row with Kizen's last confirmed "
        "values and re-send differences, instead of trusting the row fingerprints.",
    )
    max_records: int | None = Field(
        default=None, ge=1, description="Cap on records written this run; the rest wait."
    )
    only_failed: bool = Field(
        default=False,
        description="Re-send only the records whose last attempt failed, parked ones included "
        "(job <sync>_retry_failed).",
    )
    include_parked: bool = Field(
        default=False,
        description="Also re-send parked failures: records that failed before for a reason "
        "sending the same values cannot fix, and whose rows have not changed since.",
    )

    def options(self, run_id: str) -> RunOptions:
        """The library's options, with the Dagster run id as the audit run id."""
        return RunOptions(
            dry_run=self.dry_run,
            full_refresh=self.full_refresh,
            max_records=self.max_records,
            only_failed=self.only_failed,
            include_parked=self.include_parked,
            run_id=run_id,
        )


class BackfillRunConfig(dg.Config):
    """Options of a backfill run (asset ``kizen/<sync>_backfill``); always a full refresh."""

    dry_run: bool = Field(
        default=False, description="Plan only: nothing is sent, no state is written."
    )
    max_records: int | None = Field(
        default=None, ge=1, description="Cap on records written per partition; the rest wait."
    )
    lease_wait_s: float = Field(
        default=BACKFILL_LEASE_WAIT_S,
        ge=0,
        description="How long a partition waits for another run of the same sync (its sibling "
        "partitions run at the same time) before it stops; one run per sync holds the lease.",
    )

    def options(self, run_id: str, partition: Partition) -> RunOptions:
        """Full-refresh options for one partition, audit rows tagged with its key."""
        return RunOptions(
            dry_run=self.dry_run,
            full_refresh=True,
            max_records=self.max_records,
            partition=partition,
            run_id=run_id,
            lease_wait_s=self.lease_wait_s,
        )
