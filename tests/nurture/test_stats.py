"""Per-step numbers: the ledger for sent / failed, events (people only) for the rest."""

from app.db import db
from app.leads.models import Lead
from app.leads.service import record_event
from nurture import engine
from nurture.enrollment import enroll
from nurture.models import Send
from nurture.stats import step_stats
from tests.nurture.factories import drain, email_step, make_lead, make_sequence, sends


def test_step_stats_count_distinct_sends_and_leave_machines_out(app):
    sequence = make_sequence(email_step(), email_step(subject="Two"))
    first_step, second_step = sequence.steps
    leads = [make_lead(f"l{n}@example.com") for n in range(3)]
    for lead in leads:
        enrollment = enroll(lead.id, sequence.id, "test")
        db.session.commit()
        engine.kick([enrollment.id])
    drain()
    first = [s for s in sends() if s.step_id == first_step.id]
    assert len(first) == 3
    a, b, c = first

    def event(send: Send, type: str, bot: bool = False) -> None:
        record_event(db.session.get(Lead, send.lead_id), type, data={"send_id": str(send.id)},
                     is_bot=bot, bot_reason="scanner" if bot else None)

    for send in (a, b, c):
        event(send, "email_delivered")
    event(a, "email_opened")
    event(a, "email_opened")  # twice: still one opened send
    event(b, "email_opened", bot=True)  # a privacy proxy
    event(b, "email_clicked", bot=True)  # a link scanner
    event(c, "email_clicked")
    event(c, "unsubscribed")
    db.session.get(Send, b.id).status = "failed"
    db.session.commit()

    stats = step_stats(sequence)
    assert stats[first_step.id] == {"sent": 2, "failed": 1, "delivered": 3, "opened": 1,
                                    "clicked": 1, "unsubscribed": 1, "bounced": 0}
    assert stats[second_step.id]["sent"] == 3 and stats[second_step.id]["opened"] == 0
