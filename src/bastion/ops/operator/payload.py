"""Alertmanager's webhook payload (version 4), validated at the door.

The shape is Alertmanager's ``notify/webhook`` message (see ``docs/configuration.md``,
``<webhook_config>``): a group of alerts with the group's labels, each alert with its labels,
annotations, ``startsAt``/``endsAt``, ``generatorURL`` and ``fingerprint``. Unknown keys are
ignored, because newer servers add some (``notification_reason`` in 0.32, ``routeLabels`` in
0.34) and Debian's 0.25 sends neither. What is present is checked strictly: a payload that is
not version 4, an alert without an ``alertname`` label or a fingerprint that is not 16 hex
digits is refused with a 422 naming the field, so a misconfigured sender learns why.

A firing alert's ``endsAt`` is Go's zero time, ``0001-01-01T00:00:00Z``; :attr:`ends_at`
reads it as None.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

__all__ = ["MAX_ALERTS", "AlertmanagerAlert", "AlertmanagerWebhook"]

MAX_ALERTS = 1000
"""The most alerts one notification may carry (Alertmanager's ``max_alerts`` caps its side)."""

_LABELS = dict[str, str]


class AlertmanagerAlert(BaseModel):
    """One alert of a notification."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    status: Literal["firing", "resolved"]
    labels: _LABELS
    annotations: _LABELS = Field(default_factory=dict)
    starts_at: AwareDatetime = Field(alias="startsAt")
    ends_at_raw: AwareDatetime | None = Field(None, alias="endsAt")
    generator_url: str = Field("", alias="generatorURL", max_length=8000)
    fingerprint: str = Field(pattern=r"^[0-9a-f]{16}$")

    @field_validator("labels")
    @classmethod
    def _named(cls, labels: _LABELS) -> _LABELS:
        if not labels.get("alertname"):
            raise ValueError("an alert needs an alertname label")
        return labels

    @property
    def alertname(self) -> str:
        """The alert's name: its ``alertname`` label."""
        return self.labels["alertname"]

    @property
    def ends_at(self) -> datetime | None:
        """When it resolved; None while firing (Go's zero time)."""
        value = self.ends_at_raw
        return None if value is None or value.year <= 1 else value


class AlertmanagerWebhook(BaseModel):
    """One notification: a group of alerts and what they have in common."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    version: Literal["4"]
    group_key: str = Field("", alias="groupKey")
    truncated_alerts: int = Field(0, alias="truncatedAlerts", ge=0)
    status: Literal["firing", "resolved"]
    receiver: str = ""
    group_labels: _LABELS = Field(default_factory=dict, alias="groupLabels")
    common_labels: _LABELS = Field(default_factory=dict, alias="commonLabels")
    common_annotations: _LABELS = Field(default_factory=dict, alias="commonAnnotations")
    external_url: str = Field("", alias="externalURL")
    alerts: list[AlertmanagerAlert] = Field(min_length=1, max_length=MAX_ALERTS)
