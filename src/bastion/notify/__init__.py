"""Alerts out: the run's alerts delivered to people through webhooks (generic JSON, Slack).

The package sits on the adapters floor, beside ``exchange/``, ``llm/`` and ``tools/``: a webhook
is one more way out of the process, so every delivery goes through the resilience choke point
below it (``calls``), and the alerts it reads are ground-floor journal events and the records
floor's :class:`~bastion.telemetry.alert.Alert`. The design plan put "alert delivery" in
``telemetry/``, but that floor is below ``resilience/``, which delivery must call.

- :mod:`.notification`: :class:`Notification` and :func:`notification_for`, the journal's
  alerts, halts, budget crossings, breaker changes and approval requests in one shape;
- :mod:`.dispatcher`: :class:`Dispatcher`, the pure rules (dedupe, group window, repeat
  interval, resolve);
- :mod:`.outbox`: :class:`Outbox`, one target's bounded queue;
- :mod:`.message`: the generic JSON and Slack bodies;
- :mod:`.webhook`: :class:`WebhookTarget`, one URL (a secret) and how its deliveries went;
- :mod:`.notifier`: :class:`Notifier`, the journal sink and its background delivery tasks.
"""

from bastion.notify.dispatcher import Dispatcher
from bastion.notify.message import Context, generic_body, slack_body, slack_escape
from bastion.notify.notification import Notification, Status, notification_for
from bastion.notify.notifier import Notifier, NotifierSettings
from bastion.notify.outbox import Outbox
from bastion.notify.webhook import WebhookTarget, masked

__all__ = [
    "Context",
    "Dispatcher",
    "Notification",
    "Notifier",
    "NotifierSettings",
    "Outbox",
    "Status",
    "WebhookTarget",
    "generic_body",
    "masked",
    "notification_for",
    "slack_body",
    "slack_escape",
]
