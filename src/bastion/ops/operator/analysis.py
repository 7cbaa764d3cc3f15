"""What the operator concludes about an alert, from its rules or from the LLM: one shape.

:class:`Analysis` is the answer the LLM is asked for, with exactly these fields, and the one
the rules produce, so the console and the audit trail read both alike. It validates strictly:
an LLM answer with a missing, extra or mistyped field is not an analysis (the rules stand in,
see :mod:`bastion.ops.operator.analyst`). ``recommended_actions`` may name anything; only the
names in :data:`ACTIONS` are ever proposed (:mod:`bastion.ops.operator.actions`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["ACTIONS", "ActionName", "Analysed", "Analysis", "Source"]

ActionName = Literal["healthcheck", "halt", "flatten", "open_approval", "silence"]
"""The operator's fixed set of actions; nothing else can be proposed or run."""
ACTIONS: tuple[ActionName, ...] = get_args(ActionName)

Source = Literal["rules", "llm"]


class Analysis(BaseModel):
    """An alert's analysis: is something wrong, how badly, what kind, what to do."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    issue_detected: bool
    severity: str = Field(min_length=1, max_length=32)
    issue_type: str = Field(min_length=1, max_length=64)
    description: str = Field(max_length=4000)
    recommended_actions: list[str] = Field(max_length=10)
    confidence: float = Field(ge=0.0, le=1.0)
    requires_immediate_action: bool

    def proposed(self) -> list[ActionName]:
        """The recommended actions that are in the fixed set, in order, each once."""
        chosen: list[ActionName] = []
        for name in self.recommended_actions:
            for action in ACTIONS:
                if name.strip().lower() == action and action not in chosen:
                    chosen.append(action)
        return chosen

    @classmethod
    def json_schema_for_llm(cls) -> dict[str, Any]:
        """The JSON schema the LLM is asked to answer in (OpenAI structured outputs' subset)."""
        return {
            "type": "object",
            "additionalProperties": False,
            "required": list(cls.model_fields),
            "properties": {
                "issue_detected": {"type": "boolean"},
                "severity": {"type": "string", "enum": ["critical", "high", "medium", "low"]},
                "issue_type": {"type": "string"},
                "description": {"type": "string"},
                "recommended_actions": {
                    "type": "array",
                    "items": {"type": "string", "enum": list(ACTIONS)},
                },
                "confidence": {"type": "number"},
                "requires_immediate_action": {"type": "boolean"},
            },
        }


@dataclass(frozen=True, slots=True)
class Analysed:
    """An analysis and where it came from; ``note`` says why the rules stood in for the LLM."""

    analysis: Analysis
    source: Source
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The API's ``analysis`` object: the source beside the answer's fields."""
        return {"source": self.source, **self.analysis.model_dump()}
