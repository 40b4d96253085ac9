"""``kizen-sync``: run, plan, retry, validate and inspect syncs from a terminal.

Every command reads one sync file (``--config``, default ``$KIZEN_SYNC_CONFIG``) and works on
every sync in it unless ``--sync`` names some. Library errors are printed as their message,
never as a traceback, and map to the exit statuses of :mod:`kizen_sync.output` (README, "Exit
status"): 0 ok, 1 a run failed, 2 invalid configuration or a guard stopped the run, 3 another
run holds the sync. ``--json`` prints one JSON document on stdout instead of the tables
(progress and logs stay on stderr); ``--log-format json`` makes the log lines JSON.

The API key is read from the environment by the runner and never printed.
"""

from __future__ import annotations

import importlib
import logging
import os
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from kizen_sync.errors import ConfigError, KizenSyncError
from kizen_sync.output import CommandError, ExitStatus, exit_status

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress

    from kizen_sync.engine.runner import SyncRunner
    from kizen_sync.models import RunOptions, RunReport

__all__ = ["cli", "main"]

#: Commands that live in optional or heavy modules, imported only when invoked, so that
#: ``kizen-sync --help`` and the sync commands never load the emulator's web server (an
#: optional extra) and ``--help`` loads neither the HTTP nor the SQL stack.
LAZY_COMMANDS: dict[str, tuple[str, str]] = {
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

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        """Click's ``main``, but a command-line mistake (an unknown option, a bad value, a
        missing ``--config``) met with ``--json`` also prints the one JSON document a
        scheduler reads (README, "JSON output"), next to click's usage text on stderr.
        """
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, False, **extra)
        argv = list(sys.argv[1:] if args is None else args)
        try:
            status = super().main(argv, prog_name, complete_var, False, **extra)
        except click.ClickException as exc:
            exc.show()
            if "--json" in argv:
                from kizen_sync.output import dumps, usage_document

                ctx = getattr(exc, "ctx", None)
                command = ctx.info_name if ctx is not None and ctx.parent is not None else None
                doc = usage_document(
                    command, type(exc).__name__, exc.format_message(), exc.exit_code
                )
                click.echo(dumps(doc))
            sys.exit(exc.exit_code)
        except click.Abort:
            click.echo("Aborted!", err=True)
            sys.exit(1)
        sys.exit(status if isinstance(status, int) else 0)

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


# --- logging --------------------------------------------------------------------------------

#: Environment variable read by ``--log-format`` (``text`` or ``json``).
LOG_FORMAT_ENV = "KIZEN_SYNC_LOG_FORMAT"


def _json_handler() -> logging.Handler:
    """A stderr handler writing one JSON object per log line (structlog's stdlib bridge)."""
    import structlog

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[
                structlog.stdlib.add_log_level,
                structlog.stdlib.add_logger_name,
                structlog.stdlib.ExtraAdder(),
                structlog.processors.TimeStamper(fmt="iso", utc=True),
                structlog.processors.format_exc_info,
            ],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.JSONRenderer(sort_keys=True),
            ],
        )
    )
    return handler


def _configure_logging(ctx: click.Context) -> None:
    """(Re)configure logging from the flags seen so far, before or after the subcommand."""
    meta = ctx.find_root().meta
    verbose = bool(meta.get("kizen_sync.verbose"))
    fmt = meta.get("kizen_sync.log_format") or os.environ.get(LOG_FORMAT_ENV) or "text"
    if fmt == "json":
        handler = _json_handler()
    else:
        from rich.logging import RichHandler

        handler = RichHandler(console=_err(), show_path=False)
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(message)s",
        handlers=[handler],
        force=True,
    )
    # The library's loggers follow the flag (the root's level), whatever levels an embedding
    # program set on them before; NOTSET leaves nothing behind for code that runs later.
    for name, logger in list(logging.root.manager.loggerDict.items()):
        if (name == "kizen_sync" or name.startswith("kizen_sync.")) and isinstance(
            logger, logging.Logger
        ):
            logger.setLevel(logging.NOTSET)
    # httpx logs every request URL at INFO, and lookup URLs carry identifiers (e-mail
    # addresses): keep the transport quiet; kizen_sync's own loggers report retries.
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.WARNING)


def _set_verbose(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value:
        ctx.find_root().meta["kizen_sync.verbose"] = True
        _configure_logging(ctx)


def _set_log_format(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    if value:
        ctx.find_root().meta["kizen_sync.log_format"] = value
        _configure_logging(ctx)


def logging_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """``-v/--verbose`` and ``--log-format``, accepted before and after the subcommand."""
    command = click.option(
        "--log-format",
        type=click.Choice(["text", "json"]),
        envvar=LOG_FORMAT_ENV,
        expose_value=False,
        callback=_set_log_format,
        help=f"Log lines as text (default) or one JSON object per line (or ${LOG_FORMAT_ENV}).",
    )(command)
    return click.option(
        "--verbose",
        "-v",
        is_flag=True,
        expose_value=False,
        callback=_set_verbose,
        help="Log every step (DEBUG); never logs secrets.",
    )(command)


# --- one command's outcome ------------------------------------------------------------------


@dataclass
class Outcome:
    """What a command met: its errors (for stderr and the JSON document) and exit status."""

    command: str
    json: bool = False
    errors: list[CommandError] = field(default_factory=list)
    status: int = ExitStatus.OK

    def fail(self, error: KizenSyncError, sync: str | None = None) -> None:
        """Report an error on stderr, keep it for the JSON document, raise the status."""
        from rich.markup import escape

        # Escaped: a message may quote a value that looks like markup ("[emulator]").
        _err().print(f"[bold red]error:[/] {escape(error.message)}", markup=True, highlight=False)
        self.errors.append(CommandError(error, sync))
        self.raise_to(exit_status(error))

    def raise_to(self, status: int) -> None:
        self.status = max(self.status, int(status))

    def finish(self, **fields: Any) -> NoReturn:
        """Print the JSON document (with ``--json``) and exit with the status."""
        if self.json:
            from kizen_sync.output import document, dumps

            click.echo(dumps(document(self.command, self.status, errors=self.errors, **fields)))
        raise SystemExit(self.status)


@contextmanager
def _runner(outcome: Outcome, config: Path, **kwargs: Any) -> Iterator[SyncRunner]:
    """Open a runner; a bad file ends the command (exit 2) with every problem listed."""
    from kizen_sync.engine.runner import SyncRunner

    try:
        runner = SyncRunner.from_file(config, **kwargs)
    except KizenSyncError as exc:
        outcome.fail(exc)
        outcome.finish(syncs=[])
    with runner:
        yield runner


def _sync_names(outcome: Outcome, runner: SyncRunner, names: Sequence[str]) -> list[str]:
    if not names:
        return [s.name for s in runner.config.syncs]
    for name in names:
        try:
            runner.config.sync(name)
        except ConfigError as exc:
            outcome.fail(exc)
            outcome.finish(syncs=[])
    return list(names)


def _each_sync(
    outcome: Outcome, names: list[str], action: Callable[[str], RunReport]
) -> list[RunReport]:
    """Run ``action`` per sync; one sync's error does not stop the next one."""
    reports: list[RunReport] = []
    for name in names:
        try:
            reports.append(action(name))
        except KizenSyncError as exc:
            outcome.fail(exc, name)
    for report in reports:
        if report.status == "failed":
            outcome.raise_to(ExitStatus.RUN_FAILED)
    return reports


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


# --- the commands ---------------------------------------------------------------------------


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("kizen-sync")
    except PackageNotFoundError:  # a source tree that was never installed
        return "unknown"


@click.group(name="kizen-sync", cls=LazyGroup)
@click.version_option(version=_version(), prog_name="kizen-sync", message="%(prog)s %(version)s")
@logging_options
@click.pass_context
def cli(ctx: click.Context) -> None:
    """Keep Kizen CRM records in step with a SQL warehouse."""
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit():  # honour the width of this invocation, not of the first use
        _out().width = _err().width = int(columns)
    _configure_logging(ctx)


#: Environment variable ``--config`` falls back to.
CONFIG_ENV = "KIZEN_SYNC_CONFIG"

config_option = click.option(
    "--config",
    "-c",
    "config",
    required=True,
    envvar=CONFIG_ENV,
    show_envvar=True,
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
json_option = click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print one JSON document on stdout (README, 'JSON output') instead of tables.",
)


def _notes(reports: Sequence[RunReport], config: Path) -> list[str]:
    from kizen_sync.engine.parking import parked_note

    lines = []
    for r in reports:
        if r.message:
            lines.append(f"{r.sync}: {r.message}")
        if r.known_failed:  # a retry or --include-parked sent parked rows that failed again
            lines.append(
                f"{r.sync}: {r.known_failed} of the failed records failed as before, with the "
                "same values: they stay parked and do not fail the run."
            )
        note = parked_note(r.sync, r.parked, r.parked_since, config)
        if note:
            lines.append(f"{r.sync}: {note}")
    return lines


def _apply(
    command: str,
    config: Path,
    syncs: tuple[str, ...],
    as_json: bool,
    options: RunOptions,
) -> NoReturn:
    from kizen_sync.output import report_entry

    outcome = Outcome(command, as_json)
    with _runner(outcome, config) as runner:
        names = _sync_names(outcome, runner, syncs)
        reports = _each_sync(outcome, names, lambda name: run_with_progress(runner, name, options))
    if not as_json and reports:
        from kizen_sync.render import failures_table, summary_table

        out = _out()
        out.print(summary_table(reports))
        failed = failures_table(reports)
        if failed is not None:
            out.print(failed)
        for line in _notes(reports, config):
            out.print(line, markup=False)
    outcome.finish(syncs=[report_entry(r) for r in reports])


@cli.command()
@config_option
@sync_option
@click.option(
    "--full-refresh",
    is_flag=True,
    help="Compare every row field by field with what Kizen confirmed; send only what differs.",
)
@click.option("--max-records", type=click.IntRange(min=1), help="Cap on writes this run.")
@click.option(
    "--include-parked",
    is_flag=True,
    help="Also re-send parked failures (rows that failed before and have not changed).",
)
@wait_option
@json_option
@logging_options
def run(
    config: Path,
    syncs: tuple[str, ...],
    full_refresh: bool,
    max_records: int | None,
    include_parked: bool,
    wait_s: float | None,
    as_json: bool,
) -> None:
    """Plan, guard and apply the syncs; exit 1 when a run fails, 3 when another run holds one."""
    from kizen_sync.models import RunOptions

    options = RunOptions(
        full_refresh=full_refresh,
        max_records=max_records,
        include_parked=include_parked,
        lease_wait_s=wait_s,
    )
    _apply("run", config, syncs, as_json, options)


@cli.command()
@config_option
@sync_option
@wait_option
@json_option
@logging_options
def retry(config: Path, syncs: tuple[str, ...], wait_s: float | None, as_json: bool) -> None:
    """Re-send only the records whose last attempt failed, parked ones included."""
    from kizen_sync.models import RunOptions

    _apply("retry", config, syncs, as_json, RunOptions(only_failed=True, lease_wait_s=wait_s))


@cli.command()
@config_option
@sync_option
@click.option(
    "--full-refresh", is_flag=True, help="Compare every row field by field, not by fingerprint."
)
@click.option("--max-records", type=click.IntRange(min=1), help="Cap on planned writes.")
@click.option("--include-parked", is_flag=True, help="Plan parked failures again too.")
@json_option
@logging_options
def plan(
    config: Path,
    syncs: tuple[str, ...],
    full_refresh: bool,
    max_records: int | None,
    include_parked: bool,
    as_json: bool,
) -> None:
    """Show what a run would send, field by field, without sending or storing anything."""
    from kizen_sync.models import RunOptions
    from kizen_sync.output import report_entry

    outcome = Outcome("plan", as_json)
    options = RunOptions(
        dry_run=True,
        full_refresh=full_refresh,
        max_records=max_records,
        include_parked=include_parked,
    )
    with _runner(outcome, config) as runner:
        names = _sync_names(outcome, runner, syncs)
        reports = _each_sync(outcome, names, lambda name: runner.plan(name, options))
    for r in reports:
        if r.message:  # a guard would stop this run
            outcome.raise_to(ExitStatus.INVALID)
    if not as_json:
        _print_plan(reports, config)
    outcome.finish(syncs=[report_entry(r) for r in reports])


def _print_plan(reports: Sequence[RunReport], config: Path) -> None:
    from kizen_sync.engine.parking import parked_note
    from kizen_sync.render import plan_counts_table, plan_table

    out = _out()
    if reports:
        out.print(plan_counts_table(reports))
    for r in reports:
        if r.message:
            out.print(f"[yellow]guard:[/] {r.message}")
        note = parked_note(r.sync, r.parked, r.parked_since, config)
        if note:
            out.print(f"{r.sync}: {note}", markup=False)
        if r.plan_sample:
            out.print(plan_table(r.sync, r.plan_sample, r.labels))
            shown = len(r.plan_sample)
            if shown < r.planned:
                out.print(f"({shown} of {r.planned} planned records shown)")


#: Failures the ``failures`` tables list one by one unless ``--limit`` says otherwise (a
#: terminal is no place for thousands of rows; ``--json`` lists every one, for a scheduler
#: or a script that must see each bad row).
FAILURES_SHOWN = 100

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def _duration(_ctx: click.Context, param: click.Parameter, value: str | None) -> timedelta | None:
    if value is None:
        return None
    match = _DURATION.match(value)
    if match is None:
        raise click.BadParameter(f"{value!r} is not a duration such as 90s, 30m, 12h, 3d or 2w")
    return timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])


@cli.command()
@config_option
@click.option("--sync", "-s", "sync", help="Only this sync.")
@click.option(
    "--reason",
    help="Only failures whose reason or message contains this text (error class, field, "
    "HTTP status, or a value the message quotes).",
)
@click.option(
    "--older-than", callback=_duration, help="Only failures open at least this long (e.g. 3d)."
)
@click.option(
    "--newer-than", callback=_duration, help="Only failures open less than this (e.g. 12h)."
)
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    help=f"Failures listed one by one, newest first (default: {FAILURES_SHOWN} in the tables, "
    "every one with --json); totals and groups always cover every match.",
)
@json_option
@logging_options
def failures(
    config: Path,
    sync: str | None,
    reason: str | None,
    older_than: timedelta | None,
    newer_than: timedelta | None,
    limit: int | None,
    as_json: bool,
) -> None:
    """Open failures, grouped by reason: parked ones wait for a change, others are retried."""
    outcome = Outcome("failures", as_json)
    if limit is None and not as_json:
        limit = FAILURES_SHOWN
    with _runner(outcome, config) as runner:
        if sync is not None:
            _sync_names(outcome, runner, [sync])
        try:
            listing = runner.failure_listing(
                sync, reason=reason, older_than=older_than, newer_than=newer_than, limit=limit
            )
        except KizenSyncError as exc:
            outcome.fail(exc, sync)
            outcome.finish()
    if not as_json:
        from kizen_sync.render import failure_groups_table, open_failures_table

        out = _out()
        out.print(listing.headline, markup=False)
        if listing.rows:
            out.print(failure_groups_table(listing.groups))
            out.print(open_failures_table(listing.rows))
    from kizen_sync.output import failures_entry

    outcome.finish(**failures_entry(listing))


@cli.command()
@config_option
@click.option(
    "--offline", is_flag=True, help="Check the file and the warehouse only, not Kizen's schema."
)
@json_option
@logging_options
def validate(config: Path, offline: bool, as_json: bool) -> None:
    """Check the whole sync file (models, warehouse columns, Kizen schema); list every problem."""
    from kizen_sync.engine.validate import describe, validate_file

    outcome = Outcome("validate", as_json)
    try:
        problems = validate_file(config, check_kizen=not offline)
    except KizenSyncError as exc:
        outcome.fail(exc)
        outcome.finish(valid=False, problems=[])
    if problems:
        outcome.raise_to(ExitStatus.INVALID)
    if not as_json:
        out = _out()
        if problems:
            out.print(f"{config}: {len(problems)} problem(s)", markup=False)
            for p in problems:
                out.print(f"  {p.key}: {p.message}", markup=False, soft_wrap=True)
        else:
            what = "file and warehouse" if offline else "file, warehouse and Kizen schema"
            out.print(f"{config}: valid ({what} checked)", markup=False)
    outcome.finish(**describe(problems))


@cli.command()
@config_option
@sync_option
@json_option
@logging_options
def check(config: Path, syncs: tuple[str, ...], as_json: bool) -> None:
    """Pre-flight check of the Kizen account and the warehouse; writes nothing.

    Checks reachability and TLS, the credentials (401 vs 403), each sync's object, mapped
    fields, options and tags, reading records, the warehouse connection, sources and columns,
    and the right to create the state tables. Exit 0 only when a run could succeed (warnings
    allowed), 2 when the file or the account has a problem; with ``--json`` stdout holds
    exactly one JSON document (:mod:`kizen_sync.preflight.results`), whatever happens.
    """
    from kizen_sync.config import load_config
    from kizen_sync.preflight import Check, CheckReport, Status
    from kizen_sync.preflight.project import check_project

    def problems(error: ConfigError, fix: str) -> CheckReport:
        return CheckReport(
            [
                Check("file", "sync file", Status.FAIL, str(p), fix, key=p.key)
                for p in error.problems
            ]
        )

    try:
        project = load_config(config)
    except ConfigError as exc:
        report = problems(exc, "fix the sync file")
    else:
        try:
            report = check_project(project, list(syncs) or None)
        except ConfigError as exc:  # only a --sync that names no sync of the file
            report = problems(exc, "pass --sync a sync name of the file, or leave it out")
    if as_json:
        from kizen_sync.output import document, dumps

        # The envelope every --json document has (kizen_sync, command, exit_status, errors).
        click.echo(dumps(document("check", report.exit_status, **report.as_json())))
    else:
        from kizen_sync.render import check_table

        out = _out()
        out.print(check_table(report))
        out.print(
            "A run could succeed."
            if report.ok
            else f"{len(report.failures)} problem(s): a run would fail. Fix them and check again."
        )
    raise SystemExit(report.exit_status)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="kizen-sync")
