"""Slack-compatible alert channels: a rep's (or the team's) incoming-webhook URL gets the same
story as the alert email, with Accept / Reject links to the confirm pages; posted once."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from app import outbox
from app.db import db
from app.jobs import RetryLater
from app.outbox import OutboxJob
from app.sales import links, slack
from app.sales.models import Alert, SalesRep
from tests.app.sales.helpers import handed_off, settings
from tests.fakes.webhook_receiver import Receiver
from tests.helpers import csrf_from, make_user

XSS = "<!channel> <https://evil.example|click>"


@pytest.fixture
def app_config(app_config):
    return dict(app_config, OUTBOUND_ALLOWED_NETWORKS="127.0.0.0/8")


@pytest.fixture
def chat():
    server = Receiver().start()
    yield server
    server.stop()


def _slack_rows() -> list[int]:
    return list(db.session.scalars(sa.select(OutboxJob.id)
                                   .where(OutboxJob.job == "app.sales.slack.post")))


def test_a_reps_alert_goes_to_their_chat_with_the_story_and_links(app, client, chat):
    sam = make_user("sam@example.com", "sales")
    db.session.add(SalesRep(user_id=sam.id, weight=1, working_days=[0, 1, 2, 3, 4, 5, 6],
                            slack_url=chat.url))
    db.session.commit()
    _lead, alert = handed_off(owner_email=None, company=XSS)
    assert alert is not None and alert.user_id == sam.id
    [row] = _slack_rows()
    outbox.run(row)
    [got] = chat.received
    message = got.json()
    assert message["text"].startswith("New MQL")
    text = "\n".join(b["text"]["text"] for b in message["blocks"] if b["type"] == "section")
    assert "&lt;!channel&gt;" in text and "<!channel>" not in text  # escaped: no mention, no link
    buttons = {e["text"]["text"]: e["url"] for b in message["blocks"] if b["type"] == "actions"
               for e in b["elements"]}
    accept = buttons["Accept"].removeprefix("http://kindling.test")
    assert accept.startswith("/sales/a/") and buttons["Reject"].split("/sales/r/")[1]
    assert links.read_token("accept", accept.removeprefix("/sales/a/")).alert_id == alert.id
    assert client.get(accept).status_code in (200, 302)  # a page (after sign-in), no decision
    db.session.refresh(alert)
    assert alert.assignment.outcome is None and alert.slack_posted_at is not None
    assert slack.post(alert.id) == "already posted"
    assert len(chat.received) == 1


def test_a_team_alert_goes_to_the_team_chat_and_a_failure_is_retried(app, chat):
    settings(team_email="team@example.com", team_slack_url=chat.url)
    chat.answer(500)
    _lead, alert = handed_off(owner_email=None)
    assert alert is not None and alert.recipient == "team@example.com"
    with pytest.raises(RetryLater):
        slack.post(alert.id)
    db.session.refresh(alert)
    assert alert.slack_posted_at is None and alert.slack_error == "HTTP 500"
    assert slack.post(alert.id) == "posted"
    assert len(chat.received) == 2


def test_the_settings_refuse_a_private_chat_url(make_app, app_config):
    strict = make_app(dict(app_config, OUTBOUND_ALLOWED_NETWORKS=""))
    with strict.app_context():
        from tests.helpers import AuthActions

        client = strict.test_client()
        AuthActions(client).login_as("admin")
        token = csrf_from(client.get("/sales/settings").get_data(as_text=True))
        answer = client.post("/sales/settings", data={
            "action": "settings", "s-csrf_token": token, "s-assignment_mode": "round_robin",
            "s-sla_hours": "8", "s-timezone": "UTC", "s-work_start_hour": "9",
            "s-work_end_hour": "17", "s-team_slack_url": "http://169.254.169.254/hook"})
        assert answer.status_code == 400 and "not allowed" in answer.get_data(as_text=True)
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Alert)) == 0


def test_a_name_never_makes_a_mention_or_a_link_in_the_notification_text(app, chat):
    """The message's `text` (what Slack shows in the notification and reads as mrkdwn) held
    the lead's name as typed: a lead calling themselves "<!channel>" pinged the whole channel,
    past the escaping of the message's sections."""
    sam = make_user("sam@example.com", "sales")
    db.session.add(SalesRep(user_id=sam.id, weight=1, working_days=[0, 1, 2, 3, 4, 5, 6],
                            slack_url=chat.url))
    db.session.commit()
    handed_off(owner_email=None, first_name=XSS)
    [row] = _slack_rows()
    outbox.run(row)
    [got] = chat.received
    text = got.json()["text"]
    assert "&lt;!channel&gt;" in text and "<" not in text and ">" not in text
