"""The set-based intake path makes exactly what the row-by-row pipeline makes of the same rows.

One scenario, run twice on the same forms: once through `forms.intake_batch` (the processor's
normal path), once with that path refused so every row goes through `forms.pipeline.apply`.
Everything a person or an operator can see must come out the same: leads and their merged
values, stage changes, submissions, events, consent ledger rows, follow-up work, intake marks.
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from app.db import db, utcnow
from app.leads.models import Event, Lead, StageChange
from app.outbox import OutboxJob
from app.privacy import consent, erased
from app.privacy.models import ConsentRecord, ErasedAddress
from forms import consents, intake, intake_batch, processor
from forms.models import Form, Intake, Submission
from forms.pipeline import Context
from tests.forms.support import LISTENER, count


@pytest.fixture
def forms(app, page, make_form) -> dict[str, Form]:
    news = consent.define("product_news", "Product news", "Email me product news.")
    plain = make_form("Guide form", consent_enabled=True, consent_text="Email me",
                      consent_version="v2")
    consents.configure(plain, {news.id: "ask"})
    confirm = make_form("Newsletter", double_opt_in=True,
                        fields=[("company", "Company", "text", False)])
    db.session.commit()
    return {"plain": plain, "confirm": confirm}


def _row(form: Form, data: dict[str, Any], at: int, *, suspect: str | None = None,
         visitor: str | None = None) -> None:
    ctx = Context(ip="203.0.113.9", user_agent="pytest", visitor_id=visitor, campaign_id=7,
                  utm_defaults={"utm_source": "ads"})
    values = intake.row_values(form, data, data, ctx, suspect)
    values["received_at"] = utcnow() - timedelta(seconds=100 - at)
    values["dedupe_key"] = f"row-{at}"  # the submit path's key is not under test here
    db.session.execute(sa.insert(Intake).values(**values))


def _scenario(forms: dict[str, Form]) -> None:
    plain, confirm = forms["plain"], forms["confirm"]
    # Known before the batch: a lead awaiting a double opt-in, an earlier submission, an erased
    # address, anonymous visits of a browser.
    _row(confirm, {"email": "old@example.com", "company": "Old Ltd"}, 0)
    _row(plain, {"email": "early@example.com", "first_name": "Eve"}, 1)
    db.session.add(Event(type="page_viewed", visitor_id="browser-1", data={}))
    db.session.commit()
    processor.drain()
    erased.remember("gone@example.com")
    db.session.commit()

    _row(plain, {"email": "New@Example.com", "first_name": "Ann", "consent": True,
                 "consent_product_news": True, "tz": "Europe/Paris"}, 10, visitor="browser-1")
    _row(plain, {"email": "new@example.com ", "first_name": "Annie", "consent": True}, 11,
         visitor="browser-1")
    _row(plain, {"email": "new@example.com", "first_name": "Annie", "consent": True}, 12)
    _row(confirm, {"email": "OLD@example.com", "company": "New Ltd"}, 13)
    _row(plain, {"email": "old@example.com", "first_name": "Olga", "utm_source": "mail"}, 14)
    _row(plain, {"email": "bot@example.com", "first_name": "Bot"}, 15, suspect="honeypot")
    _row(plain, {"email": "gone@example.com", "consent": True,
                 "consent_product_news": True}, 16)
    _row(plain, {"email": "early@example.com", "first_name": "Eve"}, 17)
    _row(plain, {"email": "not an address"}, 18)
    _row(confirm, {"email": "fresh@example.com", "company": "Fresh"}, 19)
    db.session.commit()
    processor.drain()


def _snapshot() -> dict[str, Any]:
    db.session.expire_all()
    email = dict(db.session.execute(sa.select(Lead.id, Lead.email)).all())
    name = dict(db.session.execute(sa.select(Intake.id, Intake.dedupe_key)).all())  # row-N
    received = dict(db.session.execute(sa.select(Intake.id, Intake.received_at)).all())
    by_submission = {sid: name.get(iid) for sid, iid in
                     db.session.execute(sa.select(Submission.id, Submission.intake_id))}

    def sub(value: Any) -> Any:
        return by_submission.get(value, value)

    leads = sorted((lead.email, lead.email_display, lead.first_name, lead.company, lead.stage,
                    lead.attributes, lead.awaiting_confirmation, lead.unsubscribed_at is None)
                   for lead in db.session.scalars(sa.select(Lead)))
    changes = sorted((email[c.lead_id], c.from_stage, c.to_stage, c.actor, c.reason)
                     for c in db.session.scalars(sa.select(StageChange)))
    submissions = sorted((name.get(s.intake_id), s.status, s.email, s.values, s.fingerprint, s.raw,
                          s.consent_given, s.consent_text, s.consent_version, s.utm, s.ip,
                          s.visitor_id, s.campaign_id, s.quarantine_reason,
                          email.get(s.lead_id), received.get(s.intake_id) == s.created_at)
                         for s in db.session.scalars(sa.select(Submission)))
    events = sorted((e.type, email.get(e.lead_id), e.visitor_id, e.campaign_id, e.url,
                     (e.dedupe_key or "").rsplit(":", 1)[0],
                     repr(sorted({**e.data, "submission_id": sub(e.data.get("submission_id"))}
                                 .items())))
                    for e in db.session.scalars(sa.select(Event)))
    ledger = sorted((email[r.lead_id], r.purpose_id, r.text_id, r.granted, r.source, r.detail,
                     r.ip) for r in db.session.scalars(sa.select(ConsentRecord)))
    # Per submission: a batch listener's row (args: a list of ids) counts for each of its ids.
    jobs = sorted((j.job, [sub(a)], j.queue) for j in db.session.scalars(sa.select(OutboxJob))
                  for a in (j.args[0] if isinstance(j.args[0], list) else j.args))
    rows = sorted((r.dedupe_key, r.status, r.attempts, sub(r.submission_id), bool(r.error))
                  for r in db.session.scalars(sa.select(Intake)))
    return {"leads": leads, "stage changes": changes, "submissions": submissions,
            "events": events, "consent ledger": ledger, "outbox": jobs, "intake": rows,
            "erased": count(ErasedAddress)}


def _forget_everything() -> None:
    for model in (ConsentRecord, OutboxJob, Event, StageChange, Submission, Lead, Intake,
                  ErasedAddress):
        db.session.execute(sa.delete(model))
    db.session.commit()


def test_the_batch_path_makes_what_the_row_by_row_path_makes(forms, monkeypatch):
    _scenario(forms)
    batched = _snapshot()
    _forget_everything()

    def refused(*args: Any, **kwargs: Any) -> Any:
        raise intake_batch.Conflict("row by row, for comparison")

    monkeypatch.setattr(intake_batch, "apply", refused)
    _scenario(forms)
    careful = _snapshot()
    for part in batched:
        assert careful[part] == batched[part], part

    # And what it made is what the pipeline promises, so the comparison is not of two blanks.
    leads = {lead[0]: lead for lead in batched["leads"]}
    assert set(leads) == {"old@example.com", "early@example.com", "new@example.com",
                          "gone@example.com", "fresh@example.com"}
    assert leads["new@example.com"][2] == "Annie"  # the second row merged into the first
    assert leads["new@example.com"][5] == {"timezone": "Europe/Paris"}
    assert leads["old@example.com"][3] == "New Ltd" and leads["old@example.com"][6] is False
    assert leads["fresh@example.com"][6] is True  # new from a double opt-in form: awaiting
    statuses = sorted(s[1] for s in batched["submissions"])
    assert statuses == sorted(["pending_confirmation", "accepted", "accepted", "accepted",
                               "pending_confirmation", "accepted", "quarantined", "accepted",
                               "pending_confirmation"])
    done = [r for r in batched["intake"] if r[1] == "done"]
    assert len(done) == 11 and len({r[3] for r in done}) == 9  # two rows were duplicates
    (failed,) = [r for r in batched["intake"] if r[1] != "done"]
    assert failed[2] == 1 and failed[4]  # the bad address: retried later, error kept
    assert [e[1] for e in batched["events"] if e[0] == "page_viewed"] == ["new@example.com"]
    assert [r[0] for r in batched["consent ledger"]] == ["gone@example.com", "new@example.com"]
    assert batched["erased"] == 0  # gone@ ticked a box: opted in again
    assert sorted(j[1][0] for j in batched["outbox"] if j[0] == "forms.jobs.send_confirmation") \
        == ["row-0", "row-13", "row-19"]
    assert sum(1 for j in batched["outbox"] if j[0] == LISTENER) == 5


def test_the_batch_path_takes_a_batch_in_a_handful_of_statements(forms, page, app):
    """Statements per batch do not grow with the rows in it (the row-by-row path ran about
    eight per row)."""
    plain = forms["plain"]
    statements: list[str] = []

    def counted(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    for n in range(40):
        _row(plain, {"email": f"p{n}@example.com", "first_name": f"P{n}", "consent": True,
                     "consent_product_news": True}, n, visitor=f"browser-{n}")
    db.session.commit()
    engine = db.engine
    sa.event.listen(engine, "before_cursor_execute", counted)
    try:
        assert processor.process_batch(100) == 40
    finally:
        sa.event.remove(engine, "before_cursor_execute", counted)
    assert count(Lead) == 40 and count(ConsentRecord) == 40
    assert len(events("form_submitted")) == 40
    assert len(statements) <= 25, "\n".join(statements)


def events(type: str) -> list[Event]:
    db.session.expire_all()
    return list(db.session.scalars(sa.select(Event).where(Event.type == type)))


def test_a_drained_backlog_leaves_the_planner_statistics_of_what_it_wrote(app, forms):
    """A backlog drained on a young database (or with autovacuum off) must not leave the planner
    guessing: without statistics each batch's `fingerprint IN (…)` scans every submission, so
    the processor slowed down with the backlog's size (1,210 rows/s at 2,000 rows, 547 at
    23,000). It ANALYZEs the tables it grew once they changed by more than their size."""
    if db.engine.dialect.name != "postgresql":
        assert processor.refresh_statistics(force=True) == []  # SQLite plans need none
        return
    for start in range(0, 1200, 400):
        for at in range(start, start + 400):
            _row(forms["plain"], {"email": f"reader-{at}@example.com", "first_name": "Reader"},
                 at)
        db.session.commit()
    grown = ("submissions", "leads", "events")

    def analyzes() -> dict[str, int]:
        """ANALYZE runs per table (`analyze_count`: those run by us, not by autovacuum)."""
        db.session.rollback()  # a fresh snapshot of the statistics views
        return dict(db.session.execute(sa.text(
            "SELECT relname, analyze_count FROM pg_stat_user_tables "
            "WHERE schemaname = current_schema() AND relname IN :names"
        ).bindparams(sa.bindparam("names", expanding=True)), {"names": list(grown)}).all())

    before = analyzes()
    assert processor.drain() == 1200
    # On a slow machine the drain itself analyzes a table once its counters caught up with
    # the rows written so far; otherwise a later look does (the counters catch up within
    # about a second). Either way each grown table has been analyzed since before the drain.
    for _ in range(40):
        processor.refresh_statistics(force=True)
        after = analyzes()
        if all(after.get(name, 0) > before.get(name, 0) for name in grown):
            break
        time.sleep(0.5)
    assert {name for name in grown if after.get(name, 0) > before.get(name, 0)} == set(grown)
    tuples = db.session.scalar(sa.text(
        "SELECT reltuples FROM pg_class WHERE relname = 'submissions'"))
    assert tuples >= 1000
    assert processor.refresh_statistics(force=True) == []  # nothing changed since
