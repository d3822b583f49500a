"""The asset email listener takes a batch of submissions per job (one per intake batch), and
sends the batch at once: each email once, however often (or concurrently) its job runs."""

import threading
from datetime import timedelta

import pytest
import sqlalchemy as sa
import time_machine

from app.db import db, utcnow
from app.jobs import RetryLater
from app.leads.models import Event
from app.mail import ledger
from app.mail.errors import MailError
from app.mail.ledger import DeliveryStatus, MailDelivery
from campaigns import jobs
from campaigns.jobs import send_asset_emails
from forms.models import Submission
from tests.campaigns.helpers import (
    asset_emails,
    fill_and_submit,
    make_file_asset,
    make_form,
    make_page,
    parse,
)


def _submissions(client, n: int) -> list[int]:
    make_page(form=make_form(), asset=make_file_asset())
    for i in range(n):
        response = fill_and_submit(client, "guide", email=f"p{i}@example.com")
        assert response.status_code == 303
    ids = list(db.session.scalars(sa.select(Submission.id).order_by(Submission.id)))
    assert len(ids) == n
    return ids


def _recipients() -> list[str]:
    return sorted(parse(path)["To"].addresses[0].addr_spec for path in asset_emails())


def test_a_batch_sends_each_email_once_however_often_it_runs(app, client):
    ids = _submissions(client, 3)
    assert all(send_asset_emails(ids))
    assert send_asset_emails(ids) == [None, None, None]  # redelivered: nothing twice
    assert send_asset_emails(ids[1:2]) == [None]
    assert _recipients() == ["p0@example.com", "p1@example.com", "p2@example.com"]


def test_one_failing_email_does_not_hold_up_the_others_and_the_retry_sends_only_it(
        app, client, monkeypatch):
    ids = _submissions(client, 3)
    real = jobs._asset_email

    def build(submission, asset, page):
        if submission.id == ids[1]:
            raise RuntimeError("template exploded")
        return real(submission, asset, page)

    monkeypatch.setattr(jobs, "_asset_email", build)
    with pytest.raises(RuntimeError, match="template exploded"):  # the outbox retries the batch
        send_asset_emails(ids)
    assert _recipients() == ["p0@example.com", "p2@example.com"]
    monkeypatch.setattr(jobs, "_asset_email", real)
    sent = send_asset_emails(ids)  # the retry
    assert sent[0] is None and sent[1] and sent[2] is None
    assert _recipients() == ["p0@example.com", "p1@example.com", "p2@example.com"]


class _Provider:
    """A mail backend that answers each address as told, and records what it was handed."""

    name = "fake"

    def __init__(self, answers=None, meet: int = 0):
        self.answers = answers or {}
        self.sent: list[str] = []
        self.lock = threading.Lock()
        # `meet` sends must be in flight together before any is answered (a sequential sender
        # breaks the barrier instead).
        self.barrier = threading.Barrier(meet, timeout=10) if meet else None

    def send(self, email) -> str:
        if self.barrier is not None:
            self.barrier.wait()
        answer = self.answers.get(email.to)
        if isinstance(answer, Exception):
            raise answer
        with self.lock:
            self.sent.append(email.to)
            return f"msg-{len(self.sent)}"

    def check(self) -> str:
        return "fake"


def test_n_submissions_give_n_asset_emails_sent_at_once_each_with_its_ledger_row_and_event(
        app, client):
    ids = _submissions(client, 4)
    provider = app.extensions["mail"] = _Provider(meet=4)  # all four in flight together
    message_ids = send_asset_emails(ids)
    assert sorted(provider.sent) == [f"p{i}@example.com" for i in range(4)]
    assert sorted(message_ids) == [f"msg-{n}" for n in range(1, 5)]
    rows = db.session.scalars(sa.select(MailDelivery).order_by(MailDelivery.key)).all()
    assert [(r.key, r.status, r.subject) for r in rows] == [
        (f"asset:{i}", "sent", "Your download: The guide") for i in sorted(ids)]
    assert {r.provider_message_id for r in rows} == set(message_ids)
    events = db.session.scalars(sa.select(Event).where(Event.type == "asset_email_sent")).all()
    assert sorted(e.data["submission_id"] for e in events) == sorted(ids)
    provider.barrier = None
    assert send_asset_emails(ids) == [None] * 4  # redelivered by RQ: nothing twice
    assert len(provider.sent) == 4


def test_an_email_claimed_by_another_run_is_left_to_it(app, client):
    """Two deliveries of the same job at once: the second finds the first's ledger claim and
    does not send that email (it is the first run's to send)."""
    ids = _submissions(client, 3)
    db.session.add(MailDelivery(key=f"asset:{ids[0]}", purpose="asset", status="claimed",
                                attempts=1, claimed_at=utcnow()))
    db.session.commit()
    provider = app.extensions["mail"] = _Provider()
    assert send_asset_emails(ids)[0] is None
    assert sorted(provider.sent) == ["p1@example.com", "p2@example.com"]


def test_a_provider_that_asks_to_wait_for_one_email_retries_only_that_one(app, client):
    ids = _submissions(client, 3)
    provider = app.extensions["mail"] = _Provider(
        {"p1@example.com": MailError("429", permanent=False, retry_after=30)})
    with pytest.raises(RetryLater):
        send_asset_emails(ids)
    assert sorted(provider.sent) == ["p0@example.com", "p2@example.com"]
    row = db.session.scalar(sa.select(MailDelivery).where(MailDelivery.key == f"asset:{ids[1]}"))
    assert row.status == DeliveryStatus.RETRY and row.not_before is not None
    row.not_before = None
    db.session.commit()
    provider.answers = {}
    sent = send_asset_emails(ids)  # the outbox's retry
    assert sent[0] is None and sent[1] and sent[2] is None
    assert sorted(provider.sent) == ["p0@example.com", "p1@example.com", "p2@example.com"]


def test_an_answer_that_never_came_is_never_sent_again(app, client):
    ids = _submissions(client, 2)
    provider = app.extensions["mail"] = _Provider(
        {"p0@example.com": MailError("read timed out", permanent=False, uncertain=True)})
    assert send_asset_emails(ids)[0] is None
    row = db.session.scalar(sa.select(MailDelivery).where(MailDelivery.key == f"asset:{ids[0]}"))
    assert row.status == DeliveryStatus.UNKNOWN
    provider.answers = {}
    assert send_asset_emails(ids) == [None, None]
    assert provider.sent == ["p1@example.com"]  # the provider's events settle p0's, not a resend


def test_an_email_sent_before_the_mail_ledger_existed_is_not_sent_again(app, client):
    """Its `asset_email_sent` event is all there is of it (no ledger row)."""
    ids = _submissions(client, 2)
    submission = db.session.get(Submission, ids[0])
    db.session.add(Event(lead_id=submission.lead_id, type="asset_email_sent", data={},
                         dedupe_key=f"asset-email:{ids[0]}"))
    db.session.commit()
    provider = app.extensions["mail"] = _Provider()
    assert send_asset_emails(ids)[0] is None
    assert provider.sent == ["p1@example.com"]


class _Killed(BaseException):
    """The work-horse dies (SIGKILL, OOM, RQ's job timeout): nothing after it runs."""


def test_a_worker_killed_mid_batch_loses_only_the_emails_in_flight(app, client, monkeypatch):
    """The batch claims, sends and records its emails a wave (MAIL_SEND_THREADS) at a time:
    killed during the second wave, the first wave's are recorded as sent, the later waves'
    were never claimed, and the outbox's retry sends them. Only the wave in flight is
    uncertain (`unknown`, for the provider's events to settle); nothing goes out twice."""
    ids = _submissions(client, 6)
    app.config["MAIL_SEND_THREADS"] = 2
    provider = app.extensions["mail"] = _Provider()
    real_send, calls = provider.send, []

    def send(email):
        with provider.lock:
            calls.append(email.to)
            dies = len(calls) == 3  # the first email of the second wave
        if dies:
            raise _Killed()
        return real_send(email)

    monkeypatch.setattr(provider, "send", send)
    with pytest.raises(_Killed):
        send_asset_emails(ids)
    db.session.rollback()
    monkeypatch.setattr(provider, "send", real_send)
    send_asset_emails(ids)  # the outbox's retry, at once
    with time_machine.travel(utcnow() + timedelta(seconds=400)):
        send_asset_emails(ids)  # and once the claims are stale
    statuses = dict(db.session.execute(sa.select(MailDelivery.key, MailDelivery.status)).all())
    in_flight = {f"asset:{i}" for i in ids[2:4]}
    assert {key for key, status in statuses.items() if status != "sent"} <= in_flight
    assert all(statuses[f"asset:{i}"] == "sent" for i in ids[:2] + ids[4:])
    assert len(provider.sent) == len(set(provider.sent)) >= 4  # each at most once
    assert {f"p{i}@example.com" for i in (0, 1, 4, 5)} <= set(provider.sent)


def test_an_email_the_webhook_settled_meanwhile_keeps_its_word_and_timeline(
        app, client, monkeypatch):
    """SendGrid's event for an email can arrive before its send's answer: a bounce settled
    the row as failed, so the batch neither marks it sent nor writes `asset_email_sent`."""
    ids = _submissions(client, 3)
    provider = app.extensions["mail"] = _Provider()
    real_send = provider.send

    def send(email):
        message_id = real_send(email)
        if email.to == "p1@example.com":  # the webhook, in its own transaction
            with app.app_context():
                ledger.settle(int(email.custom_args["delivery_id"]), "bounce")
                db.session.commit()
        return message_id

    monkeypatch.setattr(provider, "send", send)
    sent = send_asset_emails(ids)
    assert sent[0] and sent[1] is None and sent[2]
    rows = dict(db.session.execute(sa.select(MailDelivery.key, MailDelivery.status)).all())
    assert rows == {f"asset:{ids[0]}": "sent", f"asset:{ids[1]}": "failed",
                    f"asset:{ids[2]}": "sent"}
    timeline = db.session.execute(sa.select(Event.type, Event.data).where(
        Event.type.in_(["asset_email_sent", "asset_email_failed"]))).all()
    assert sorted((t, d["submission_id"]) for t, d in timeline) == sorted([
        ("asset_email_sent", ids[0]), ("asset_email_failed", ids[1]),
        ("asset_email_sent", ids[2])])


def test_a_provider_that_asks_to_wait_stops_the_batch_after_its_wave(app, client):
    """The later waves are not claimed (nothing of theirs is uncertain): the retry sends them."""
    ids = _submissions(client, 5)
    app.config["MAIL_SEND_THREADS"] = 2
    provider = app.extensions["mail"] = _Provider(
        {"p1@example.com": MailError("429", permanent=False, retry_after=30)})
    with pytest.raises(RetryLater) as raised:
        send_asset_emails(ids)
    assert raised.value.after == 30
    assert provider.sent == ["p0@example.com"]
    keys = set(db.session.scalars(sa.select(MailDelivery.key)))
    assert keys == {f"asset:{ids[0]}", f"asset:{ids[1]}"}
    db.session.execute(sa.update(MailDelivery).values(not_before=None))
    db.session.commit()
    provider.answers = {}
    send_asset_emails(ids)  # the outbox's retry
    assert sorted(provider.sent) == [f"p{i}@example.com" for i in range(5)]
