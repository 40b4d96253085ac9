"""The ``kizen-sync check`` command: the pre-flight report as a table, or as one JSON document.

Exit status: 0 when a run could succeed (warnings allowed), 2 when the sync file or the
account has a problem (a failed check, or a file that does not load). With ``--json`` stdout
holds exactly one JSON document (:mod:`kizen_sync.preflight.results`), whatever happens.
"""

from __future__ import annotations

from pathlib import Path

import click

from kizen_sync.cli import config_option, logging_options, sync_option
from kizen_sync.config import load_config
from kizen_sync.errors import ConfigError
from kizen_sync.preflight.results import Check, CheckReport, Status

__all__ = ["check"]

_STYLE = {Status.OK: "green", Status.WARN: "yellow", Status.FAIL: "bold red", Status.SKIPPED: "dim"}


def _print_table(report: CheckReport) -> None:
    from rich.markup import escape
    from rich.table import Table

    from kizen_sync.render import make_console

    table = Table(title="Pre-flight check (nothing was written)", title_justify="left")
    for name in ("sync", "area", "check", "status", "detail", "fix"):
        table.add_column(name, overflow="fold")
    for c in report.checks:
        table.add_row(
            c.sync or "-",
            c.area,
            c.check,
            f"[{_STYLE[c.status]}]{c.status.value}[/]",
            escape(c.detail),
            escape(c.fix),
        )
    out = make_console(highlight=False, soft_wrap=False)
    out.print(table)
    failed = len(report.failures)
    out.print(
        "A run could succeed."
        if report.ok
        else f"{failed} problem(s): a run would fail. Fix them and check again."
    )


@click.command("check")
@config_option
@sync_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document instead of a table.")
@logging_options
def check(config: Path, syncs: tuple[str, ...], as_json: bool) -> None:
    """Pre-flight check of the Kizen account and the warehouse; writes nothing.

    Checks reachability and TLS, the credentials (401 vs 403), each sync's object, mapped
    fields, options and tags, reading records, the warehouse connection, sources and columns,
    and the right to create the state tables. Exit 0 only when a run could succeed.
    """
    from kizen_sync.preflight.project import check_project

    try:
        report = check_project(load_config(config), list(syncs) or None)
    except ConfigError as exc:
        report = CheckReport(
            [
                Check("file", "sync file", Status.FAIL, str(p), "fix the sync file", key=p.key)
                for p in exc.problems
            ]
        )
    if as_json:
        from kizen_sync.output import document, dumps

        # The envelope every --json document has (kizen_sync, command, exit_status, errors).
        click.echo(dumps(document("check", report.exit_status, **report.as_json())))
    else:
        _print_table(report)
    raise SystemExit(report.exit_status)
