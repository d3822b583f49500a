"""Events → coalesced job → a real worker → scores and the MQL move; the rebuild agrees."""

from datetime import timedelta

import pytest
import sqlalchemy as sa
import time_machine
from rq import Queue

from app.db import db
from app.leads.models import Lead, Stage
from app.leads.service import change_stage
from app.worker import run_worker
from nurture.scoring import incremental, jobs, service
from nurture.scoring.explain import explain
from nurture.scoring.models import LeadScore
from tests.nurture.scoring.support import (
    DIRECTOR,
    NOW,
    add_events,
    hot_activity,
    make_lead,
    reload,
    stage_changes,
)


def scoring_jobs(redis_conn):
    return Queue("scoring", connection=redis_conn).get_job_ids()


def test_many_events_in_one_commit_make_one_pending_job(app, redis_conn):
    lead = make_lead(**DIRECTOR)
    other = make_lead("lee@bright.example.com")
    assert scoring_jobs(redis_conn) == []
    add_events(lead, *[("email_opened", 0)] * 5, ("page_viewed", 0, {"url": "/pricing"}))
    assert len(scoring_jobs(redis_conn)) == 1
    add_events(lead, ("email_clicked", 0))  # a later commit: still the same pending job
    add_events(other, ("email_clicked", 0), ("email_opened", 0, {"is_bot": True}))
    assert len(scoring_jobs(redis_conn)) == 2  # one per lead
    add_events(other, ("email_opened", 0, {"is_bot": True}))  # machine activity: no job
    assert len(scoring_jobs(redis_conn)) == 2


def test_a_real_worker_scores_the_lead_and_moves_it_to_mql(app, redis_conn):
    lead = make_lead(**DIRECTOR)
    lead_id = lead.id
    with time_machine.travel(NOW, tick=False):
        add_events(lead, *hot_activity())
        run_worker(["scoring"], burst=True)  # forks a work-horse; our session is reset
    lead = db.session.get(Lead, lead_id)
    assert lead.fit_score == 30 and lead.engagement_score > 50
    assert lead.stage == Stage.MQL.value
    last = stage_changes(lead)[-1]
    assert last.actor == "scoring" and last.to_stage == "mql"
    assert last.reason.startswith(f"engagement {lead.engagement_score:.0f} ≥ 50 and fit A ≥ C; "
                                  "2 visits to /pricing")
    score = db.session.get(LeadScore, lead.id)
    assert score.fit_grade == "A" and score.last_event_id is not None
    assert scoring_jobs(redis_conn) == []
    # Events after the job started get a job of their own.
    with time_machine.travel(NOW, tick=False):
        add_events(lead, ("email_clicked", 0))
    assert len(scoring_jobs(redis_conn)) == 1


def test_leads_of_one_commit_share_one_job_that_scores_each(app, redis_conn):
    leads = [make_lead(**DIRECTOR), make_lead("lee@bright.example.com")]
    Queue("scoring", connection=redis_conn).empty()
    redis_conn.delete(*[incremental.pending_key(lead.id) for lead in leads])
    with time_machine.travel(NOW, tick=False):
        assert incremental.enqueue_scoring([lead.id for lead in leads]) == 2
        (job_id,) = scoring_jobs(redis_conn)
        job = Queue("scoring", connection=redis_conn).fetch_job(job_id)
        assert job.args == (sorted(lead.id for lead in leads),)
        add_events(leads[0], ("form_submitted", 0))  # pending: no second job
        assert len(scoring_jobs(redis_conn)) == 1
        assert jobs.score_leads(*job.args) == 2
    assert reload(leads[0]).engagement_score == 15
    assert db.session.get(LeadScore, leads[1].id) is not None
    assert not redis_conn.exists(*[incremental.pending_key(lead.id) for lead in leads])


def test_scoring_job_is_idempotent(app):
    lead = make_lead(**DIRECTOR)
    with time_machine.travel(NOW, tick=False):
        add_events(lead, *hot_activity())
        jobs.score_lead(lead.id)
        jobs.score_lead(lead.id)
    assert [c.to_stage for c in stage_changes(lead)] == ["lead", "mql"]


def test_engagement_decays_over_time(app):
    lead = make_lead(**DIRECTOR)
    add_events(lead, ("form_submitted", 0))
    with time_machine.travel(NOW, tick=False):
        jobs.score_lead(lead.id)
    assert reload(lead).engagement_score == 15
    with time_machine.travel(NOW + timedelta(days=30), tick=False):
        jobs.score_lead(lead.id)
    assert reload(lead).engagement_score == 7.5


def test_below_threshold_or_poor_fit_stays_a_lead(app):
    student = make_lead("kim@gmail.com", first_name="Kim")
    with time_machine.travel(NOW, tick=False):
        add_events(student, *hot_activity())
        jobs.score_lead(student.id)
    student = reload(student)
    assert student.engagement_score > 50 and student.stage == "lead"  # fit F


def test_instant_mql_for_a_pricing_visit_from_a_fit_a_lead(app):
    rules = service.active_rules().rules.to_dict()
    rules["instant"] = [{"event_type": "page_viewed", "url_pattern": "/pricing",
                         "min_grade": "A", "within_days": 7}]
    from nurture.scoring.rules import Rules

    service.save_version(Rules.from_dict(rules), user_id=None)
    db.session.commit()
    fit_a = make_lead(**DIRECTOR)
    fit_c = make_lead("lee@bright.example.com", company="Bright", country="US")
    with time_machine.travel(NOW, tick=False):
        for lead in (fit_a, fit_c):
            add_events(lead, ("page_viewed", 1, {"url": "/pricing"}))
            jobs.score_lead(lead.id)
    assert reload(fit_c).stage == "lead"
    assert reload(fit_a).stage == "mql"
    reason = stage_changes(fit_a)[-1].reason
    assert reason == ("instant MQL: 1 visit to /pricing on 2026-11-19 and fit A ≥ A; "
                      "engagement 20")


def test_scoring_never_moves_sales_stages(app):
    lead = make_lead(**DIRECTOR)
    change_stage(lead, Stage.SQL, reason="Accepted by sales", actor="user")
    db.session.commit()
    with time_machine.travel(NOW, tick=False):
        add_events(lead, *hot_activity())
        jobs.score_lead(lead.id)
    lead = reload(lead)
    assert lead.stage == "sql" and lead.engagement_score > 50  # scored, not moved
    assert [c.actor for c in stage_changes(lead)] == ["test", "user"]


def test_a_recycled_lead_needs_new_interest(app):
    lead = make_lead(**DIRECTOR)
    with time_machine.travel(NOW - timedelta(days=3), tick=False):
        add_events(lead, *hot_activity(), now=NOW - timedelta(days=3))
        jobs.score_lead(lead.id)
    with time_machine.travel(NOW - timedelta(days=2.5), tick=False):
        change_stage(reload(lead), Stage.RECYCLED, reason="Not now", actor="user")
        db.session.commit()
    with time_machine.travel(NOW, tick=False):
        jobs.score_lead(lead.id)
        assert reload(lead).stage == "recycled"  # old activity does not bounce it back
        add_events(lead, *hot_activity())
        jobs.score_lead(lead.id)
    assert reload(lead).stage == "mql"
    assert "since recycled on" in stage_changes(lead)[-1].reason


def test_recycling_resets_engagement_for_every_later_rescore(app, runner):
    lead = make_lead(**DIRECTOR)
    with time_machine.travel(NOW - timedelta(days=3), tick=False):
        add_events(lead, *hot_activity(), now=NOW - timedelta(days=3))
        jobs.score_lead(lead.id)
    assert reload(lead).engagement_score > 50
    with time_machine.travel(NOW - timedelta(days=2), tick=False):
        change_stage(reload(lead), Stage.RECYCLED, reason="Rejected: too early", actor="user")
        reload(lead).engagement_score = 0  # what the handoff does
        db.session.commit()
    with time_machine.travel(NOW, tick=False):
        jobs.score_lead(lead.id)  # any later event or the sweep runs this
        assert reload(lead).engagement_score == 0  # the reset holds: old activity is gone
        data = explain(reload(lead)).to_dict()
        assert data["engagement"]["items"] == [] and data["engagement"]["score"] == 0
        assert data["engagement"]["counted_since"].startswith("2026-11-18")
        add_events(lead, ("email_clicked", 0))
        jobs.score_lead(lead.id)
        assert reload(lead).engagement_score == 5  # only what came after the reset
        assert runner.invoke(args=["scores", "rebuild"]).exit_code == 0
    assert reload(lead).engagement_score == 5  # the rebuild agrees
    assert db.session.get(LeadScore, lead.id).engagement == 5


def test_incremental_path_equals_rebuild(app, runner):
    leads = [make_lead(**DIRECTOR), make_lead("lee@bright.example.com", company="Bright",
                                               job_title="Manager", country="US"),
             make_lead("kim@gmail.com"), make_lead("quiet@acme.example.com"),
             make_lead("back@acme.example.com", **{**DIRECTOR, "first_name": "Bo"})]
    with time_machine.travel(NOW - timedelta(days=4), tick=False):
        add_events(leads[4], *hot_activity(), now=NOW - timedelta(days=4))
        change_stage(reload(leads[4]), Stage.RECYCLED, reason="Not now", actor="user")
        db.session.commit()
    with time_machine.travel(NOW, tick=False):
        add_events(leads[0], *hot_activity(), ("email_opened", 0.2, {"is_bot": True}))
        add_events(leads[1], *[("email_opened", 3)] * 6, ("email_clicked", 40),
                   ("page_viewed", 10, {"url": "/pricing"}), ("site_returned", 1))
        add_events(leads[2], ("form_submitted", 90), ("asset_downloaded", 5))
        add_events(leads[4], ("email_clicked", 1), ("page_viewed", 2, {"url": "/pricing"}))
        for lead in leads:
            jobs.score_lead(lead.id)
        incremental_rows = _snapshot()
        db.session.execute(sa.delete(LeadScore))
        db.session.execute(sa.text("UPDATE leads SET fit_score = 0, engagement_score = 0"))
        db.session.commit()
        result = runner.invoke(args=["scores", "rebuild", "--batch-size", "3"])
    assert result.exit_code == 0, result.output
    assert "Rescoring leads" in result.output  # the progress bar's label
    assert "Rescored 5 leads (21 events" in result.output
    assert _snapshot() == incremental_rows
    assert incremental_rows[0][1:3] == (30, incremental_rows[0][2]) and incremental_rows[0][2] > 50
    recycled = incremental_rows[4]
    # Only the activity since the reset (a click a day ago, pricing two days ago), decayed.
    assert recycled[3] == "recycled"
    assert recycled[2] == round(5 * 0.5 ** (1 / 30) + 20 * 0.5 ** (2 / 30), 2)


def _snapshot():
    db.session.expire_all()
    return db.session.execute(sa.text(
        "SELECT l.id, l.fit_score, l.engagement_score, l.stage, s.fit_grade, s.engagement, "
        "s.last_event_id, s.ruleset_version FROM leads l JOIN lead_scores s ON s.lead_id = l.id "
        "ORDER BY l.id")).all()


@time_machine.travel(NOW, tick=False)
def test_rebuild_after_a_rules_change_rescores_everyone(app, runner):
    lead = make_lead(**DIRECTOR)
    add_events(lead, ("email_clicked", 0))
    jobs.score_lead(lead.id)
    assert reload(lead).engagement_score == 5
    rules = service.active_rules().rules.to_dict()
    rules["engagement"][2]["points"] = 8  # clicks: 5 → 8
    from nurture.scoring.rules import Rules

    service.save_version(Rules.from_dict(rules), user_id=None, note="clicks matter more")
    db.session.commit()
    result = runner.invoke(args=["scores", "rebuild"])
    assert result.exit_code == 0, result.output
    assert reload(lead).engagement_score == 8
    assert db.session.get(LeadScore, lead.id).ruleset_version == 1


@time_machine.travel(NOW, tick=False)
def test_the_sweep_rescores_leads_whose_job_was_lost(app, redis_conn):
    lead = make_lead(**DIRECTOR)
    add_events(lead, ("form_submitted", 0))
    redis_conn.flushdb()  # the job and its pending mark are gone
    assert db.session.get(LeadScore, lead.id) is None
    assert jobs.sweep() == 1
    assert reload(lead).engagement_score == 15
    assert jobs.sweep() == 0  # nothing new


def test_redis_down_does_not_fail_the_commit(app_config, make_app):
    down = make_app({**app_config, "REDIS_URL": "redis://127.0.0.1:1/0"})
    with down.app_context():
        incremental._redis_down_until = 0.0
        lead = make_lead(**DIRECTOR)
        add_events(lead, ("form_submitted", 0))  # commit succeeds; the sweep will catch up
        assert incremental.stale_lead_ids() == [lead.id]
    incremental._redis_down_until = 0.0


def test_a_savepoint_rolled_back_keeps_the_leads_scored_before_it(app, redis_conn):
    """The batch enrollment's fallback (one savepoint a lead) rolls back the one a twin
    refused: the leads whose events were flushed before it still get their scoring job."""
    from app.leads.service import record_event

    lead, other = make_lead(**DIRECTOR), make_lead("lee@bright.example.com")
    db.session.commit()
    assert scoring_jobs(redis_conn) == []
    record_event(lead, "email_clicked")  # flushed
    try:
        with db.session.begin_nested():
            record_event(other, "email_clicked")
            raise RuntimeError("this one raced a twin")
    except RuntimeError:
        pass
    db.session.commit()

    assert len(scoring_jobs(redis_conn)) == 1


def test_rqs_timeout_stops_the_scoring_job_at_once(app, monkeypatch):
    """The job's time is up: it ends there, not after scoring every lead left."""
    from rq.timeouts import JobTimeoutException

    leads = [make_lead(**DIRECTOR), make_lead("lee@bright.example.com")]
    tried = []

    def out_of_time(lead_id):
        tried.append(lead_id)
        raise JobTimeoutException("Task exceeded maximum timeout value (1 seconds)")

    monkeypatch.setattr(service, "score_lead", out_of_time)
    with pytest.raises(JobTimeoutException):
        jobs.score_leads([lead.id for lead in leads])
    assert tried == [leads[0].id]
