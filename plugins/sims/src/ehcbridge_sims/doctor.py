"""``ehcbridge doctor`` lines for the MIS sync; never raises."""

from __future__ import annotations

import os
from typing import Any

from ehcbridge.events import CheckResult, HookContext


def run_checks(ctx: HookContext, client: Any = None) -> list[CheckResult]:
    """Check the aggregator API token, the drop folder and report the last sync."""
    from .sync import PUPIL, SCHOOL, _settings

    settings = _settings(ctx)
    results: list[CheckResult] = []
    if settings.source == "api":
        results += _check_api(settings, client)
    drop = settings.drop_dir
    if drop is None:
        if settings.source == "ctf":
            results.append(CheckResult(
                "sims: drop folder", "not configured",
                "set drop_dir in the plugins.sims settings, "
                "or run `ehcbridge sims sync --file`"))
    elif not drop.is_dir():
        results.append(CheckResult("sims: drop folder", "failed", f"{drop} is not a folder"))
    elif not os.access(drop, os.W_OK):
        results.append(CheckResult("sims: drop folder", "failed", f"{drop} is not writable"))
    else:
        results.append(CheckResult("sims: drop folder", "ok", str(drop)))
    try:
        pupils = [v for _, v in ctx.store.state_items(PUPIL) if not v.get("left")]
        schools = ctx.store.state_items(SCHOOL)
    except Exception as exc:  # the store being down is a doctor finding, not a crash
        results.append(CheckResult("sims: snapshot", "failed", type(exc).__name__))
        return results
    status = "ok" if pupils else "warning"
    detail = f"{len(pupils)} pupils on roll from {len(schools)} school(s)"
    if not pupils:
        detail += "; no sync has run yet"
    results.append(CheckResult("sims: snapshot", status, detail))
    return results


def _check_api(settings: Any, client: Any) -> list[CheckResult]:
    from .api import AggregatorClient, ApiError

    if not settings.api_configured:
        return [CheckResult(
            "sims: MIS API", "not configured",
            "set api_url, token and school_ids in the plugins.sims settings")]
    own = client is None
    if client is None:
        client = AggregatorClient(api_url=settings.api_url,
                                  token=settings.token.get_secret_value(),
                                  page_size=1, timeout=10.0, max_attempts=1)
    results = []
    try:
        for school_id in settings.school_ids:
            try:
                client.ping(school_id)
            except ApiError as exc:
                results.append(CheckResult(f"sims: MIS API school {school_id}", "failed",
                                           str(exc)))
            else:
                results.append(CheckResult(f"sims: MIS API school {school_id}", "ok",
                                           "students readable"))
    finally:
        if own:
            client.close()
    return results
