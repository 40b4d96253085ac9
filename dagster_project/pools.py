"""The Dagster pool of the steps that write to Kizen: one pool per Kizen business.

Kizen's rate limits are per account, so every step that writes to one business takes a slot
in that business's pool, whichever run, sync or backfill it belongs to, while syncs to other
businesses (an agency's clients, staging and production) run beside it. The pool is
``kizen_api/<business id>``, or the sync file's ``kizen.pool`` when several files (or several
deployments) must share one name. Its limit is set on the instance:
``dagster instance concurrency set kizen_api/<business id> 1`` (or ``pools.default_limit``
in ``deploy/dagster.yaml``).
"""

from kizen_sync.config import KizenConfig

__all__ = ["KIZEN_POOL_PREFIX", "kizen_pool"]

KIZEN_POOL_PREFIX = "kizen_api"


def kizen_pool(kizen: KizenConfig) -> str:
    """``kizen.pool``, else ``kizen_api/<business id>``.

    The business id is the file's, else ``$KIZEN_BUSINESS_ID`` as the code location sees it;
    without either (a file whose runs would fail for want of a business anyway) the pool is
    plain ``kizen_api``.
    """
    if kizen.pool:
        return kizen.pool
    business = kizen.resolved_business_id()
    return f"{KIZEN_POOL_PREFIX}/{business.lower()}" if business else KIZEN_POOL_PREFIX
