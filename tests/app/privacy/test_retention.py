"""Retention: old events go after they are rolled up (totals stay), IPs are truncated, raw
values cleared; --dry-run changes nothing; a prune stopped half-way continues correctly."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from app.db import db, utcnow
from app.leads.models import Event
from app.leads.service import record_event, upsert_lead
from app.privacy import consent, retention
from app.privacy.models import ConsentRecord
from app.reports.models import ReportDaily
from forms.models import Form, Submission


def _world():
    lead = upsert_lead("ann@example.com").lead
    now = utcnow()
    for days in (200, 190, 181, 100):
        record_event(lead, "page_viewed", occurred_at=now - timedelta(days=days),
                     data={"campaign_id": 1})
    record_event(lead, "email_opened", occurred_at=now - timedelta(days=40), is_bot=True,
                 bot_reason="proxy")
    record_event(lead, "email_opened", occurred_at=now - timedelta(days=40))
    form = Form(name="F")
    db.session.add(form)
    db.session.flush()
    for days, ip in ((45, "203.0.113.77"), (800, "2001:db8:1:2::5"), (5, "198.51.100.9")):
        db.session.add(Submission(form_id=form.id, lead_id=lead.id, email=lead.email,
                                  raw={"first_name": "Ann"}, ip=ip,
                                  created_at=now - timedelta(days=days)))
    news = consent.define("product_news", "Product news", "News.")
    consent.grant(lead, news, source="form", ip="203.0.113.78",
                  at=now - timedelta(days=31))
    db.session.commit()
    return lead


def _page_views() -> int:
    db.session.expire_all()
    return int(db.session.scalar(sa.select(sa.func.sum(ReportDaily.value))
                                 .where(ReportDaily.metric == "page_views")) or 0)


def _count(type: str) -> int:
    return db.session.scalar(sa.select(sa.func.count()).select_from(Event)
                             .where(Event.type == type)) or 0


def test_dry_run_says_what_would_go_and_changes_nothing(app, runner):
    _world()
    result = runner.invoke(args=["privacy", "prune", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "page_viewed (person) older than 180 days: 3 would go" in result.output
    assert "email_opened (machine) older than 30 days: 1 would go" in result.output
    assert "IP addresses older than 30 days: 3 would be truncated" in result.output
    assert "raw submission values older than 730 days: 1 would be cleared" in result.output
    assert _count("page_viewed") == 4 and _count("email_opened") == 2


def test_prune_rolls_up_first_then_deletes_and_truncates(app, runner):
    _world()
    result = runner.invoke(args=["privacy", "prune"])
    assert result.exit_code == 0, result.output
    assert "page_viewed (person) older than 180 days: 3 deleted" in result.output
    assert "email_opened (machine) older than 30 days: 1 deleted" in result.output
    assert _count("page_viewed") == 1 and _count("email_opened") == 1  # the person's open stays
    assert _page_views() == 4  # the reports still count the deleted views
    ips = sorted(db.session.scalars(sa.select(Submission.ip)))
    assert ips == ["198.51.100.9", "2001:db8:1::", "203.0.113.0"]
    raws = sorted(len(r) for r in db.session.scalars(sa.select(Submission.raw)))
    assert raws == [0, 1, 1]
    (record,) = db.session.scalars(sa.select(ConsentRecord))
    assert record.ip == "203.0.113.0"
    again = runner.invoke(args=["privacy", "prune"])  # nothing left: idempotent
    assert "page_viewed (person) older than 180 days: 0 deleted" in again.output
    assert _page_views() == 4


def test_a_prune_stopped_half_way_continues_without_counting_twice(app, monkeypatch):
    _world()
    app.config["PRIVACY_PRUNE_BATCH"] = 1
    original = retention._prune_events
    calls = {"n": 0}

    def stop_after_one_batch(chosen, mark, report, batch, out_of_time):
        def soon() -> bool:
            calls["n"] += 1
            return calls["n"] > 1
        return original(chosen, mark, report, batch, soon)

    monkeypatch.setattr(retention, "_prune_events", stop_after_one_batch)
    first = retention.prune()
    assert first.stopped_early and _count("page_viewed") == 3
    monkeypatch.setattr(retention, "_prune_events", original)
    retention.prune()
    assert _count("page_viewed") == 1
    assert _page_views() == 4


def test_a_prune_that_crashes_half_way_resumes_without_losing_or_double_counting(app,
                                                                                monkeypatch):
    _world()
    app.config["PRIVACY_PRUNE_BATCH"] = 1
    original = retention._delete_batch
    calls = {"n": 0}

    def crash_on_the_second_delete(where):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("worker killed")
        return original(where)

    monkeypatch.setattr(retention, "_delete_batch", crash_on_the_second_delete)
    with pytest.raises(RuntimeError):
        retention.prune()
    db.session.rollback()
    assert _count("page_viewed") == 3  # the first batch's delete was committed, no more
    assert _page_views() == 4
    monkeypatch.setattr(retention, "_delete_batch", original)
    report = retention.prune()
    assert report.events["page_viewed (person) older than 180 days"] == 2  # the rest, once
    assert _count("page_viewed") == 1
    assert _page_views() == 4


def test_truncate_ip():
    assert retention.truncate_ip("203.0.113.77") == "203.0.113.0"
    assert retention.truncate_ip("2001:db8:1:2::5") == "2001:db8:1::"
    assert retention.truncate_ip("not an ip") == ""


def test_intake_rows_as_received_lose_their_ip_and_raw_values_like_submissions(app, runner):
    """The intake table keeps each submit as received (its IP, its raw values) beside the
    submission it became: retention shortens both alike."""
    from forms.models import Intake

    now = utcnow()
    for days, ip in ((45, "203.0.113.77"), (800, "2001:db8:1:2::5"), (5, "198.51.100.9")):
        db.session.add(Intake(id=f"row{days}", form_id=1, data={"email": "ann@example.com"},
                              raw={"email": "ann@example.com", "first_name": "Ann"}, ip=ip,
                              dedupe_key=f"key{days}", received_at=now - timedelta(days=days),
                              status="done"))
    db.session.commit()
    dry = runner.invoke(args=["privacy", "prune", "--dry-run"])
    assert "IP addresses older than 30 days: 2 would be truncated" in dry.output
    assert "raw submission values older than 730 days: 1 would be cleared" in dry.output
    result = runner.invoke(args=["privacy", "prune"])
    assert result.exit_code == 0, result.output
    db.session.expire_all()
    rows = {row.id: row for row in db.session.scalars(sa.select(Intake))}
    assert [rows[f"row{d}"].ip for d in (45, 800, 5)] == \
        ["203.0.113.0", "2001:db8:1::", "198.51.100.9"]
    assert [len(rows[f"row{d}"].raw) for d in (45, 800, 5)] == [2, 0, 2]


@pytest.mark.parametrize("key,days", [("email_opened:bot", 30), ("email_opened", "a month")])
def test_a_retention_setting_it_cannot_read_prunes_nothing_and_says_why(app, runner, key, days):
    """`email_opened:bot` is not `:machine`: taken as the person's events, it deleted people's
    opens after 30 days. A setting it cannot read stops the prune before anything goes."""
    _world()
    app.config["PRIVACY_EVENT_RETENTION"] = {"page_viewed": 180, key: days}
    for args in (["privacy", "prune", "--dry-run"], ["privacy", "prune"]):
        result = runner.invoke(args=args)
        assert result.exit_code == 1, result.output
        assert "PRIVACY_EVENT_RETENTION" in result.output and key in result.output
    assert _count("email_opened") == 2 and _count("page_viewed") == 4
