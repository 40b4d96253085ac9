"""The README's "Beyond one machine", for real: Celery workers on RabbitMQ with a Redis result
backend, a PostgreSQL instance (``deploy/dagster.yaml``), the daemon, one pool per business.

The tests share one deployment (starting it is most of their cost) and run in file order.
Kizen's side is always read back from the emulators, never from the connector's report, and
concurrency is judged from the requests Kizen received (see ``gate.py``), never from timings.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import dagster as dg
import pytest
from cluster import WORKER_HOST, Business, Cluster, celery_cluster, listening

pytestmark = [pytest.mark.postgres, pytest.mark.celery, pytest.mark.timeout(1500)]

CONTACTS = "SELECT email, first_name FROM crm_contacts ORDER BY email"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    for port, service in ((5672, "RabbitMQ"), (6379, "Redis"), (5432, "PostgreSQL")):
        if not listening(port):
            pytest.fail(f"{service} is not answering on 127.0.0.1:{port} (make test starts it)")
    with celery_cluster(tmp_path_factory.mktemp("celery")) as running:
        yield running


def kizen_contacts(business: Business) -> list[dict[str, str]]:
    """What Kizen holds, as the emulator stores it (live records only)."""
    return sorted(
        ({"email": r["email"], "first_name": r["first_name"]} for r in _records(business)),
        key=lambda r: r["email"],
    )


def _records(business: Business) -> list[dict[str, str]]:
    out = []
    for record in business.emulator.records("client_client"):
        values = {f["name"]: f.get("value") for f in record["fields"].values()}
        out.append({"email": values.get("email"), "first_name": values.get("first_name")})
    return out


def assert_kizen_equals_source(business: Business) -> None:
    emails = Counter(r["email"] for r in _records(business))
    assert [e for e, n in emails.items() if n > 1] == []  # no duplicate record
    assert kizen_contacts(business) == business.rows(CONTACTS)


def assert_ran_on_workers(cluster: Cluster, run_id: str, steps: set[str]) -> None:
    workers = cluster.celery_workers(run_id)
    assert steps <= set(workers), (workers, cluster.describe())
    assert all(w.endswith(f"@{WORKER_HOST}") for w in workers.values())


def test_a_sync_and_a_two_partition_backfill_run_on_the_workers(cluster: Cluster) -> None:
    a = cluster.businesses["a"]
    run_id = cluster.launch(a, "contacts_sync")
    run = cluster.wait_finished(run_id)
    assert run.status == dg.DagsterRunStatus.SUCCESS, cluster.describe()
    assert_ran_on_workers(cluster, run.run_id, {"kizen__contacts_plan", "kizen__contacts"})
    assert_kizen_equals_source(a)

    # Rows of the first two days change; a backfill of those two partitions re-syncs them.
    a.sql(
        "UPDATE crm_contacts SET first_name = first_name || ' (backfilled)'"
        " WHERE substr(updated_at, 1, 10) IN ('2024-03-01', '2024-03-02')"
    )
    backfill_id = cluster.backfill("kizen/contacts_backfill", ["2024-03-01", "2024-03-02"])
    runs = cluster.backfill_runs(backfill_id)
    assert [r.status for r in runs] == [dg.DagsterRunStatus.SUCCESS] * len(runs)
    for backfill_run in runs:
        assert_ran_on_workers(cluster, backfill_run.run_id, {"kizen__contacts_backfill"})
    backfilled = [r for r in kizen_contacts(a) if str(r["first_name"]).endswith("(backfilled)")]
    assert len(backfilled) == 5  # contacts 1-5, updated on 2024-03-01 and 2024-03-02
    assert_kizen_equals_source(a)
    materialized = cluster.instance.get_materialized_partitions(
        dg.AssetKey(["kizen", "contacts_backfill"])
    )
    assert {"2024-03-01", "2024-03-02"} <= materialized


def test_a_worker_killed_mid_apply_costs_a_redelivery_not_the_deployment(
    cluster: Cluster,
) -> None:
    a = cluster.businesses["a"]
    a.sql("UPDATE crm_contacts SET first_name = first_name || ' v2'")
    a.gate.hold(after=5)  # five records reach Kizen, the sixth is in flight when we kill
    run_id = cluster.launch(a, "contacts_sync")
    cluster.wait("a write held at Kizen mid-apply", lambda: a.gate.held > 0)
    worker = cluster.wait(
        "the worker running the apply step",
        lambda: cluster.celery_workers(run_id).get("kizen__contacts"),
    )
    name = worker.split("@")[0]
    cluster.processes[name].kill()  # SIGKILL its whole session: the main process and its pool
    a.gate.release()
    cluster.start_worker(f"{name}r", a)  # the replacement a deployment would bring up

    final = cluster.wait_finished(run_id)
    assert final.status == dg.DagsterRunStatus.SUCCESS, cluster.describe()
    # The step ran again elsewhere: redelivered within the run, or in its automatic retry.
    attempts = [w for step, w in cluster.step_attempts(run_id) if step == "kizen__contacts"]
    if final.run_id != run_id:
        attempts += [
            w for step, w in cluster.step_attempts(final.run_id) if step == "kizen__contacts"
        ]
    assert attempts[0] == worker
    assert any(w != worker for w in attempts[1:]), attempts
    assert_kizen_equals_source(a)
    assert all(r["first_name"].endswith(" v2") for r in kizen_contacts(a))
    # The business's slot is free again and nothing is left "running" in the runs table.
    cluster.wait("the pool slot to be freed", lambda: cluster.active_slots(a.pool) == 0)
    rows = cluster.runs_table(a, "contacts")
    assert [r for r in rows if r["status"] == "running"] == []


def _blocked_by_pool(cluster: Cluster, run_id: str, pool: str) -> bool:
    return any(
        f"blocked by limit for pool {pool}" in (entry.user_message or "")
        for entry in cluster.messages(run_id)
    )


def test_two_syncs_to_one_business_never_write_at_the_same_time(cluster: Cluster) -> None:
    a = cluster.businesses["a"]
    a.sql("UPDATE crm_contacts SET first_name = first_name || ' v3'")
    # accounts was never synced: its run creates every account.
    a.gate.hold(after=0)
    runs = [cluster.launch(a, "contacts_sync"), cluster.launch(a, "accounts_sync")]
    cluster.wait("the first write held at Kizen", lambda: a.gate.held > 0)
    # Two idle workers could take the other apply step at once; the pool must stop it, and
    # the waiting run says so in its log.
    cluster.wait(
        "the other run to report its wait for the business's pool",
        lambda: any(_blocked_by_pool(cluster, r, a.pool) for r in runs),
    )
    a.gate.release()
    for run_id in runs:
        assert cluster.wait_finished(run_id).status == dg.DagsterRunStatus.SUCCESS
    contacts, accounts = a.gate.writes("client_client"), a.gate.writes("accounts")
    assert contacts
    assert accounts
    first, second = sorted([contacts, accounts], key=lambda w: w[0].arrived)
    assert max(w.answered or 0 for w in first) < min(w.arrived for w in second)
    assert_kizen_equals_source(a)


def test_two_businesses_write_at_the_same_time(cluster: Cluster) -> None:
    a, b = cluster.businesses["a"], cluster.businesses["b"]
    a.sql("UPDATE crm_contacts SET first_name = first_name || ' v4'")
    a.gate.hold(after=0)
    run_a = cluster.launch(a, "contacts_sync")
    cluster.wait("business a's first write held at Kizen", lambda: a.gate.held > 0)
    run_b = cluster.launch(b, "contacts_sync")  # b was never synced: it creates its contacts
    # While a's write is held (its pool slot taken), b's sync writes: separate pools.
    cluster.wait("business b's writes while a's is held", lambda: len(b.gate.writes()) >= 5)
    assert a.gate.held > 0
    a.gate.release()
    for run_id in (run_a, run_b):
        assert cluster.wait_finished(run_id).status == dg.DagsterRunStatus.SUCCESS
    assert_kizen_equals_source(a)
    assert_kizen_equals_source(b)
    assert cluster.active_slots(a.pool) == 0
    assert cluster.active_slots(b.pool) == 0
