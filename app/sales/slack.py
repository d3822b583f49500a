"""Sales alerts in Slack (or any chat that takes Slack's incoming-webhook JSON).

An MQL alert (and its reminders and escalations) goes to the rep's own incoming-webhook URL,
or to the team's for an alert to the team address, beside the email. The message tells the
same story as the email (the lead's sections, plain text, escaped) and carries Accept / Reject
buttons that open the confirm pages (GET shows the page; the decision is a POST there).

At most once: the alert row is claimed (`slack_posted_at`) before the post; a refusal clears
it and raises RetryLater so the outbox tries again after its back-off. The URL goes through
`app.netguard` (checked when saved and again at connect time).
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from flask import current_app

from app import netguard
from app.db import db, rows_matched, utcnow
from app.jobs import RetryLater
from app.leads.models import Lead
from app.leads.story import story
from app.sales import links
from app.sales.models import Alert, SalesRep, SalesSettings

TITLES = {"mql": "New MQL: {name}", "reminder": "Reminder: {name} is still waiting",
          "escalation": "Escalation: {name} has waited past the SLA"}


def target_url(alert: Alert) -> str:
    """The chat URL for this alert: the rep's own, or the team's for a team alert."""
    if alert.kind not in TITLES:
        return ""
    if alert.user_id is not None:
        rep = db.session.scalar(sa.select(SalesRep).where(SalesRep.user_id == alert.user_id))
        return (rep.slack_url or "").strip() if rep is not None else ""
    settings = SalesSettings.load()
    if alert.recipient and alert.recipient.lower() == (settings.team_email or "").lower():
        return (settings.team_slack_url or "").strip()
    return ""


def escape(text: str) -> str:
    """Slack's three control characters; lead-submitted text can never make a link or a
    mention."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def message(alert: Alert) -> dict[str, Any]:
    lead = db.session.get_one(Lead, alert.lead_id)
    title = TITLES[alert.kind].format(name=lead.display_name)
    base = current_app.config["BASE_URL"]
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": title[:150]}}]
    for section in story(lead):
        body = "\n".join(escape(line) for line in section.lines)[:2900]
        blocks.append({"type": "section", "text": {
            "type": "mrkdwn", "text": f"*{escape(section.title)}*\n{body}"}})
    blocks.append({"type": "actions", "elements": [
        {"type": "button", "style": "primary", "text": {"type": "plain_text", "text": "Accept"},
         "url": links.absolute_url("accept", alert.id, lead.id)},
        {"type": "button", "style": "danger", "text": {"type": "plain_text", "text": "Reject"},
         "url": links.absolute_url("reject", alert.id, lead.id)},
        {"type": "button", "text": {"type": "plain_text", "text": "Open the lead"},
         "url": f"{base}/admin/leads/{lead.id}"}]})
    # The notification's text is read as mrkdwn too: escaped like the sections.
    return {"text": escape(title), "blocks": blocks}


def post(alert_id: int) -> str:
    """Outbox job: post one alert to its chat URL, once."""
    alert = db.session.get(Alert, alert_id)
    if alert is None or alert.lead_id is None:
        return "missing"
    url = target_url(alert)
    if not url:
        return "no channel"
    claimed = rows_matched(sa.update(Alert).where(Alert.id == alert.id,
                                                  Alert.slack_posted_at.is_(None))
                           .values(slack_posted_at=utcnow())
                           .execution_options(synchronize_session=False))
    db.session.commit()
    if not claimed:
        return "already posted"
    body = json.dumps(message(alert), ensure_ascii=False).encode("utf-8")
    error = None
    try:
        reply = netguard.post(url, body, {"Content-Type": "application/json"},
                              timeout=float(current_app.config["SALES_WEBHOOK_TIMEOUT"]))
        if not reply.ok:
            error = f"HTTP {reply.status}"
    except netguard.BlockedURL as exc:
        error = f"Refused: {exc}"
    except netguard.OutboundError as exc:
        error = f"Unreachable: {exc}"[:500]
    alert = db.session.get_one(Alert, alert_id)
    alert.slack_error = error
    if error is not None:
        alert.slack_posted_at = None  # a later try may post it
    db.session.commit()
    if error is not None:
        raise RetryLater(f"chat alert {alert_id}: {error}")
    return "posted"
