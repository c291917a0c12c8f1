"""ehcbridge: runs the EHCP annual review cycle and lets plugins connect it to calendars, MIS and teams."""

from __future__ import annotations

import pluggy

__version__ = "0.1.0"

hookimpl = pluggy.HookimplMarker("ehcbridge")
"""Marker for plugin hook implementations: ``@hookimpl def on_review_scheduled(event, ctx): ...``."""


class NotConfigured(Exception):  # noqa: N818 - reads as a status, as in "raise NotConfigured(...)"
    """Raised by a plugin when its settings are missing: the delivery is skipped, not retried."""


class RetryLater(Exception):  # noqa: N818
    """Raised by a plugin for a temporary failure; ``retry_after`` (seconds) is honoured by the engine."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentError(Exception):
    """Raised by a plugin for a failure that retrying cannot fix: the delivery goes straight to dead."""


__all__ = ["NotConfigured", "PermanentError", "RetryLater", "__version__", "hookimpl"]
