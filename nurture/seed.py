"""Demo data: an active sequence a newcomer can watch send after `make run`."""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa
from flask import current_app

from app.db import db, utcnow
from nurture.models import ALL_DAYS, Condition, Sequence, SequenceStatus, StepKind
from nurture.steps import add_step

DEMO_NAME = "Demo nurture"

WELCOME = """Hi {{ lead.first_name or "there" }},

Thanks for downloading our guide{% if lead.company %} for {{ lead.company }}{% endif %}.
Here are [three ideas to try this week](https://example.com/ideas).

The Kindling team"""

FOLLOW_UP = """Hi {{ lead.first_name or "there" }},

Glad the ideas were useful. Would a **15-minute call** help you put them to work?
[Pick a time](https://example.com/meet)."""


def seed_demo() -> list[str]:
    """Runs after the forms and campaigns seeders, so their demo form can trigger it."""
    sequence = db.session.scalar(sa.select(Sequence).where(Sequence.name == DEMO_NAME))
    if sequence is None:
        sequence = Sequence(name=DEMO_NAME, window_days=list(ALL_DAYS), window_start_hour=0,
                            window_end_hour=24, timezone="UTC", frequency_cap_hours=0,
                            exit_stages=["sql", "customer", "disqualified"])
        db.session.add(sequence)
        db.session.flush()
        add_step(sequence, StepKind.EMAIL, subject="Your guide, {{ lead.first_name }}",
                 body=WELCOME)
        add_step(sequence, StepKind.WAIT, wait_seconds=86400)
        branch = add_step(sequence, StepKind.BRANCH, condition=Condition.CLICKED_PREVIOUS.value)
        follow_up = add_step(sequence, StepKind.EMAIL, subject="A quick call?", body=FOLLOW_UP)
        goal = add_step(sequence, StepKind.GOAL)
        goal.goal_stages = ["mql"]
        branch.yes_step_id = follow_up.id
        branch.no_step_id = goal.id
        sequence.status = SequenceStatus.ACTIVE.value
    sequence.trigger_form_id = sequence.trigger_form_id or _demo_form_id()
    db.session.flush()
    sent = _email_history(sequence)
    db.session.commit()
    base = current_app.config["BASE_URL"]
    lines = [f"Nurture: “{DEMO_NAME}” ({sequence.status}) at {base}/admin/nurture/{sequence.id}"]
    if sent:
        lines.append(f"  {sent} demo emails sent in the past weeks, with people's and machines' "
                     f"opens and clicks: {base}/admin/reports/email")
    return lines


def _email_history(sequence: Sequence) -> int:
    """The leads who came through the demo form in earlier days got the sequence back then:
    finished enrollments, their ledger rows, and what happened to each email, as the tracking
    writer and SendGrid's events record it: people's opens and clicks, Apple's privacy proxy
    opening on arrival, a link scanner clicking every link. Leads scoring can still move
    (lead, recycled, ...) get sends, deliveries and machines' fetches only, so the demo's stages
    stay as seeded. Only leads that came through the sequence's own form, once."""
    from app.leads.models import Event, Lead
    from app.leads.service import record_event
    from forms.models import Submission
    from nurture.models import Enrollment, EnrollmentStatus, Send, SendStatus
    from nurture.scoring.service import ELIGIBLE_STAGES

    emails = [s for s in sequence.steps if s.kind == StepKind.EMAIL.value]
    if len(emails) < 2:
        return 0
    welcome, follow_up = emails[0], emails[1]
    now = utcnow()
    if sequence.trigger_form_id is None:
        return 0
    known = sa.select(Enrollment.lead_id).where(Enrollment.sequence_id == sequence.id)
    came = sa.select(Submission.lead_id).where(Submission.form_id == sequence.trigger_form_id,
                                               Submission.lead_id.is_not(None))
    people = db.session.execute(
        sa.select(Lead, sa.func.min(Event.occurred_at), sa.func.max(Event.campaign_id))
        .join(Event, Event.lead_id == Lead.id)
        .where(Event.type == "form_submitted", Lead.id.in_(came), Lead.id.not_in(known))
        .group_by(Lead.id).having(sa.func.min(Event.occurred_at) < now - timedelta(days=1))
        .order_by(Lead.id)).all()
    sent = 0
    for n, (lead, submitted, campaign_id) in enumerate(people):
        engaged = lead.stage not in ELIGIBLE_STAGES  # scoring leaves their stage alone
        enrollment = Enrollment(lead_id=lead.id, sequence_id=sequence.id, step_id=follow_up.id,
                                status=EnrollmentStatus.FINISHED.value, source="demo history",
                                campaign_id=campaign_id, created_at=submitted,
                                ended_at=submitted + timedelta(days=1, hours=2))
        db.session.add(enrollment)
        db.session.flush()
        steps = [(welcome, submitted + timedelta(minutes=10))]
        if engaged and n % 3 != 2:
            steps.append((follow_up, submitted + timedelta(days=1, hours=1)))
        for index, (step, at) in enumerate(steps):
            subject = " ".join(step.subject.replace("{{ lead.first_name }}",
                                                    lead.first_name or "there").split())
            send = Send(enrollment_id=enrollment.id, step_id=step.id, lead_id=lead.id,
                        status=SendStatus.SENT.value, subject=subject, attempts=1,
                        claimed_at=at, sent_at=at, created_at=at, provider_message_id=None)
            db.session.add(send)
            db.session.flush()
            sent += 1
            data = {"send_id": str(send.id), "step_id": step.id, "sequence_id": sequence.id}
            happened: list[tuple[str, datetime, bool, str | None]] = [
                ("email_sent", at, False, None),
                ("email_delivered", at + timedelta(seconds=20), False, None)]
            if n % 4 == 0:  # Apple Mail fetches the images on arrival: a machine's open
                happened.append(("email_opened", at + timedelta(minutes=1), True,
                                 "Apple Mail privacy proxy"))
            if n % 4 == 2:  # a mail security scanner follows every link: a machine's click
                happened.append(("email_clicked", at + timedelta(seconds=40), True,
                                 "link scanner (clicked within a minute of delivery)"))
            if engaged and n % 4 != 3:  # the person reads it, and clicks the first email
                happened.append(("email_opened", at + timedelta(hours=2), False, None))
                if index == 0:
                    happened.append(("email_clicked", at + timedelta(hours=2, minutes=3),
                                     False, None))
            for kind, when, machine, why in happened:
                if when < now:
                    record_event(lead, kind, occurred_at=when, data=data, is_bot=machine,
                                 bot_reason=why)
    return sent


def _demo_form_id() -> int | None:
    from forms.models import Form

    return db.session.scalar(sa.select(Form.id).where(Form.name == "Demo guide form"))
