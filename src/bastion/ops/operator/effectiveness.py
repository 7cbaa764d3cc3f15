"""How well each action worked, per alert type: what ``bastion operator actions`` prints.

One row per (alert name, action): how many times it ran, failed to run, and, of those that
ran, how many validation found effective, ineffective, undecided (``effective`` None: the
alert had resolved before it ran) or still pending. Pure: it tallies the store's records.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

from bastion.store.alerts import ActionRecord

__all__ = ["Effectiveness", "tally"]


@dataclass(slots=True)
class Effectiveness:
    """The record of one action against one alert type."""

    alertname: str
    action: str
    executed: int = 0
    failed: int = 0
    effective: int = 0
    ineffective: int = 0
    undecided: int = 0
    pending: int = 0

    @property
    def rate(self) -> float | None:
        """Effective among the validated ones that could tell; None before any."""
        judged = self.effective + self.ineffective
        return None if judged == 0 else self.effective / judged

    def to_dict(self) -> dict[str, Any]:
        """JSON for ``--json``: the counts and the rate."""
        return {**asdict(self), "effective_rate": self.rate}


def tally(rows: Iterable[tuple[str, ActionRecord]]) -> list[Effectiveness]:
    """Rows sorted by alert name then action."""
    table: dict[tuple[str, str], Effectiveness] = {}
    for alertname, action in rows:
        row = table.setdefault((alertname, action.action), Effectiveness(alertname, action.action))
        if action.status == "failed":
            row.failed += 1
            continue
        row.executed += 1
        outcome = action.outcome or {}
        if not outcome.get("validated"):
            row.pending += 1
        elif outcome.get("effective") is True:
            row.effective += 1
        elif outcome.get("effective") is False:
            row.ineffective += 1
        else:
            row.undecided += 1
    return [table[key] for key in sorted(table)]
