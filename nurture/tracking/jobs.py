"""Tracking's RQ jobs (enqueued by dotted path; the web process never imports this module)."""

from __future__ import annotations

from app.jobs import job


@job
def flush() -> int:
    """Write buffered opens, clicks and visits to the database (periodic, every second)."""
    from nurture.tracking import writer

    return writer.flush()


@job
def check_spam_rate() -> str:
    """Warn, or pause sending, when the spam-report rate is too high (periodic); tell
    marketers by email."""
    from nurture.tracking import health

    state = health.check()
    health.notify(state)
    return state.level


@job
def score_leads(lead_ids: list[int]) -> int:
    """Ask scoring about the leads a webhook batch gave new human events (coalesced there)."""
    from nurture.tracking import store

    return store.score_leads(lead_ids)
