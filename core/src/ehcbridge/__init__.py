"""ehcbridge: runs the EHCP annual review cycle; plugins connect it to calendars, MIS and teams."""

from __future__ import annotations

import pluggy

__version__ = "0.1.0"

hookimpl = pluggy.HookimplMarker("ehcbridge")
"""Marker for plugin hook implementations: ``@hookimpl`` above ``def on_decision(event, ctx)``."""


class NotConfigured(Exception):
    """Raised by a plugin whose settings are missing: the delivery is skipped, not retried."""


class RetryLater(Exception):
    """Raised by a plugin for a temporary failure; the engine honours ``retry_after`` (seconds)."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Skipped(Exception):
    """Raised by a plugin when the event needs nothing from it (e.g. a reminder whose date has
    passed): the delivery is recorded as skipped with this message, not retried."""


class PermanentError(Exception):
    """Raised by a plugin for a failure retrying cannot fix: the delivery goes straight to dead."""


__all__ = ["NotConfigured", "PermanentError", "RetryLater", "Skipped", "__version__", "hookimpl"]
