"""``kizen-sync``: run, plan, retry and inspect syncs from a terminal.

Every command reads one sync file (``--config``) and works on every sync in it unless
``--sync`` names some. Library errors are printed as their message, never as a traceback,
and map to exit statuses a scheduler can act on:

====  ==================================================================
0     every sync succeeded (or the command only reads)
1     a run failed (failed records above ``failure_threshold``), or Kizen refused us
2     the sync file is invalid, or a guard stopped a run before any write
====  ==================================================================

The API key is read from the environment by the runner and never printed.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
from rich.logging import RichHandler
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from kizen_sync.emulator.cli import emulator as emulator_command
from kizen_sync.engine.runner import SyncRunner
from kizen_sync.errors import ConfigError, GuardError, KizenSyncError
from kizen_sync.models import RunOptions, RunReport
from kizen_sync.render import (
    failures_table,
    make_console,
    open_failures_table,
    plan_counts_table,
    plan_table,
    summary_table,
)

__all__ = ["cli", "main"]

EXIT_FAILED = 1
EXIT_CONFIG = 2

out = make_console(highlight=False, soft_wrap=False)
err = make_console(stderr=True, highlight=False)


def _exit_code(error: KizenSyncError) -> int:
    return EXIT_CONFIG if isinstance(error, ConfigError | GuardError) else EXIT_FAILED


def _fail(error: KizenSyncError) -> None:
    err.print(f"[bold red]error:[/] {error.message}", markup=True, highlight=False)


@contextmanager
def _runner(config: Path, **kwargs: Any) -> Iterator[SyncRunner]:
    """Open a runner; a bad file exits 2 with every problem listed."""
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
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
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


@click.group(name="kizen-sync")
@click.option("--verbose", "-v", is_flag=True, help="Log every step (DEBUG); never logs secrets.")
def cli(verbose: bool) -> None:
    """Keep Kizen CRM records in step with a SQL warehouse."""
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit():  # honour the width of this invocation, not of the import
        out.width = err.width = int(columns)
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(message)s",
        handlers=[RichHandler(console=err, show_path=False)],
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


@cli.command()
@config_option
@sync_option
@click.option("--full-refresh", is_flag=True, help="Compare and send every field of every row.")
@click.option("--max-records", type=click.IntRange(min=1), help="Cap on writes this run.")
def run(config: Path, syncs: tuple[str, ...], full_refresh: bool, max_records: int | None) -> None:
    """Plan, guard and apply the syncs; exit 1 when a run fails."""
    options = RunOptions(full_refresh=full_refresh, max_records=max_records)
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
def retry(config: Path, syncs: tuple[str, ...]) -> None:
    """Re-send only the records whose last attempt failed."""
    with _runner(config) as runner:
        names = _sync_names(runner, syncs)
        reports, code = _each_sync(
            runner,
            names,
            lambda name: run_with_progress(runner, name, RunOptions(only_failed=True)),
        )
    _print_reports(reports)
    raise SystemExit(code)


def _print_reports(reports: Sequence[RunReport]) -> None:
    if not reports:
        return
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


@cli.command()
@click.option(
    "--workdir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Keep the warehouse, sync file and emulator state here (default: a temporary dir).",
)
@click.option("--kizen-url", help="Use this Kizen-compatible server (credentials from the env).")
def demo(workdir: Path | None, kizen_url: str | None) -> None:
    """Seed a demo warehouse, sync it to a local Kizen emulator, change it, sync again."""
    from kizen_sync.demo import run_demo

    try:
        run_demo(workdir=workdir, kizen_url=kizen_url, console=out)
    except KizenSyncError as exc:
        _fail(exc)
        raise SystemExit(_exit_code(exc)) from None


cli.add_command(emulator_command, name="emulator")


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="kizen-sync")
