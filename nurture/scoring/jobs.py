"""Scoring's RQ jobs: ids in, own app context, safe to run twice."""

from __future__ import annotations

import logging

import sqlalchemy as sa

from app import outbox
from app.db import db
from app.jobs import JobTimeout, job
from app.leads.models import Event
from nurture.scoring import incremental, rebuild, service

log = logging.getLogger(__name__)


@job
def score_lead(lead_id: int) -> None:
    """Rescore one lead from its events (the incremental path)."""
    incremental.release(lead_id)
    service.score_lead(lead_id)
    db.session.commit()
    outbox.dispatch_committed()


@job
def score_leads(lead_ids: list[int]) -> int:
    """Rescore these leads (the incremental path: the leads of one commit, e.g. a chunk of
    nurture sends), each in a transaction of its own. One lead that fails does not stop the
    others; the job still fails afterwards, naming them (the sweep rescores them too)."""
    incremental.release(*lead_ids)
    failed = []
    for lead_id in lead_ids:
        try:
            service.score_lead(lead_id)
            db.session.commit()
        except JobTimeout:  # the job's time is up: the sweep rescores the rest
            raise
        except Exception:
            log.exception("scoring lead %s failed", lead_id)
            db.session.rollback()
            failed.append(lead_id)
            continue
        outbox.dispatch_committed()
    if failed:
        raise RuntimeError(f"scoring failed for leads {failed}")
    return len(lead_ids)


@job
def sweep(limit: int = 500) -> int:
    """Periodic safety net: rescore leads whose newest human event their score has not seen
    (a job Redis lost, an enqueue that failed). Returns how many leads were rescored."""
    newest = db.session.scalar(sa.select(sa.func.max(Event.id))) or 0
    floor, candidate = incremental.sweep_floor()
    lead_ids = incremental.stale_lead_ids(floor, limit)
    for lead_id in lead_ids:
        service.score_lead(lead_id)
        db.session.commit()
        outbox.dispatch_committed()
    if len(lead_ids) < limit:
        incremental.set_sweep_floor(max(floor, candidate), newest)
    return len(lead_ids)


@job
def rebuild_all() -> int:
    """Rescore every lead (after a rules change saved in the admin)."""
    stats = rebuild.rebuild()
    log.info("rescored %s leads with rules v%s; %s moved to MQL", stats.leads, stats.version,
             stats.promoted)
    return stats.leads
