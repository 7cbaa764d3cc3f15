"""The runtime's status as the console, the API and ``bastion status`` show it.

A frozen snapshot replaced (never mutated) by the loop after each change, so a reader in another
task always sees one consistent picture without locks.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from bastion.market import Order, Position

__all__ = ["HaltState", "RuntimeStatus"]

State = Literal["starting", "running", "halting", "halted", "stopped"]


class TradingState(StrEnum):
    """What may go out: everything, only orders that shrink a position, or nothing but cancels."""

    ACTIVE = "active"
    REDUCING = "reducing"
    """Only reduce-only orders (flattening, after a daily-loss trip); resting orders cancelled."""
    HALTED = "halted"
    """Nothing but cancels."""


@dataclass(frozen=True, slots=True)
class HaltState:
    """What the flag file says: why trading stopped, who stopped it and when.

    ``enforced`` is True once resting orders were confirmed cancelled under this halt (by the
    process that tripped it or by the running loop): until then the system is *halting*, no new
    order goes out but orders may still rest on the book.
    """

    reason: str
    who: str
    when: str
    enforced: bool = False
    state: TradingState = TradingState.HALTED
    """HALTED or REDUCING (an active halt is never ACTIVE)."""
    until: str | None = None
    """When the halt lapses (ISO UTC); None: until a person resumes."""

    @property
    def key(self) -> tuple[str, str, str]:
        """Which halt this is, whatever is known about its enforcement."""
        return (self.reason, self.who, self.when)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class RuntimeStatus:
    """What a person asks first: is it trading, and if not, why; what does it hold."""

    run_id: str
    agent: str
    currency: str
    dry_run: bool
    state: State = "starting"
    halt: HaltState | None = None
    last_step: int = 0
    last_step_at: str | None = None
    last_outcome: str | None = None
    last_detail: str = ""
    equity: float | None = None
    balance: float | None = None
    index_price: float | None = None
    positions: tuple[Position, ...] = ()
    open_orders: tuple[Order, ...] = ()
    orders_sent: int = 0
    orders_filled: int = 0
    phase: str | None = None
    """Where the step is: starting, deciding, reviewing, sending, waiting (between steps),
    finished (:mod:`bastion.runtime.status_sink` says which event moves it)."""
    max_steps: int | None = None
    """The run's step bound, None when it runs until stopped."""

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape of ``/api/status``."""
        return {
            "run_id": self.run_id,
            "agent": self.agent,
            "state": self.state,
            "halted": self.halt is not None,
            "halt_reason": self.halt.reason if self.halt else None,
            "halt": self.halt.to_dict() if self.halt else None,
            "dry_run": self.dry_run,
            "last_step": self.last_step,
            "last_step_at": self.last_step_at,
            "last_outcome": self.last_outcome,
            "last_detail": self.last_detail,
            "currency": self.currency,
            "equity": self.equity,
            "balance": self.balance,
            "index_price": self.index_price,
            "orders_sent": self.orders_sent,
            "orders_filled": self.orders_filled,
            "phase": self.phase,
            "max_steps": self.max_steps,
            "positions": [
                {
                    "instrument": p.instrument_name,
                    "size": p.size,
                    "direction": p.direction,
                    "average_price": p.average_price,
                    "mark_price": p.mark_price,
                    "floating_profit_loss": p.floating_profit_loss,
                }
                for p in self.positions
            ],
            "open_orders": [
                {
                    "order_id": o.order_id,
                    "instrument": o.instrument_name,
                    "direction": o.direction,
                    "amount": o.amount,
                    "filled_amount": o.filled_amount,
                    "price": o.price,
                    "label": o.label,
                }
                for o in self.open_orders
            ],
        }
