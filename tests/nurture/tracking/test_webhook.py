"""SendGrid's Event Webhook: only signed, fresh batches count; each event counts once."""

import json
import time

import pytest
import sqlalchemy as sa

from app.db import db
from app.leads.models import Event, Lead
from nurture.models import Enrollment, Send, Sequence, Suppression
from nurture.tracking import classify
from nurture.tracking.models import SendingPause
from tests.nurture.tracking.stories import (SendGridSigner, events, make_lead, make_send,
                                            sg_event)


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
    assert [e.type for e in events("email_delivered")] == ["email_delivered"]
    opens = events("email_opened")
    assert sorted((o.is_bot, o.bot_reason) for o in opens) == [
        (False, None), (True, classify.SG_MACHINE_OPEN)]
    (click,) = events("email_clicked")
    assert click.url == "https://example.com/guide" and not click.is_bot
    assert all(e.lead_id == send.lead_id and e.data["send_id"] == str(send.id)
               for e in events())


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
    assert "Sending is paused" in page

    response = client.post("/admin/tracking/resume",
                           data={"csrf_token": auth.csrf("/admin/tracking/")})
    assert response.status_code == 302
    db.session.expire_all()
    assert db.session.get(Sequence, send.enrollment.sequence_id).status == "active"
    assert "Sending is running" in client.get("/admin/tracking/").get_data(as_text=True)
