"""``kizen-sync``: run, plan, retry and inspect syncs from a terminal.

Every command reads one sync file (``--config``) and works on every sync in it unless
``--sync`` names some. Library errors are printed as their message, never as a traceback,
and map to exit statuses a scheduler can act on:

====  ==================================================================
0     every sync succeeded (or the command only reads)
1     a run failed (failed records above ``failure_threshold``), or Kizen refused us
2     the sync file is invalid, or a guard stopped a run
3     another run holds the sync (its lease); this run sent nothing
====  ==================================================================

The API key is read from the environment by the runner and never printed.
"""

from __future__ import annotations

import importlib
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from kizen_sync.errors import ConfigError, GuardError, KizenSyncError, LeaseHeldError

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress

    from kizen_sync.engine.runner import SyncRunner
    from kizen_sync.models import RunOptions, RunReport

__all__ = ["cli", "main"]

EXIT_FAILED = 1
EXIT_CONFIG = 2
EXIT_BUSY = 3

#: Commands that live in optional or heavy modules, imported only when invoked, so that
#: ``kizen-sync --help`` and the sync commands never load the emulator's web server (an
#: optional extra) and ``--help`` loads neither the HTTP nor the SQL stack.
LAZY_COMMANDS: dict[str, tuple[str, str]] = {
    "check": (
        "kizen_sync.preflight.command:check",
        "Pre-flight check of the Kizen account and the warehouse; writes nothing.",
    ),
    "emulator": ("kizen_sync.emulator.cli:emulator", "Serve the local Kizen API emulator."),
    "demo": (
        "kizen_sync.demo:demo",
        "Seed a demo warehouse, sync it to a local Kizen emulator, change it, sync again.",
    ),
}
#: What to install when an optional command's packages are missing.
EMULATOR_HINT = (
    "the local Kizen emulator is an optional part of kizen-sync: "
    "install it with `pip install 'kizen-sync[emulator]'`"
)


class LazyGroup(click.Group):
    """A click group whose :data:`LAZY_COMMANDS` are imported on first use.

    The listing in ``--help`` uses the short help strings above, so showing it imports no
    command module; a command whose optional dependencies are missing says what to install.
    """

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *LAZY_COMMANDS])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in LAZY_COMMANDS:
            return super().get_command(ctx, cmd_name)
        target, _ = LAZY_COMMANDS[cmd_name]
        module_name, attr = target.split(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name and exc.name.split(".")[0] in _EMULATOR_PACKAGES:
                raise click.UsageError(f"`{cmd_name}`: {EMULATOR_HINT}") from None
            raise
        command: click.Command = getattr(module, attr)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [
            (name, LAZY_COMMANDS[name][1])
            if name in LAZY_COMMANDS
            else (name, self.commands[name].get_short_help_str(formatter.width))
            for name in self.list_commands(ctx)
        ]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


#: Top-level packages of the ``emulator`` extra.
_EMULATOR_PACKAGES = frozenset({"starlette", "uvicorn", "httptools", "uvloop"})


@cache
def _out() -> Console:
    from kizen_sync.render import make_console

    return make_console(highlight=False, soft_wrap=False)


@cache
def _err() -> Console:
    from kizen_sync.render import make_console

    return make_console(stderr=True, highlight=False)


def _exit_code(error: KizenSyncError) -> int:
    if isinstance(error, LeaseHeldError):
        return EXIT_BUSY
    return EXIT_CONFIG if isinstance(error, ConfigError | GuardError) else EXIT_FAILED


def _fail(error: KizenSyncError) -> None:
    from rich.markup import escape

    # Escaped: a message may quote a value that looks like markup ("[emulator]").
    _err().print(f"[bold red]error:[/] {escape(error.message)}", markup=True, highlight=False)


@contextmanager
def _runner(config: Path, **kwargs: Any) -> Iterator[SyncRunner]:
    """Open a runner; a bad file exits 2 with every problem listed."""
    from kizen_sync.engine.runner import SyncRunner

    try:
        runner = SyncRunner.from_file(config, **kwargs)
    except KizenSyncError as exc:
        _fail(exc)
        raise SystemExit(_exit_code(exc)) from None
    with runner:
        yield runner


def _sync_names(runner: SyncRunner, names: Sequence[str]) -> list[str]:
    if not names:
        return [s.name for s in runner.config.syncs]
    for name in names:
        try:
            runner.config.sync(name)
        except ConfigError as exc:
            _fail(exc)
            raise SystemExit(EXIT_CONFIG) from None
    return list(names)


def _each_sync(
    runner: SyncRunner, names: list[str], action: Callable[[str], RunReport]
) -> tuple[list[RunReport], int]:
    """Run ``action`` per sync; one sync's error does not stop the next one."""
    reports: list[RunReport] = []
    code = 0
    for name in names:
        try:
            reports.append(action(name))
        except KizenSyncError as exc:
            _fail(exc)
            code = max(code, _exit_code(exc))
    for report in reports:
        if report.status == "failed":
            code = max(code, EXIT_FAILED)
    return reports, code


def _progress_bar() -> Progress:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=_err(),
        transient=True,
    )


def run_with_progress(
    runner: SyncRunner, name: str, options: RunOptions | None = None
) -> RunReport:
    """``runner.run`` with a progress bar on stderr while records are applied."""
    with _progress_bar() as bar:
        task = bar.add_task(name, total=None)

        def progress(_sync: str, done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        runner.progress = progress
        try:
            return runner.run(name, options)
        finally:
            runner.progress = None


@click.group(name="kizen-sync", cls=LazyGroup)
@click.option("--verbose", "-v", is_flag=True, help="Log every step (DEBUG); never logs secrets.")
def cli(verbose: bool) -> None:
    """Keep Kizen CRM records in step with a SQL warehouse."""
    from rich.logging import RichHandler

    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit():  # honour the width of this invocation, not of the first use
        _out().width = _err().width = int(columns)
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(message)s",
        handlers=[RichHandler(console=_err(), show_path=False)],
        force=True,
    )
    # httpx logs every request URL at INFO, and lookup URLs carry identifiers (e-mail
    # addresses): keep the transport quiet; kizen_sync's own loggers report retries.
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.WARNING)


config_option = click.option(
    "--config",
    "-c",
    "config",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The sync file (YAML).",
)
sync_option = click.option(
    "--sync", "-s", "syncs", multiple=True, help="Sync to work on (repeatable); default: all."
)
wait_option = click.option(
    "--wait",
    "wait_s",
    type=click.FloatRange(min=0),
    help="Seconds to wait while another run holds the sync (default: warehouse.lease.wait_s, "
    "0); exit 3 when it still does.",
)


@cli.command()
@config_option
@sync_option
@click.option("--full-refresh", is_flag=True, help="Compare and send every field of every row.")
@click.option("--max-records", type=click.IntRange(min=1), help="Cap on writes this run.")
@wait_option
def run(
    config: Path,
    syncs: tuple[str, ...],
    full_refresh: bool,
    max_records: int | None,
    wait_s: float | None,
) -> None:
    """Plan, guard and apply the syncs; exit 1 when a run fails."""
    from kizen_sync.models import RunOptions

    options = RunOptions(full_refresh=full_refresh, max_records=max_records, lease_wait_s=wait_s)
    with _runner(config) as runner:
        names = _sync_names(runner, syncs)
        reports, code = _each_sync(
            runner, names, lambda name: run_with_progress(runner, name, options)
        )
    _print_reports(reports)
    raise SystemExit(code)


@cli.command()
@config_option
@sync_option
@wait_option
def retry(config: Path, syncs: tuple[str, ...], wait_s: float | None) -> None:
    """Re-send only the records whose last attempt failed."""
    from kizen_sync.models import RunOptions

    options = RunOptions(only_failed=True, lease_wait_s=wait_s)
    with _runner(config) as runner:
        names = _sync_names(runner, syncs)
        reports, code = _each_sync(
            runner, names, lambda name: run_with_progress(runner, name, options)
        )
    _print_reports(reports)
    raise SystemExit(code)


def _print_reports(reports: Sequence[RunReport]) -> None:
    from kizen_sync.render import failures_table, summary_table

    if not reports:
        return
    out = _out()
    out.print(summary_table(reports))
    failed = failures_table(reports)
    if failed is not None:
        out.print(failed)
    for r in reports:
        if r.message:
            out.print(f"{r.sync}: {r.message}")


@cli.command()
@config_option
@sync_option
@click.option("--full-refresh", is_flag=True, help="Plan every field of every row.")
@click.option("--max-records", type=click.IntRange(min=1), help="Cap on planned writes.")
def plan(config: Path, syncs: tuple[str, ...], full_refresh: bool, max_records: int | None) -> None:
    """Show what a run would send, field by field, without sending or storing anything."""
    from kizen_sync.models import RunOptions
    from kizen_sync.render import plan_counts_table, plan_table

    out = _out()
    options = RunOptions(dry_run=True, full_refresh=full_refresh, max_records=max_records)
    with _runner(config) as runner:
        names = _sync_names(runner, syncs)
        reports, code = _each_sync(runner, names, lambda name: runner.plan(name, options))
    if reports:
        out.print(plan_counts_table(reports))
    for r in reports:
        if r.message:
            out.print(f"[yellow]guard:[/] {r.message}")
            code = max(code, EXIT_CONFIG)
        if r.plan_sample:
            out.print(plan_table(r.sync, r.plan_sample, r.labels))
            shown = len(r.plan_sample)
            if shown < r.planned:
                out.print(f"({shown} of {r.planned} planned records shown)")
    raise SystemExit(code)


@cli.command()
@config_option
@click.option("--sync", "-s", "sync", help="Only this sync.")
@click.option("--limit", type=click.IntRange(min=1), default=100, show_default=True)
def failures(config: Path, sync: str | None, limit: int) -> None:
    """List records whose latest attempt failed (they are re-sent by the next run)."""
    from kizen_sync.render import open_failures_table

    out = _out()
    with _runner(config) as runner:
        if sync is not None:
            _sync_names(runner, [sync])
        try:
            rows = runner.open_failures(sync, limit=limit)
        except KizenSyncError as exc:
            _fail(exc)
            raise SystemExit(_exit_code(exc)) from None
    if not rows:
        out.print("No open failures.")
        return
    out.print(open_failures_table(rows))


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="kizen-sync")
