"""SendGrid's Event Webhook: only signed, fresh batches count; each event counts once."""

import json
import time

import pytest
import sqlalchemy as sa

from app.db import db, utcnow
from app.leads.models import Event, Lead
from nurture.models import Enrollment, Send, Sequence, Suppression
from nurture.tracking import classify
from nurture.tracking.models import SendingPause
from tests.nurture.tracking.stories import SendGridSigner, events, make_lead, make_send, sg_event


@pytest.fixture
def signer(app_config):
    signer = SendGridSigner()
    app_config["SENDGRID_WEBHOOK_PUBLIC_KEY"] = signer.public_key
    return signer


def count_events() -> int:
    db.session.expire_all()
    return db.session.scalar(sa.select(sa.func.count()).select_from(Event))


def test_a_signed_batch_is_recorded(signer, app, client):
    send = make_send()
    batch = [sg_event(send, "delivered", "d1"),
             sg_event(send, "open", "o1", useragent="Mozilla/5.0 (iPhone) Mobile",
                      ip="203.0.113.9", ago=10),
             sg_event(send, "open", "o2", sg_machine_open=True, useragent="Mozilla/5.0",
                      ip="17.1.2.3", ago=20),
             sg_event(send, "click", "c1", url="https://example.com/guide",
                      useragent="Mozilla/5.0 (iPhone) Mobile", ip="203.0.113.9", ago=5)]
    response = signer.post(client, batch)
    assert response.status_code == 200, response.get_data(as_text=True)
    (delivered,) = events("email_delivered")
    # The message id went to the send ledger; the event keeps only the send and its step,
    # in their integer columns (no data left).
    assert (delivered.send_id, delivered.step_id, delivered.data) == (send.id, send.step_id, {})
    assert delivered.details == {"send_id": str(send.id), "step_id": send.step_id}
    opens = events("email_opened")
    assert sorted((o.is_bot, o.bot_reason) for o in opens) == [
        (False, None), (True, classify.SG_MACHINE_OPEN)]
    (click,) = events("email_clicked")
    assert click.url == "https://example.com/guide" and not click.is_bot
    assert "url" not in click.data  # stored once, in its column
    assert all(e.lead_id == send.lead_id and e.send_id == send.id for e in events())


@pytest.mark.parametrize("spoil", ["missing", "wrong", "malformed", "reserialised", "edited",
                                   "stale", "unsigned_key"])
def test_forged_or_stale_batches_are_refused_and_nothing_recorded(signer, app, client, spoil):
    send = make_send()
    batch = [sg_event(send, "delivered", "d1"), sg_event(send, "spamreport", "s1")]
    body = json.dumps(batch).encode()
    headers = signer.headers(body)
    if spoil == "missing":
        headers.pop("X-Twilio-Email-Event-Webhook-Signature")
    elif spoil == "wrong":
        headers = {**headers, **{k: v for k, v in SendGridSigner().headers(body).items()
                                 if k.endswith("Signature")}}
    elif spoil == "malformed":
        headers["X-Twilio-Email-Event-Webhook-Signature"] = "not base64!"
    elif spoil == "reserialised":  # same events, different bytes
        body = json.dumps(batch, indent=2).encode()
    elif spoil == "edited":
        batch[1]["event"] = "unsubscribe"
        body = json.dumps(batch).encode()
    elif spoil == "stale":
        headers = signer.headers(body, timestamp=int(time.time()) - 25 * 3600)
    elif spoil == "unsigned_key":
        app.config["SENDGRID_WEBHOOK_PUBLIC_KEY"] = None
    response = client.post("/webhooks/sendgrid", data=body, headers=headers)
    assert response.status_code in (401, 403)
    assert count_events() == 0
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Suppression)) == 0


def test_the_same_batch_twice_records_events_once(signer, app, client):
    send = make_send()
    batch = [sg_event(send, "delivered", "d1"), sg_event(send, "open", "o1", ago=30,
                                                         useragent="Mozilla/5.0 (X11)")]
    batch.append({k: v for k, v in sg_event(send, "deferred", "x").items()
                  if k != "sg_event_id"})  # no sg_event_id: the composite key dedupes it
    batch.append({k: v for k, v in sg_event(send, "delivered", "x", ago=2).items()
                  if k != "sg_event_id"})
    first = signer.post(client, batch)
    second = signer.post(client, batch)
    assert first.status_code == second.status_code == 200
    assert second.get_json()["recorded"] == 0
    assert len(events("email_delivered")) == 2 and len(events("email_opened")) == 1


@pytest.mark.parametrize("event, extra, field, reason", [
    ("bounce", {"type": "bounce", "reason": "550 no such user"}, "bounced_at", "bounce"),
    ("spamreport", {}, "unsubscribed_at", "spamreport"),
    ("unsubscribe", {}, "unsubscribed_at", "unsubscribe"),
    ("group_unsubscribe", {"asm_group_id": 42}, "unsubscribed_at", "unsubscribe"),
    ("dropped", {"reason": "Bounced Address"}, "bounced_at", "bounce"),
])
def test_bounces_complaints_and_unsubscribes_suppress_and_exit(signer, app, client, event,
                                                              extra, field, reason):
    send = make_send()
    other = make_send(make_lead("bob@example.com"))
    response = signer.post(client, [sg_event(send, event, "e1", **extra)])
    assert response.status_code == 200
    db.session.expire_all()
    lead = db.session.get(Lead, send.lead_id)
    assert getattr(lead, field) is not None
    suppression = db.session.scalar(sa.select(Suppression))
    assert (suppression.email, suppression.reason) == ("ann@example.com", reason)
    enrollment = db.session.get(Enrollment, send.enrollment_id)
    assert enrollment.status == "exited" and enrollment.exit_reason
    assert db.session.get(Enrollment, other.enrollment_id).status == "active"


def test_a_soft_block_is_recorded_but_not_suppressed(signer, app, client):
    send = make_send()
    signer.post(client, [sg_event(send, "bounce", "b1", type="blocked", reason="421 later")])
    assert [e.type for e in events("email_blocked")] == ["email_blocked"]
    assert db.session.scalar(sa.select(Suppression)) is None


def test_processed_reconciles_the_send_ledger(signer, app, client):
    send = make_send(status="unknown")
    signer.post(client, [sg_event(send, "processed", "p1")])
    db.session.expire_all()
    send = db.session.get(Send, send.id)
    assert send.status == "sent" and send.provider_message_id == "msg1"


def test_a_batch_of_five_thousand_events(signer, app, client):
    sends = [make_send(make_lead(f"lead{i}@example.com")) for i in range(5)]
    batch = [sg_event(sends[i % 5], "delivered" if i % 2 else "open", f"ev{i}",
                      email=f"lead{i % 5}@example.com", useragent="Mozilla/5.0 (X11)",
                      ago=60 + i % 50)
             for i in range(5000)]
    response = signer.post(client, batch)
    assert response.status_code == 200
    assert response.get_json() == {"received": 5000, "recorded": 5000, "duplicates": 0}
    assert count_events() == 5000
    assert signer.post(client, batch).get_json()["recorded"] == 0


def test_a_high_spam_rate_warns_then_pauses_sending(signer, app, client, auth):
    send = make_send()
    auth.login_as("marketer")
    delivered = [sg_event(send, "delivered", f"d{i}", email=f"x{i}@example.com")
                 for i in range(999)]
    signer.post(client, delivered + [sg_event(None, "spamreport", "s1",
                                              email="x1@example.com")])
    page = client.get("/admin/tracking/").get_data(as_text=True)
    # 1 of 999 is just over 0.1 %: a warning, sending goes on
    assert "Spam reports are at 0.10% of delivered email" in page
    assert "Sending is running" in page
    assert db.session.scalar(sa.select(SendingPause)) is None

    signer.post(client, [sg_event(None, "spamreport", f"s{i}", email=f"x{i}@example.com")
                         for i in range(2, 6)])
    db.session.expire_all()
    pause = db.session.scalar(sa.select(SendingPause))
    assert pause is not None and pause.lifted_at is None and "Spam reports" in pause.reason
    assert db.session.get(Sequence, send.enrollment.sequence_id).status == "paused"
    page = client.get("/admin/tracking/").get_data(as_text=True)
    assert "Sending is paused" in page and "1 sequence was paused." in page

    response = client.post("/admin/tracking/resume",
                           data={"csrf_token": auth.csrf("/admin/tracking/")})
    assert response.status_code == 302
    assert "Sending resumed; 1 sequence active again." in client.get(
        "/admin/tracking/").get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(Sequence, send.enrollment.sequence_id).status == "active"
    assert "Sending is running" in client.get("/admin/tracking/").get_data(as_text=True)


def test_a_retry_signed_hours_ago_is_still_accepted_by_default(signer, app, client):
    """SendGrid retries for 24 h: the default window must let a 23-hour-old batch in."""
    send = make_send()
    assert app.config["SENDGRID_WEBHOOK_MAX_AGE"] == 24 * 3600
    response = signer.post(client, [sg_event(send, "delivered", "d1")],
                           timestamp=int(time.time()) - 23 * 3600)
    assert response.status_code == 200
    assert len(events("email_delivered")) == 1


@pytest.mark.parametrize("age, status", [(5 * 60, 200), (20 * 60, 403), (-3600, 403)])
def test_the_window_is_configurable_and_the_future_is_refused(signer, app_config, make_app,
                                                               age, status):
    other = make_app({**app_config, "SENDGRID_WEBHOOK_MAX_AGE": 600})
    with other.app_context():
        send = make_send()
        response = signer.post(other.test_client(), [sg_event(send, "delivered", "d1")],
                               timestamp=int(time.time()) - age)
        assert response.status_code == status
        assert count_events() == (1 if status == 200 else 0)


def test_a_human_click_upgrades_sendgrids_machine_open(signer, app, client):
    send = make_send()
    signer.post(client, [sg_event(send, "open", "o1", sg_machine_open=True,
                                  useragent="Mozilla/5.0", ip="17.1.2.3", ago=120)])
    signer.post(client, [sg_event(send, "click", "c1", url="https://example.com/guide",
                                  useragent="Mozilla/5.0 (iPhone) Mobile", ip="203.0.113.9",
                                  ago=30)])
    opens = events("email_opened")
    assert [(o.is_bot, o.data.get("reason")) for o in opens] == [
        (True, None), (False, classify.IMPLIED_BY_CLICK)]


def test_opens_and_clicks_of_a_lead_without_tracking_consent_are_not_recorded(signer, app,
                                                                              client):
    send = make_send(make_lead(tracking_consent=False))
    signer.post(client, [sg_event(send, "delivered", "d1"),
                         sg_event(send, "open", "o1", useragent="Mozilla/5.0 (X11)", ago=30),
                         sg_event(send, "click", "c1", url="https://example.com/guide",
                                  useragent="Mozilla/5.0 (X11)", ago=20)])
    assert [e.type for e in events()] == ["email_delivered"]  # delivery is not tracking


def test_a_batch_with_human_activity_asks_scoring(signer, app, client):
    from app import queue
    from nurture.tracking import jobs

    send = make_send()
    signer.post(client, [sg_event(send, "open", "o1", useragent="Mozilla/5.0 (X11)", ago=30)])
    (job,) = queue.get_queue("tracking").jobs
    assert job.func_name == "nurture.tracking.jobs.score_leads"
    assert job.args == ([send.lead_id],)
    jobs.score_leads(*job.args)
    (score,) = queue.get_queue("scoring").jobs
    assert score.args == (send.lead_id,)


def _spam_window(spam: int, delivered: int = 1000, tag: str = "") -> None:
    from nurture.tracking import store

    rows = [store.event_row("email_delivered", lead_id=None, at=utcnow(), dedupe_key=f"d{tag}{i}")
            for i in range(delivered)]
    rows += [store.event_row("spam_reported", lead_id=None, at=utcnow(), dedupe_key=f"s{tag}{i}")
             for i in range(spam)]
    store.insert_events(rows)
    db.session.commit()


def _run_outbox() -> None:
    from app import outbox
    from app.outbox import OutboxJob

    for row_id in db.session.scalars(sa.select(OutboxJob.id).where(OutboxJob.done_at.is_(None))
                                     .order_by(OutboxJob.id)).all():
        outbox.run(row_id)


@pytest.mark.parametrize("spam, level", [(1, "ok"), (2, "warning"), (3, "warning"),
                                         (4, "paused")])
def test_the_spam_rate_thresholds_are_over_a_tenth_and_three_tenths_of_a_percent(
        app, spam, level):
    from nurture.tracking import health

    make_send()  # an active sequence to pause
    _spam_window(spam)  # of 1,000 delivered: 0.1 % is not over 0.1 %, 0.3 % not over 0.3 %
    assert health.check().level == level
    assert (health.sending_paused() is not None) == (level == "paused")


def test_marketers_are_emailed_once_per_level(app):
    from nurture.tracking import jobs
    from tests.helpers import make_user, outbox_files

    make_user("mara@example.com", "marketer")
    make_user("ada@example.com", "admin")
    make_user("sam@example.com", "sales")
    make_send()
    _spam_window(2)  # 0.2 %: a warning
    assert jobs.check_spam_rate() == "warning"
    assert jobs.check_spam_rate() == "warning"  # the next run tells nobody again
    _run_outbox()  # each notice is an outbox job of its own
    warned = outbox_files()
    assert len(warned) == 2
    texts = [f.read_text() for f in warned]
    assert all("Spam reports are above 0.1 %" in t for t in texts)
    assert sorted(a for a in ("mara@example.com", "ada@example.com", "sam@example.com")
                  if any(a in t for t in texts)) == ["ada@example.com", "mara@example.com"]
    _spam_window(3, delivered=0, tag="more")  # now 0.5 %: sending pauses, and that is news
    assert jobs.check_spam_rate() == "paused"
    _run_outbox()
    paused = [f for f in outbox_files() if f not in warned]
    assert len(paused) == 2
    assert all("Sending is paused" in f.read_text() for f in paused)
