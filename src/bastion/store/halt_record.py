"""One halt as the store records it, a value the halt path reads without the database layer.

It lives apart from :mod:`bastion.store.halts` so that :mod:`bastion.guard.halt` and the
emergency store (:mod:`bastion.store.emergency`) can name it without importing SQLAlchemy.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

__all__ = ["HaltRecord"]


@dataclass(frozen=True, slots=True)
class HaltRecord:
    """One halt: who tripped it and why, and, once resumed, who resumed it and why."""

    id: int
    tripped_at: datetime
    reason: str
    who: str
    detail: dict[str, Any]
    resumed_at: datetime | None
    resumed_by: str | None
    resume_reason: str | None
    state: str = "halted"
    """``halted`` (nothing but cancels) or ``reducing`` (only orders that shrink a position)."""
    until: datetime | None = None
    """When the halt lapses; None: until a person resumes."""
    scope: str = "host"
    """``host`` (one data directory's flag) or ``fleet`` (every agent on the store follows)."""

    @property
    def active(self) -> bool:
        """True until someone resumes it."""
        return self.resumed_at is None
