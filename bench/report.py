"""Results: one :class:`Section` per part, printed as rich tables and written as JSON.

Every figure in a section comes from the run that printed it; targets are evaluated from the
same figures (``met`` is ``None`` when a part did not run far enough to judge).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

__all__ = ["Section", "Target", "print_section", "print_targets", "write_json"]


@dataclass
class Target:
    """One goal of the issue and what this run measured against it."""

    goal: str
    measured: str
    met: bool | None


@dataclass
class Section:
    """One part of the bench.

    Attributes:
        name: the ``--only`` name.
        title: heading of its table.
        columns: ``(key, header)`` pairs; rows are dicts keyed by ``key``.
        rows: the measured rows.
        targets: goals judged from the rows.
        notes: how it was measured (printed under the table, kept in the JSON).
        extra: further figures for the JSON only (per-route counts, raw worker output).
    """

    name: str
    title: str
    columns: list[tuple[str, str]]
    rows: list[dict[str, Any]] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if value == 0:
            return "0"
        if abs(value) >= 100:
            return f"{value:,.0f}"
        if abs(value) >= 10:
            return f"{value:.1f}"
        return f"{value:.3g}" if abs(value) < 1 else f"{value:.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def print_section(console: Console, section: Section) -> None:
    """The section's table, its notes, and its error if it failed."""
    table = Table(title=section.title, title_justify="left", show_lines=False)
    for key, header in section.columns:
        table.add_column(header, justify="left" if key in ("setting", "tool", "what") else "right")
    for row in section.rows:
        table.add_row(*(_cell(row.get(key)) for key, _ in section.columns))
    console.print(table)
    for note in section.notes:
        console.print(f"  [dim]{note}[/dim]")
    if section.error:
        console.print(f"  [red]failed: {section.error}[/red]")


def print_targets(console: Console, sections: list[Section]) -> None:
    """All targets of the run in one table: goal, measured, met."""
    table = Table(title="Targets", title_justify="left")
    for header in ("part", "goal", "measured", "met"):
        table.add_column(header)
    for section in sections:
        for target in section.targets:
            met = {True: "[green]met[/green]", False: "[red]missed[/red]", None: "n/a"}
            table.add_row(section.name, target.goal, target.measured, met[target.met])
    console.print(table)


def write_json(
    path: Path, machine: dict[str, Any], sizes: dict[str, Any], sections: list[Section]
) -> None:
    """``{"machine", "sizes", "sections": {name: {...}}}`` to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "machine": machine,
        "sizes": sizes,
        "sections": {s.name: asdict(s) for s in sections},
    }
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n")
