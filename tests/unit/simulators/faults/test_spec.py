"""The targeting vocabulary every fault spec shares: times, probability, a target glob."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import pytest
from pydantic import Field, ValidationError

from bastion.simulators.faults.options import OptionTable
from bastion.simulators.faults.spec import BaseFaultSpec
from bastion.simulators.llm import LLMFault
from bastion.simulators.paper import FaultSpec


class PathFault(BaseFaultSpec):
    """A spec for a made-up simulator whose requests are named by path."""

    TARGET: ClassVar[str] = "path"
    OPTIONS: ClassVar[OptionTable] = {
        "fail": (frozenset(), frozenset({"code"})),
        "delay": (frozenset({"seconds"}), frozenset({"seconds"})),
    }

    kind: Literal["fail", "delay"]
    path: str = Field("*", min_length=1)
    code: int | None = None
    seconds: float | None = None


@pytest.mark.parametrize(
    ("count", "shown"), [(3, '"times": 3'), (None, '"times": null'), ("x", '"times": "x"')]
)
@pytest.mark.parametrize("spec_type", [PathFault, FaultSpec, LLMFault])
def test_count_is_refused_with_a_message_naming_times(
    spec_type: type[BaseFaultSpec], count: Any, shown: str
) -> None:
    """The fake LLM server's old ``count`` fails loudly on every simulator, saying what to send."""
    with pytest.raises(ValidationError, match=f"count is now times .*send {shown}"):
        spec_type.model_validate({"kind": "delay", "seconds": 1.0, "count": count})


@pytest.mark.parametrize(
    ("data", "times"),
    [
        ({"kind": "fail"}, 1),
        ({"kind": "fail", "probability": 0.1}, None),
        ({"kind": "fail", "probability": 0.1, "times": 3}, 3),
        ({"kind": "fail", "probability": 0.1, "times": None}, None),
        ({"kind": "fail", "times": None}, None),
    ],
)
def test_times_defaults_to_once_and_a_probability_alone_to_until_cleared(
    data: dict[str, Any], times: int | None
) -> None:
    """A next-N fault fires once by default; a probabilistic one until cleared."""
    assert PathFault.model_validate(data).times == times


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"kind": "delay"}, "a delay fault needs seconds"),
        ({"kind": "fail", "seconds": 1.0}, "seconds does not apply to a fail fault"),
        ({"kind": "fail", "times": 0}, "times"),
        ({"kind": "fail", "probability": 0}, "probability"),
        ({"kind": "fail", "probability": 1.5}, "probability"),
        ({"kind": "fail", "times": "2"}, "times"),
        ({"kind": "fail", "colour": "red"}, "colour"),
    ],
)
def test_a_spec_that_cannot_mean_one_thing_is_refused(data: dict[str, Any], message: str) -> None:
    """Bad targeting or options that do not fit the kind are refused, naming the problem."""
    with pytest.raises(ValidationError, match=message):
        PathFault.model_validate(data)


def test_targeting_fields_are_not_options_of_a_kind() -> None:
    """``path``, ``times`` and ``probability`` go with any kind: they say where and how often."""
    spec = PathFault(kind="fail", path="/v1/*", times=2, probability=0.5)
    assert (spec.target, spec.matches("/v1/chat"), spec.matches("/v2/chat")) == (
        "/v1/*",
        True,
        False,
    )


@pytest.mark.parametrize(("spec_type", "target"), [(FaultSpec, "method"), (LLMFault, "model")])
def test_both_simulators_speak_the_same_targeting_vocabulary(
    spec_type: type[BaseFaultSpec], target: str
) -> None:
    """Same names, types and defaults for times and probability; the target glob defaults to *."""
    fields = spec_type.model_fields
    for name, field in BaseFaultSpec.model_fields.items():
        if name != "kind":
            assert (fields[name].annotation, fields[name].default) == (
                field.annotation,
                field.default,
            )
    assert (spec_type.TARGET, fields[target].default) == (target, "*")
