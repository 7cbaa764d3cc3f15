"""Did an executed action work? The alert resolved and health was OK within the window.

After an action ran, the operator watches its alert for ``operator_validation_minutes``: a
later resolved notification from Alertmanager and a health run reading OK after the action,
both inside the window, make it *effective*; the window closing without both makes it
*ineffective*. An alert that had resolved before the action ran says nothing about it: the
outcome is validated with ``effective`` None. Pure: the operator's poll hands in what it read.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

__all__ = ["Verdict", "judge"]


@dataclass(frozen=True, slots=True)
class Verdict:
    """An action's outcome: ``validated`` once decided, ``effective`` True, False or None."""

    validated: bool
    effective: bool | None
    detail: str

    def to_dict(self) -> dict[str, Any]:
        """The API's ``outcome`` object."""
        return {"validated": self.validated, "effective": self.effective, "detail": self.detail}


def judge(
    *,
    executed_at: datetime,
    window: timedelta,
    now: datetime,
    resolved_at: datetime | None,
    health_ok_at: datetime | None,
) -> Verdict:
    """The outcome of an action executed at ``executed_at``, as known at ``now``.

    ``resolved_at`` is when its alert resolved (None while it fires), ``health_ok_at`` when a
    health run read OK at or after the action (None if none has).
    """
    deadline = executed_at + window
    if resolved_at is not None and resolved_at < executed_at:
        return Verdict(True, None, "the alert had resolved before the action ran")
    resolved = resolved_at is not None and resolved_at <= deadline
    healthy = health_ok_at is not None and executed_at <= health_ok_at <= deadline
    if resolved and healthy:
        return Verdict(True, True, "the alert resolved and health returned OK")
    missing = [
        what
        for what, seen in (("the alert did not resolve", resolved), ("health was not OK", healthy))
        if not seen
    ]
    if now >= deadline:
        minutes = window.total_seconds() / 60
        return Verdict(True, False, f"within {minutes:g} min " + " and ".join(missing))
    return Verdict(False, None, f"waiting until {deadline.isoformat()}: " + ", ".join(missing))
