"""What must hold after every fault scenario (issue 15, "Keep it fixed"), checked against the
database the processes wrote and what the fake SendGrid received:

- every accepted submit is exactly one lead or one quarantined submission: one intake row,
  processed once, one submission made from it, one `form_submitted` event for a lead, one
  outbox row per follow-up job, and nothing left in the spill journal;
- every email reached the provider at most once per ledger row (the mail ledger's and
  nurture's), and, once the provider recovered, every row that was not refused for good was
  taken exactly once;
- no enrollment is stuck: a live journey always has a next run that is not long overdue.

Each check returns the problems it found (empty: it holds); `assert_holds` fails with all of
them at once.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import timedelta
from pathlib import Path

import sqlalchemy as sa
from flask import current_app

from app.db import db, utcnow
from app.leads.models import Event, Lead
from app.mail.ledger import MailDelivery
from app.outbox import OutboxJob
from forms.models import Intake, IntakeStatus, Submission, SubmissionStatus
from forms.spill import FOLDER as SPILL_FOLDER
from forms.spill import REFUSED_FOLDER
from nurture.models import LIVE_STATUSES, Enrollment, Send
from tests.fakes.sendgrid_server import FakeSendGrid
from tests.faults.mail_processes import fresh, requests_by_row

MADE_A_LEAD = (SubmissionStatus.ACCEPTED.value, SubmissionStatus.PENDING.value,
               SubmissionStatus.RELEASED.value, SubmissionStatus.EXPIRED.value)


def assert_holds(*problem_lists: list[str]) -> None:
    problems = [problem for problems in problem_lists for problem in problems]
    assert not problems, "invariants broken:\n- " + "\n- ".join(problems[:40])


def submissions_once(accepted_emails: Iterable[str] = (), *,
                     instance_path: str | Path | None = None) -> list[str]:
    """Every intake row was processed exactly once into one submission; every submission is a
    lead's (one `form_submitted` event, in one outbox row of each follow-up job: a batch
    listener's row carries many) or quarantined;
    each of `accepted_emails` (the submits that got a 303 / 202) is one lead or one
    quarantined submission; the spill journal of `instance_path` is empty (nothing set aside)."""
    fresh()
    problems: list[str] = []
    intake = list(db.session.execute(sa.select(Intake.id, Intake.status, Intake.submission_id,
                                               Intake.error)))
    for row in intake:
        if row.status != IntakeStatus.DONE.value or row.submission_id is None:
            problems.append(f"intake {row.id} is {row.status} ({row.error or 'no submission'})")
    made = Counter(row.submission_id for row in intake if row.submission_id is not None)
    problems += [f"submission {sid} was made from {n} intake rows" for sid, n in made.items()
                 if n > 1]
    submissions = list(db.session.execute(sa.select(
        Submission.id, Submission.status, Submission.lead_id, Submission.email,
        Submission.intake_id)))
    by_intake = Counter(s.intake_id for s in submissions if s.intake_id is not None)
    problems += [f"intake {iid} made {n} submissions" for iid, n in by_intake.items() if n > 1]
    events = Counter(db.session.scalars(
        sa.select(Event.data["submission_id"].as_integer())
        .where(Event.type == "form_submitted")))
    # (listener, submission) -> how many outbox rows carry it: a batch listener's row
    # carries a batch of submission ids, any other listener's row one.
    listeners = current_app.extensions.get("submission_listeners", [])
    follow_up: Counter[tuple[str, int]] = Counter()
    for job, args in db.session.execute(sa.select(OutboxJob.job, OutboxJob.args)
                                        .where(OutboxJob.job.in_(listeners))):
        ids = args[0] if args and isinstance(args[0], list) else args[:1]
        follow_up.update((job, int(i)) for i in ids)
    for s in submissions:
        if s.status == SubmissionStatus.QUARANTINED.value:
            if s.lead_id is not None:
                problems.append(f"quarantined submission {s.id} made lead {s.lead_id}")
        elif s.status in MADE_A_LEAD:
            if s.lead_id is None:
                problems.append(f"{s.status} submission {s.id} has no lead")
            if events[s.id] != 1:
                problems.append(f"submission {s.id} has {events[s.id]} form_submitted events")
            if s.status == SubmissionStatus.ACCEPTED.value:  # its follow-up work is scheduled
                problems += [f"submission {s.id} is in {follow_up[job, s.id]} outbox rows "
                             f"of {job}" for job in listeners if follow_up[job, s.id] != 1]
        else:
            problems.append(f"submission {s.id} is {s.status}")
    emails = Counter(db.session.scalars(sa.select(Lead.email)))
    problems += [f"{email} is {n} leads" for email, n in emails.items() if n > 1]
    quarantined = Counter(s.email for s in submissions
                          if s.status == SubmissionStatus.QUARANTINED.value)
    for email in set(accepted_emails):
        ways = emails[email] + quarantined[email]
        if ways != 1:
            problems.append(f"accepted submit {email} is {emails[email]} lead(s) and "
                            f"{quarantined[email]} quarantined submission(s)")
    if instance_path is not None:
        left = sorted(p.name for p in (Path(instance_path) / SPILL_FOLDER).glob("*.json"))
        if left:
            problems.append(f"{len(left)} submit(s) left in the spill journal: {left[:3]}")
        aside = sorted(p.name for p in (Path(instance_path) / SPILL_FOLDER / REFUSED_FOLDER)
                       .glob("*.json"))
        if aside:  # an outage is no reason to set a submit aside
            problems.append(f"{len(aside)} submit(s) set aside by the replay: {aside[:3]}")
    return problems


def emails_at_most_once(fake: FakeSendGrid, *, recovered: bool = True) -> list[str]:
    """Per ledger row, at most one request the provider accepted; when the provider
    `recovered`, every row not refused for good (failed) was accepted exactly once, and none
    is still claimed or waiting for a retry."""
    fresh()
    problems: list[str] = []
    received = requests_by_row(fake)
    rows = [("mail", r.id, r.status) for r in db.session.scalars(sa.select(MailDelivery))]
    rows += [("send", s.id, s.status) for s in db.session.scalars(sa.select(Send))]
    known = {(kind, row_id) for kind, row_id, _ in rows}
    problems += [f"the provider got {kind} {row_id}, which has no ledger row"
                 for kind, row_id in received if (kind, row_id) not in known]
    for kind, row_id, status in rows:
        accepted = sum(1 for request in received.get((kind, row_id), []) if request.accepted)
        if accepted > 1:
            problems.append(f"{kind} {row_id} reached the provider {accepted} times")
        if recovered and status != "failed":
            if accepted != 1:
                problems.append(f"{kind} {row_id} ({status}) was taken {accepted} times")
            if status in ("claimed", "retry"):
                problems.append(f"{kind} {row_id} is still {status}")
    return problems


def no_enrollment_stuck(grace: timedelta = timedelta(minutes=2)) -> list[str]:
    """A live enrollment has a next run, and it is not overdue by more than `grace`."""
    fresh()
    late = utcnow() - grace
    return [f"enrollment {e.id} ({e.status}) is stuck: next run {e.next_run_at}"
            for e in db.session.scalars(sa.select(Enrollment)
                                        .where(Enrollment.status.in_(LIVE_STATUSES)))
            if e.next_run_at is None or e.next_run_at < late]


def all_hold(fake: FakeSendGrid | None = None, accepted_emails: Iterable[str] = (), *,
             instance_path: str | Path | None = None) -> None:
    """Every invariant above (the email one when a fake SendGrid took part)."""
    assert_holds(submissions_once(accepted_emails, instance_path=instance_path),
                 emails_at_most_once(fake) if fake is not None else [],
                 no_enrollment_stuck())
