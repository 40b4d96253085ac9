"""``kizen-sync demo``: the whole loop in a few seconds, on a laptop, with nothing to set up.

1. seed a SQLite warehouse with the demo tables (``crm_contacts``, ``crm_accounts``);
2. write a sync file next to it (contacts and accounts, upsert mode);
3. start the Kizen emulator over real HTTP on a free loopback port (or use ``--kizen-url``);
4. run both syncs: every row is created in Kizen;
5. change the warehouse: edits, added and removed tags, a new row, a deleted row, and one
   invalid e-mail address;
6. show the plan of the next run, field by field, then run it: only the changes are sent,
   the deleted row is archived, and the invalid row fails alone, visible in the failures list.

With ``--workdir`` everything stays on disk for inspection and reruns; a second demo in the
same directory starts over from a fresh seed. Without it a temporary directory is used and
removed at the end.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import click
from pydantic import SecretStr
from rich.console import Console
from sqlalchemy import create_engine, text

from kizen_sync.client import ClientSettings
from kizen_sync.config import load_config
from kizen_sync.engine.runner import SyncRunner, client_settings_from_config
from kizen_sync.errors import ConfigError, ConfigProblem, KizenSyncError
from kizen_sync.models import RunOptions, RunReport
from kizen_sync.render import failures_table, plan_table, summary_table
from kizen_sync.warehouse.sqlfiles import split_statements, sql_dir

if TYPE_CHECKING:
    from kizen_sync.emulator import Emulator

__all__ = [
    "DEMO_CHANGES",
    "DemoResult",
    "demo",
    "run_demo",
    "seed_warehouse",
    "write_sync_file",
]

WAREHOUSE_FILE = "warehouse.db"
SYNC_FILE = "syncs.yaml"
EMULATOR_STATE = "kizen_emulator.db"

#: The warehouse edits between the two runs; each line shows one kind of change.
DEMO_CHANGES: tuple[tuple[str, str], ...] = (
    (
        "contact 1: new first name; tag Partner added, Newsletter removed",
        "UPDATE crm_contacts SET first_name = 'Augusta Ada', tags = 'VIP,Partner', "
        "updated_at = '2024-04-01 09:00:00' WHERE contact_id = 1",
    ),
    (
        "contact 3: opted in, moved to Europe/Paris",
        "UPDATE crm_contacts SET email_status = 'Opted In', timezone = 'Europe/Paris', "
        "updated_at = '2024-04-01 09:01:00' WHERE contact_id = 3",
    ),
    (
        "contact 5: first tag (Beta)",
        "UPDATE crm_contacts SET tags = 'Beta', updated_at = '2024-04-01 09:02:00' "
        "WHERE contact_id = 5",
    ),
    (
        "contact 7: an invalid e-mail address (this record fails alone)",
        "UPDATE crm_contacts SET email = 'dennis.r(at)example', "
        "updated_at = '2024-04-01 09:03:00' WHERE contact_id = 7",
    ),
    (
        "contact 9: deleted in the warehouse (archived in Kizen)",
        "DELETE FROM crm_contacts WHERE contact_id = 9",
    ),
    (
        "contact 26: a new row",
        "INSERT INTO crm_contacts VALUES (26, 'mary.k@example.com', 'Mary', 'Keller', "
        "'+16085550125', '1990-12-17', 'Opted In', 'Newsletter', "
        "'7f1e2d3c-0000-4000-8000-000000000002', 'America/Chicago', '2024-04-01 09:04:00')",
    ),
    (
        "account 4: tier up, product Analytics added, label At Risk removed",
        "UPDATE crm_accounts SET tier = 'Silver', products = 'Support,Analytics', "
        "labels = 'Renewal', updated_at = '2024-04-01 09:05:00' WHERE account_id = 4",
    ),
)


@dataclass
class DemoResult:
    """What the demo did, for tests and for callers that want more than the printout."""

    workdir: Path
    sync_file: Path
    first: list[RunReport] = field(default_factory=list)
    second: list[RunReport] = field(default_factory=list)


def seed_warehouse(path: Path) -> str:
    """(Re)create the demo warehouse at ``path`` from ``sql/demo_warehouse.sql``.

    Any previous file is removed first (with its WAL side files), together with the state
    tables it held, so a rerun starts from the same place.

    Returns:
        The SQLAlchemy URL of the warehouse.
    """
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    url = f"sqlite:///{path.resolve()}"
    engine = create_engine(url)
    try:
        seed = (sql_dir() / "demo_warehouse.sql").read_text(encoding="utf-8")
        with engine.begin() as conn:
            for statement in split_statements(seed):
                conn.execute(text(statement))
    finally:
        engine.dispose()
    return url


def change_warehouse(url: str) -> None:
    """Apply :data:`DEMO_CHANGES` to the demo warehouse."""
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            for _, statement in DEMO_CHANGES:
                conn.execute(text(statement))
    finally:
        engine.dispose()


def write_sync_file(workdir: Path, warehouse: Path) -> Path:
    """Write the demo sync file (``syncs.yaml``) pointing at ``warehouse``."""
    template = resources.files("kizen_sync").joinpath("demo_syncs.yaml").read_text("utf-8")
    target = workdir / SYNC_FILE
    target.write_text(
        template.replace("{{warehouse_path}}", str(warehouse.resolve())), encoding="utf-8"
    )
    return target


def _emulator_class() -> type[Emulator]:
    """The emulator, an optional extra: the demo is the one place that brings the product and
    its test double together, and it says what to install when the extra is missing.
    """
    try:
        from kizen_sync.emulator import Emulator
    except ModuleNotFoundError as exc:
        raise ConfigError(
            [
                ConfigProblem(
                    "emulator",
                    f"{exc.name} is not installed: the local Kizen emulator is an optional "
                    "part of kizen-sync; install it with `pip install 'kizen-sync[emulator]'`, "
                    "or pass --kizen-url to use a running Kizen",
                )
            ]
        ) from None
    return Emulator


@contextlib.contextmanager
def _kizen(workdir: Path, kizen_url: str | None, config_path: Path) -> Iterator[ClientSettings]:
    """Client settings for a running server (``--kizen-url``) or an in-process emulator."""
    if kizen_url is not None:
        yield client_settings_from_config(load_config(config_path), base_url=kizen_url)
        return
    state = workdir / EMULATOR_STATE
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{state}{suffix}").unlink(missing_ok=True)
    emulator = _emulator_class().demo(state_path=state)
    api_key, user_id, business_id = emulator.credentials
    try:
        with emulator.serve(host="127.0.0.1", port=0) as base_url:
            yield ClientSettings(
                base_url=base_url,
                api_key=SecretStr(api_key),
                user_id=user_id,
                business_id=business_id,
                max_in_flight=8,
            )
    finally:
        emulator.close()


def _run_all(runner: SyncRunner, console: Console, title: str) -> list[RunReport]:
    reports = [runner.run(sync.name) for sync in runner.config.syncs]
    console.print(summary_table(reports, title=title))
    return reports


def run_demo(
    workdir: Path | None = None, kizen_url: str | None = None, console: Console | None = None
) -> DemoResult:
    """Run the demo end to end (see the module docstring) and print what happened.

    Args:
        workdir: keep everything here; default a temporary directory removed at the end.
        kizen_url: a running Kizen-compatible server; credentials then come from the
            environment (``KIZEN_API_KEY``, ``KIZEN_USER_ID``, ``KIZEN_BUSINESS_ID``).
        console: where to print; default stdout.
    """
    console = console or Console()
    if workdir is None:
        with tempfile.TemporaryDirectory(prefix="kizen-sync-demo-") as tmp:
            return _demo(Path(tmp), kizen_url, console, keep=False)
    workdir.mkdir(parents=True, exist_ok=True)
    return _demo(workdir, kizen_url, console, keep=True)


def _demo(workdir: Path, kizen_url: str | None, console: Console, *, keep: bool) -> DemoResult:
    warehouse = workdir / WAREHOUSE_FILE
    url = seed_warehouse(warehouse)
    sync_file = write_sync_file(workdir, warehouse)
    result = DemoResult(workdir=workdir, sync_file=sync_file)
    console.print(f"Demo warehouse: {warehouse} (tables crm_contacts, crm_accounts)")
    with _kizen(workdir, kizen_url, sync_file) as settings:
        console.print(f"Kizen: {settings.base_url}\n")
        with SyncRunner.from_file(sync_file, client_settings=settings) as runner:
            result.first = _run_all(runner, console, "First run: everything is new")
            console.print("\nChanging the warehouse:")
            for description, _ in DEMO_CHANGES:
                console.print(f"  - {description}")
            change_warehouse(url)
            plan = runner.plan("contacts", RunOptions(dry_run=True))
            console.print(plan_table("contacts", plan.plan_sample, plan.labels))
            result.second = _run_all(runner, console, "Second run: only the changes are sent")
    failed = failures_table(result.second)
    if failed is not None:
        console.print(failed)
    _where_to_look(console, workdir, sync_file, keep=keep)
    return result


def _where_to_look(console: Console, workdir: Path, sync_file: Path, *, keep: bool) -> None:
    if not keep:
        console.print(
            "\nRun `kizen-sync demo --workdir DIR` to keep the warehouse, the sync file and "
            "the emulator state for inspection."
        )
        return
    console.print(
        "\nThe failed record is parked in the failures list (runs skip it until its row or the "
        "mapping changes; `kizen-sync retry` sends it again):\n"
        f"  kizen-sync failures --config {sync_file}\n"
        f"  SQL: SELECT * FROM kizen_sync_open_failures;  -- in {workdir / WAREHOUSE_FILE}\n"
        "Audit of every attempt: table kizen_sync_audit; runs: view kizen_sync_run_summary.\n"
        "To sync again by hand, serve the same Kizen state in one terminal:\n"
        f"  kizen-sync emulator --state {workdir / EMULATOR_STATE}\n"
        "and in another:\n"
        f"  KIZEN_API_KEY=demo-api-key kizen-sync run --config {sync_file}"
    )


@click.command("demo")
@click.option(
    "--workdir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Keep the warehouse, sync file and emulator state here (default: a temporary dir).",
)
@click.option("--kizen-url", help="Use this Kizen-compatible server (credentials from the env).")
def demo(workdir: Path | None, kizen_url: str | None) -> None:
    """Seed a demo warehouse, sync it to a local Kizen emulator, change it, sync again."""
    from rich.markup import escape

    from kizen_sync.render import make_console

    console = make_console(highlight=False, soft_wrap=False)
    try:
        run_demo(workdir=workdir, kizen_url=kizen_url, console=console)
    except KizenSyncError as exc:
        make_console(stderr=True, highlight=False).print(
            f"[bold red]error:[/] {escape(exc.message)}", markup=True, highlight=False
        )
        raise SystemExit(2 if isinstance(exc, ConfigError) else 1) from None
