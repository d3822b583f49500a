"""Per-step numbers: the ledger says sent/failed; provider and tracking events (whose data
carries the `send_id`) say delivered, opened, clicked, unsubscribed, bounced. Each counts
distinct sends, so five opens of one email are one open; machine events are left out."""

from __future__ import annotations

import sqlalchemy as sa

from app.db import db
from app.leads.models import Event
from nurture.models import Send, Sequence

EVENT_COLUMNS = {"email_delivered": "delivered", "email_opened": "opened",
                 "email_clicked": "clicked", "unsubscribed": "unsubscribed",
                 "bounced": "bounced"}
COLUMNS = ["sent", "failed", *EVENT_COLUMNS.values()]


def step_stats(sequence: Sequence) -> dict[int, dict[str, int]]:
    step_ids = [step.id for step in sequence.steps]
    stats = {step_id: dict.fromkeys(COLUMNS, 0) for step_id in step_ids}
    if not step_ids:
        return stats
    ledger = db.session.execute(
        sa.select(Send.step_id, Send.status, sa.func.count())
        .where(Send.step_id.in_(step_ids)).group_by(Send.step_id, Send.status)
    ).all()
    for step_id, status, count in ledger:
        if status in ("sent", "failed"):
            stats[step_id][status] = count
    events = db.session.execute(
        sa.select(Send.step_id, Event.type, sa.func.count(sa.distinct(Send.id)))
        .join(Send, sa.and_(Event.lead_id == Send.lead_id,
                            Event.send_id == Send.id))
        .where(Send.step_id.in_(step_ids), Event.type.in_(list(EVENT_COLUMNS)),
               Event.is_bot.is_(False))
        .group_by(Send.step_id, Event.type)
    ).all()
    for step_id, event_type, count in events:
        stats[step_id][EVENT_COLUMNS[event_type]] = count
    return stats
