"""The submit writes one intake row; the intake processor makes the lead, in batches, once."""

import pytest
import sqlalchemy as sa
from flask.testing import FlaskClient

from app.db import db
from app.leads.models import Event, Lead
from app.outbox import OutboxJob
from forms import intake, intake_batch, pipeline, processor
from forms.models import Intake, Submission
from tests.forms.support import (
    LISTENER,
    HostedPage,
    assert_follow_up_once,
    count,
    events,
    leads,
    submissions,
)

SAME_ORIGIN = {"Sec-Fetch-Site": "same-origin"}


@pytest.fixture
def visitor(app, page):
    """A browser on the page with no worker behind it: nothing runs after its posts."""
    return HostedPage(FlaskClient(app))


def test_the_submit_stores_one_intake_row_and_the_processor_makes_the_lead(visitor, make_form):
    form = make_form(consent_enabled=True, consent_text="Email me", consent_version="v1")
    response = visitor.post(form, {"email": "Ann@Example.com", "first_name": "Ann",
                                   "consent": "y", "tz": "Europe/Paris"})
    assert response.status_code == 201
    (row,) = db.session.scalars(sa.select(Intake)).all()
    assert row.status == "new" and row.consent_text == "Email me"
    assert row.data["email"] == "Ann@Example.com" and row.suspect_reason is None
    assert count(Lead) == 0 and count(Submission) == 0 and count(Event) == 0
    form.consent_text = "New wording"  # what they agreed to is what the page said then
    form.touch()
    db.session.commit()

    assert processor.drain() == 1
    (lead,) = leads()
    assert lead.email == "ann@example.com" and lead.attributes == {"timezone": "Europe/Paris"}
    (submission,) = submissions()
    assert submission.intake_id == row.id and submission.consent_text == "Email me"
    assert submission.created_at == row.received_at
    assert len(events("form_submitted")) == 1
    db.session.expire_all()
    assert db.session.get(Intake, row.id).status == "done"
    assert db.session.get(Intake, row.id).submission_id == submission.id
    jobs = db.session.scalars(sa.select(OutboxJob).where(OutboxJob.job == LISTENER)).all()
    assert [job.args for job in jobs] == [[submission.id]]
    assert processor.drain() == 0  # nothing twice


@pytest.mark.parametrize("data,minimum", [({"website": "http://spam.example"}, 0), ({}, 60)])
def test_bots_are_quarantined_by_the_worker(visitor, make_form, data, minimum):
    form = make_form(min_submit_seconds=minimum)
    assert visitor.post(form, {"email": "bot@example.com", **data}).status_code == 201
    (row,) = db.session.scalars(sa.select(Intake)).all()
    assert row.suspect_reason  # the spam signals seen at submit time
    processor.drain()
    (submission,) = submissions()
    assert submission.status == "quarantined" and submission.lead_id is None
    assert count(Lead) == 0 and count(Event) == 0


def test_the_same_post_again_within_the_window_is_the_first_intake_row(visitor, make_form):
    form = make_form()
    first = visitor.post(form, {"email": "ann@example.com", "first_name": "Ann"})
    again = visitor.post(form, {"email": "ANN@example.com ", "first_name": "Ann"})
    other = visitor.post(form, {"email": "ann@example.com", "first_name": "Annie"})
    assert first.status_code == again.status_code == other.status_code == 201
    assert count(Intake) == 2
    processor.drain()
    assert count(Lead) == 1 and count(Submission) == 2


def test_a_worker_dying_mid_batch_commits_nothing_and_the_rerun_makes_each_lead_once(
        app, visitor, make_form, monkeypatch):
    """Killed after the batch wrote its leads, submissions and events, before the commit."""
    form = make_form()
    for n in range(5):
        visitor.post(form, {"email": f"p{n}@example.com"})

    def killed(*args, **kwargs):
        assert count(Submission) == 5  # written, not yet committed
        raise SystemExit("worker killed")  # not an error of the rows: the process ends

    monkeypatch.setattr(intake_batch, "_write_outbox", killed)
    with pytest.raises(SystemExit):
        processor.drain()
    db.session.rollback()  # the dead process's transaction never committed
    assert count(Lead) == 0 and count(Submission) == 0 and count(OutboxJob) == 0
    monkeypatch.undo()
    assert processor.drain() == 5
    assert count(Lead) == 5 and count(Submission) == 5 and len(events("form_submitted")) == 5
    # each submission in one follow-up row per listener; a batch listener's row has them all
    rows = assert_follow_up_once([s.id for s in submissions()])
    assert [len(ids) for job, ids in rows if job == "nurture.jobs.enroll_from_submissions"] \
        == [5]
    assert [len(ids) for job, ids in rows if job == LISTENER] == [1] * 5


def test_a_worker_dying_in_the_row_by_row_path_commits_nothing_either(
        app, visitor, make_form, monkeypatch):
    """The path a batch takes when a concurrent writer got in the way of the set-based one."""
    form = make_form()
    for n in range(5):
        visitor.post(form, {"email": f"p{n}@example.com"})
    real = pipeline.apply
    done: list[str] = []

    def raced(*args, **kwargs):
        raise intake_batch.Conflict("a lead of this batch was made meanwhile")

    def dies_on_the_fourth(*args, **kwargs):
        if len(done) == 3:
            raise SystemExit("worker killed")
        done.append(kwargs["intake_id"])
        return real(*args, **kwargs)

    monkeypatch.setattr(intake_batch, "apply", raced)
    monkeypatch.setattr(pipeline, "apply", dies_on_the_fourth)
    with pytest.raises(SystemExit):
        processor.drain()
    db.session.rollback()
    assert count(Lead) == 0 and count(Submission) == 0 and count(OutboxJob) == 0
    monkeypatch.setattr(pipeline, "apply", real)
    assert processor.drain() == 5  # still row by row: the set-based path keeps failing
    assert count(Lead) == 5 and count(Submission) == 5 and len(events("form_submitted")) == 5
    assert_follow_up_once([s.id for s in submissions()])


def test_a_row_processed_again_makes_nothing_twice(app, visitor, make_form):
    """At-least-once delivery: a row taken again after its effect committed (a status lost,
    another worker on SQLite) finds its submission by the unique intake id."""
    form = make_form()
    visitor.post(form, {"email": "ann@example.com"})
    processor.drain()
    db.session.execute(sa.update(Intake).values(status="new", submission_id=None))
    db.session.commit()
    assert processor.drain() == 1
    assert count(Lead) == 1 and count(Submission) == 1
    assert_follow_up_once([submissions()[0].id])
    (row,) = db.session.scalars(sa.select(Intake)).all()
    assert row.status == "done" and row.submission_id == submissions()[0].id


def test_a_row_that_failed_before_is_marked_done_without_its_old_error(
        visitor, make_form, monkeypatch):
    form = make_form()
    visitor.post(form, {"email": "ann@example.com"})
    visitor.post(form, {"email": "bob@example.com"})

    def refused(*args, **kwargs):
        raise intake_batch.Conflict("row by row")

    def broken(*args, **kwargs):
        raise RuntimeError("database hiccup")

    monkeypatch.setattr(intake_batch, "apply", refused)
    monkeypatch.setattr(pipeline, "apply", broken)
    processor.drain()
    rows = db.session.scalars(sa.select(Intake)).all()
    assert [(r.status, r.attempts, r.error) for r in rows] == \
        [("new", 1, "RuntimeError: database hiccup")] * 2
    monkeypatch.undo()
    assert processor.drain() == 2  # the set-based path this time
    db.session.expire_all()
    rows = db.session.scalars(sa.select(Intake).order_by(Intake.received_at)).all()
    assert [(r.status, r.error) for r in rows] == [("done", None)] * 2
    assert [r.submission_id for r in rows] == [s.id for s in submissions()]


def test_a_row_whose_form_was_deleted_is_failed_and_kept(visitor, make_form):
    form = make_form()
    visitor.post(form, {"email": "ann@example.com"})
    db.session.delete(form)
    db.session.commit()
    processor.drain()
    (row,) = db.session.scalars(sa.select(Intake)).all()
    assert row.status == "failed" and "no longer exists" in row.error
    assert count(Lead) == 0


def _rows() -> list[tuple[str, int, str | None]]:
    db.session.expire_all()
    return [(r.status, r.attempts, r.error)
            for r in db.session.scalars(sa.select(Intake).order_by(Intake.received_at))]


@pytest.mark.parametrize("where", ["set-based", "row by row"])
def test_rq_stopping_the_processor_at_its_timeout_stops_it(visitor, make_form, monkeypatch,
                                                           where):
    """RQ ends a job past its timeout by raising JobTimeoutException inside it: the batch is
    not taken for one bad row (no attempt counted, no error kept), nothing is committed, and
    the rows wait for the next run."""
    from rq.timeouts import JobTimeoutException

    from forms.jobs import process_intake

    form = make_form()
    for who in ("ann", "bob", "cat"):
        visitor.post(form, {"email": f"{who}@example.com"})

    def out_of_time(*args, **kwargs):
        raise JobTimeoutException("Task exceeded maximum timeout value (1 seconds)")

    def raced(*args, **kwargs):
        raise intake_batch.Conflict("row by row")

    if where == "set-based":
        monkeypatch.setattr(intake_batch, "apply", out_of_time)
    else:
        monkeypatch.setattr(intake_batch, "apply", raced)
        monkeypatch.setattr(pipeline, "apply", out_of_time)
    with pytest.raises(JobTimeoutException):
        process_intake()
    db.session.rollback()  # as the job's app context ends
    assert count(Lead) == 0 and _rows() == [("new", 0, None)] * 3
    monkeypatch.undo()
    assert processor.drain() == 3 and count(Lead) == 3


def test_a_processor_job_past_its_timeout_fails_instead_of_running_on(
        app, visitor, make_form, monkeypatch):
    """A real worker, a one-second timeout, a batch that takes longer: the job ends failed at
    its limit, having made nothing; it does not go on row by row."""
    import time

    from rq.job import JobStatus

    from app import queue
    from app.worker import run_worker
    from forms.intake import PROCESS_JOB, PROCESS_QUEUE

    monkeypatch.setattr(intake, "kick", lambda: None)  # only the job below takes the rows
    form = make_form()
    for who in ("ann", "bob"):
        visitor.post(form, {"email": f"{who}@example.com"})

    def slow(*args, **kwargs):
        time.sleep(5)
        raise AssertionError("not stopped at the timeout")

    monkeypatch.setattr(intake_batch, "apply", slow)
    job = queue.get_queue(PROCESS_QUEUE).enqueue(PROCESS_JOB, job_timeout=1)
    run_worker([PROCESS_QUEUE], burst=True)
    # Stopped at its limit: RQ's timeout is its failure (not `slow`'s AssertionError, 5 s
    # later), and no row went on to the row-by-row path.
    assert job.get_status(refresh=True) == JobStatus.FAILED
    assert "JobTimeoutException" in (job.latest_result().exc_string or "")
    assert count(Lead) == 0 and _rows() == [("new", 0, None)] * 2


def test_the_processor_is_a_periodic_job_a_worker_runs(app, visitor, make_form):
    from app import queue
    from app.schedule import periodic_jobs
    from app.worker import run_worker

    (sweep,) = [p for p in periodic_jobs(app) if p.job == "forms.jobs.process_intake"]
    form = make_form()
    visitor.post(form, {"email": "ann@example.com"})
    queue.enqueue(sweep.job, queue=sweep.queue)
    run_worker(burst=True)
    assert count(Lead) == 1


def test_a_spill_journal_the_worker_cannot_open_does_not_stop_the_processor(visitor, make_form):
    """The disk under the journal refuses (read-only, not the worker's to write): the journal
    waits for next time, and the rows already in the intake table still become leads."""
    from forms import spill
    from forms.jobs import process_intake

    form = make_form()
    visitor.post(form, {"email": "ann@example.com"})
    (spill.folder() / ".lock").mkdir(parents=True)  # its lock cannot be opened: an OSError
    assert process_intake() == 1
    assert count(Lead) == 1


def test_kicks_while_a_run_waits_enqueue_no_second_run(app, make_form):
    """A burst of submits is one waiting processor run; once it starts, the next submit
    kicks a new one (it may have missed that row)."""
    from app import queue
    from app.worker import run_worker
    from forms.intake import KICK_MARK, PROCESS_JOB, send_kick

    conn = queue.connection()
    default = queue.get_queue("intake")  # first of a worker's queues
    default.empty()
    conn.delete(KICK_MARK)

    def runs() -> int:
        return sum(1 for job in default.jobs if job.func_name == PROCESS_JOB)

    assert [send_kick(conn) for _ in range(3)] == [True, False, False]
    assert runs() == 1
    form = make_form()  # a row as a submit writes it, without the submit's own kick thread
    intake.insert(intake.row_values(form, {"email": "ann@example.com"}, {}, pipeline.Context(),
                                    None))
    run_worker(burst=True)
    assert count(Lead) == 1 and runs() == 0
    assert send_kick(conn) is True and runs() == 1


def test_kicks_during_the_pause_after_a_kick_are_sent_as_one(app, monkeypatch):
    """A burst of submits costs the kick thread one Redis round trip per pause, not one each."""
    import threading
    import time

    sent: list[int] = []
    paused, resume = threading.Event(), threading.Event()

    def pause() -> None:
        paused.set()
        resume.wait(10)
        resume.clear()

    monkeypatch.setattr(intake, "send_kick", lambda conn: sent.append(1) or True)
    monkeypatch.setattr(intake, "_pause", pause)
    app.extensions.pop("intake_kicker", None)  # a thread of this test's own

    def settled(count: int) -> bool:
        deadline = time.monotonic() + 10
        while not (len(sent) == count and paused.is_set()) and time.monotonic() < deadline:
            paused.wait(0.01)
        return len(sent) == count and paused.is_set()

    intake.kick()
    assert settled(1)
    paused.clear()
    for _ in range(10):
        intake.kick()  # while the thread pauses
    resume.set()
    assert settled(2)
    resume.set()
