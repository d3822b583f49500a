"""The Email report: per step, emails (not events) sent, opened and clicked by people,
unsubscribed and bounced, machine opens apart; each email counted once per kind."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import time_machine

from app.db import db
from app.leads.service import record_event
from app.reports.filters import Filters
from app.reports.rollup import refresh
from nurture import reports
from nurture.models import Enrollment, Send
from tests.nurture.factories import email_step, make_lead, make_sequence

NOW = datetime(2026, 6, 15, 12, tzinfo=UTC)


def _send(lead, sequence, step, sent_at):
    enrollment = Enrollment(lead_id=lead.id, sequence_id=sequence.id, step_id=step.id,
                            status="finished", campaign_id=None)
    db.session.add(enrollment)
    db.session.flush()
    send = Send(enrollment_id=enrollment.id, step_id=step.id, lead_id=lead.id, status="sent",
                subject=step.subject, sent_at=sent_at)
    db.session.add(send)
    db.session.flush()
    data = {"send_id": str(send.id), "step_id": step.id, "sequence_id": sequence.id}
    record_event(lead, "email_sent", occurred_at=sent_at, data=data)
    return send, data


def test_each_email_counts_once_per_kind_and_machines_apart(app):
    with time_machine.travel(NOW, tick=False):
        sequence = make_sequence(email_step(subject="Welcome"), email_step(subject="Follow"))
        first, second = sequence.steps
        day = NOW - timedelta(days=3)
        people = [make_lead(f"p{n}@example.com") for n in range(4)]
        sent = [_send(lead, sequence, first, day) for lead in people]
        _, data0 = sent[0]
        # p0 opens on two days and clicks twice: one open, one click.
        for when in (day + timedelta(hours=1), day + timedelta(days=1)):
            record_event(people[0], "email_opened", occurred_at=when, data=data0)
            record_event(people[0], "email_clicked", occurred_at=when, data=data0)
        # p1's open is Apple's proxy: a machine open, not a person's.
        record_event(people[1], "email_opened", occurred_at=day, data=sent[1][1], is_bot=True,
                     bot_reason="Apple Mail privacy proxy")
        record_event(people[2], "unsubscribed", occurred_at=day + timedelta(hours=2),
                     data={"send_id": sent[2][1]["send_id"]})  # the page gives no step
        record_event(people[3], "bounced", occurred_at=day, data=sent[3][1])
        _send(people[0], sequence, second, NOW - timedelta(days=1))
        db.session.commit()
        refresh()
        result = reports.email(Filters(since=(NOW - timedelta(days=6)).date(),
                                       until=NOW.date()))
    rows = {r[0]: r for r in result.table("steps").rows}
    welcome = rows["Welcome · 1. Welcome"]
    assert welcome[1:3] == [4, 1] and str(welcome[3]) == "25.0 %"
    assert welcome[4] == 1 and welcome[6:10] == [1, 1, 1, 0]  # unsub, bounce, machine opens
    follow = rows["Welcome · 2. Follow"]
    assert follow[1:3] == [1, 0]
    # The chart draws the same numbers as the table.
    assert 'data-value="1"' in str(result.table("steps").chart)


def test_a_rebuild_counts_what_the_daily_refresh_counts(app):
    """`rebuild-rollups` builds every day of the email rollup in one pass (`build_days`); each
    day must hold what the day-by-day build gives, repeats on later days counted once."""
    from app.reports.rollup import rebuild

    with time_machine.travel(NOW, tick=False):
        sequence = make_sequence(email_step(subject="Welcome"), email_step(subject="Follow"))
        first, second = sequence.steps
        start = NOW - timedelta(days=5)
        people = [make_lead(f"r{n}@example.com") for n in range(5)]
        for n, lead in enumerate(people):
            _, data = _send(lead, sequence, first if n % 2 else second, start + timedelta(hours=n))
            for later in range(n):  # opened again on each later day: one open, its first day
                when = start + timedelta(days=later, hours=n + 1)
                record_event(lead, "email_opened", occurred_at=when, data=data,
                             is_bot=later == 0 and n == 3)
                if later % 2:
                    record_event(lead, "email_clicked", occurred_at=when, data=data)
        record_event(people[0], "email_opened", occurred_at=start, data={"send_id": "nope"})
        db.session.commit()
        days = {(start + timedelta(days=n)).date() for n in range(6)}

        def summed(rows):
            out = Counter()
            for *key, value in rows:
                out[tuple(key)] += value
            return out

        while reports.record_firsts():  # the rollup's `prepare`, as refresh runs it
            pass
        one_by_one = {day: summed(reports.build(day)) for day in days}
        together = {day: summed(rows) for day, rows in reports.build_days(days).items()}
        assert {d: r for d, r in one_by_one.items() if r} == together
        assert sum(sum(r.values()) for r in together.values()) > 10  # it counts something

        span = Filters(since=(NOW - timedelta(days=7)).date(), until=NOW.date())
        refresh()
        daily = reports.email(span).table("steps").rows
        rebuild()
        assert reports.email(span).table("steps").rows == daily


def test_a_subject_with_placeholders_reads_as_text_in_the_report(app):
    """The report names an email by its subject as a reader knows it, not by template source:
    `Your guide, {{ lead.first_name }}` is shown as `Your guide, [first name]`."""
    with time_machine.travel(NOW, tick=False):
        sequence = make_sequence(email_step(subject="Your guide, {{ lead.first_name }}"),
                                 email_step(subject="{% if lead.company %}For {{ lead.company }}"
                                                    "{% endif %}"))
        lead = make_lead("reader@example.com")
        for step in sequence.steps:
            _send(lead, sequence, step, NOW - timedelta(days=1))
        db.session.commit()
        refresh()
        result = reports.email(Filters(since=(NOW - timedelta(days=6)).date(), until=NOW.date()))
    names = [r[0] for r in result.table("steps").rows]
    assert names == [f"{sequence.name} · 1. Your guide, [first name]",
                     f"{sequence.name} · 2. For [company]"]
    assert "{{" not in str(result.table("steps").chart)


def test_a_pruned_event_log_counts_no_email_twice(app):
    """An email opened on day -6 and again on day -1 is one open, on day -6. Once the old
    events are pruned (retention), neither a late event that makes day -1 dirty again nor a
    rebuild of the recent days may count day -1's open as a first open."""
    from app.privacy import retention
    from app.reports.rollup import rebuild

    with time_machine.travel(NOW, tick=False):
        sequence = make_sequence(email_step(subject="Welcome"))
        (step,) = sequence.steps
        lead = make_lead("pruned@example.com")
        _, data = _send(lead, sequence, step, NOW - timedelta(days=6))
        record_event(lead, "email_opened", occurred_at=NOW - timedelta(days=6), data=data)
        record_event(lead, "email_opened", occurred_at=NOW - timedelta(days=1), data=data)
        db.session.commit()
        refresh()
        span = Filters(since=(NOW - timedelta(days=10)).date(), until=NOW.date())
        before = reports.email(span).table("steps").rows
        assert before[0][1:3] == [1, 1]  # one sent, one open
        app.config["PRIVACY_EVENT_RETENTION"] = {"email_opened": 3, "email_sent": 3}
        retention.prune()
        # A late event of day -1 (another open of the same email) makes that day dirty again.
        record_event(lead, "email_opened", occurred_at=NOW - timedelta(days=1, hours=1),
                     data=data)
        db.session.commit()
        refresh()
        assert reports.email(span).table("steps").rows == before
        rebuild(since=(NOW - timedelta(days=3)).date())
        assert reports.email(span).table("steps").rows == before


def test_the_migration_fills_the_first_days_from_the_stored_events(app):
    """0027a: an install upgraded with email events already stored knows each email's first
    day of each kind (the fixed event type codes, machines apart, deliveries not counted)."""
    import sqlalchemy as sa
    from flask_migrate import downgrade, upgrade

    from nurture.models import EmailFirst

    with time_machine.travel(NOW, tick=False):
        sequence = make_sequence(email_step(subject="Welcome"))
        (step,) = sequence.steps
        lead = make_lead("migrated@example.com")
        send, data = _send(lead, sequence, step, NOW - timedelta(days=6))
        for kind, days, machine in (("email_delivered", 6, False), ("email_opened", 5, True),
                                    ("email_opened", 4, False), ("email_opened", 1, False),
                                    ("email_clicked", 3, False), ("email_clicked", 1, True),
                                    ("unsubscribed", 2, False), ("bounced", 1, False)):
            record_event(lead, kind, occurred_at=NOW - timedelta(days=days), data=data,
                         is_bot=machine)
        db.session.commit()
    downgrade(revision="0026b_lead_campaigns")
    upgrade()
    found = {metric: day for _, metric, day in db.session.execute(
        sa.select(EmailFirst.send_id, EmailFirst.metric, EmailFirst.day)
        .where(EmailFirst.send_id == send.id))}
    day = {n: (NOW - timedelta(days=n)).date() for n in range(7)}
    assert found == {"email_sent": day[6], "email_open_machine": day[5],
                     "email_open_human": day[4], "email_click_human": day[3],
                     "email_click_machine": day[1], "email_unsubscribed": day[2],
                     "email_bounced": day[1]}


def test_an_open_committed_after_a_refresh_went_past_its_id_is_still_recorded(app):
    """An event's id is taken when it is written, but its transaction may commit after a
    refresh has already read past that id: the next refresh reads that window again, so the
    open is still the email's first and a later open is not counted again."""
    import sqlalchemy as sa

    from app.leads.models import Event

    with time_machine.travel(NOW, tick=False):
        sequence = make_sequence(email_step(subject="Welcome"))
        (step,) = sequence.steps
        lead = make_lead("late@example.com")
        _, data = _send(lead, sequence, step, NOW - timedelta(days=3))
        late = record_event(lead, "email_opened", occurred_at=NOW - timedelta(days=2),
                            data=data)
        record_event(lead, "page_viewed", occurred_at=NOW - timedelta(days=2))
        db.session.commit()
        columns = {c.key: getattr(late, c.key) for c in sa.inspect(Event).column_attrs}
        db.session.execute(sa.delete(Event).where(Event.id == late.id))
        db.session.commit()
        refresh()  # reads past the open's id while its transaction is "still open"
        db.session.add(Event(**columns))  # ... which commits now
        db.session.commit()
        refresh()
        record_event(lead, "email_opened", occurred_at=NOW - timedelta(days=1), data=data)
        db.session.commit()
        refresh()
        rows = reports.email(Filters(since=(NOW - timedelta(days=6)).date(),
                                     until=NOW.date())).table("steps").rows
    assert rows[0][1:3] == [1, 1]  # one sent, one open
