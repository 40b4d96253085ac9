"""What a pre-flight check found: one line per check, with a fix for each problem.

The JSON form (:meth:`CheckReport.as_json`) is a stable contract for scripts and CI::

    {"ok": bool, "exit_status": 0 | 2,
     "checks": [{"sync": str | null, "area": "kizen" | "warehouse", "check": str,
                 "status": "ok" | "warn" | "fail" | "skipped", "detail": str, "fix": str,
                 "key": str}]}

``sync`` is null for checks of the whole file (reachability, credentials, the warehouse
connection, the state tables); ``key`` is the sync file key at fault (``syncs[0].object``), or
empty. ``ok`` is true exactly when no check failed: a run could
succeed. New keys may be added; existing ones keep their meaning.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

__all__ = ["EXIT_OK", "EXIT_PROBLEMS", "Check", "CheckReport", "Status"]

#: Exit status when a run could succeed.
EXIT_OK = 0
#: Exit status when the file or the account has a problem a run would hit.
EXIT_PROBLEMS = 2


class Status(enum.StrEnum):
    """How one check went."""

    OK = "ok"
    WARN = "warn"  # a run can succeed, but something deserves a look
    FAIL = "fail"  # a run would fail (or would not start)
    SKIPPED = "skipped"  # not checked, because an earlier check failed


@dataclass(frozen=True)
class Check:
    """One check: what was checked, how it went, and how to fix it."""

    area: str
    check: str
    status: Status
    detail: str
    fix: str = ""
    sync: str | None = None
    key: str = ""

    def as_dict(self) -> dict[str, Any]:
        """The JSON form of one check."""
        return {
            "sync": self.sync,
            "area": self.area,
            "check": self.check,
            "status": self.status.value,
            "detail": self.detail,
            "fix": self.fix,
            "key": self.key,
        }


@dataclass
class CheckReport:
    """Every check of one ``kizen-sync check``."""

    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when nothing failed: a run could succeed."""
        return not any(c.status is Status.FAIL for c in self.checks)

    @property
    def exit_status(self) -> int:
        """0 when a run could succeed, 2 when the file or the account has a problem."""
        return EXIT_OK if self.ok else EXIT_PROBLEMS

    @property
    def failures(self) -> list[Check]:
        """The failed checks."""
        return [c for c in self.checks if c.status is Status.FAIL]

    def as_json(self) -> dict[str, Any]:
        """The stable JSON document described in the module docstring."""
        return {
            "ok": self.ok,
            "exit_status": self.exit_status,
            "checks": [c.as_dict() for c in self.checks],
        }
