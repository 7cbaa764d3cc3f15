"""Decision traces: the NDJSON record of every run, and the redaction applied to it.

:class:`TraceWriter` appends one redacted line per event and :func:`read_trace` reads a trace
back, tolerating the torn last line a crash can leave. :class:`Redactor` is shared with logs and
the API so that nothing Bastion writes, logs or serves carries a secret.
"""

from bastion.trace.record import TraceWriter, read_trace
from bastion.trace.redact import REDACTED, Redactor

__all__ = ["REDACTED", "Redactor", "TraceWriter", "read_trace"]
