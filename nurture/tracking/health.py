"""Sender reputation: the spam-report rate over the last 24 hours, and what it triggers.

- above `TRACKING_SPAM_WARN_RATE` (0.1 % of delivered): a warning, logged and shown to
  marketers on the Tracking page;
- above `TRACKING_SPAM_PAUSE_RATE` (0.3 %): sending is paused. Two things happen, so the engine
  stops today and can ask tomorrow: every active sequence is set to `paused` (the tick only runs
  active sequences), and a `SendingPause` row records why and which sequences it paused.
  `sending_paused()` is the workspace flag; `lift()` (the "Resume sending" button) resumes the
  sequences it paused.

Marketers (and admins) are also told by email (`notify`, from the periodic check): once per
level per 24 hours, so a reputation problem is seen without anyone opening the Tracking page.
Each notice is an outbox job (`send_notice`) sending through the mail ledger.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

import sqlalchemy as sa
from flask import current_app, render_template
from redis.exceptions import RedisError

from app import mail, outbox, queue
from app.auth.models import Role, User
from app.db import db, utcnow
from app.leads.models import Event
from nurture.models import Sequence, SequenceStatus
from nurture.tracking.models import SendingPause

log = logging.getLogger(__name__)

SPAM_TYPE = "spam_reported"
NOTICE_KEY = "kindling:tracking:spam-notice:"
NOTICE_SECONDS = 24 * 3600


@dataclass
class Health:
    spam: int
    delivered: int
    level: str  # ok | warning | paused
    pause: SendingPause | None

    @property
    def rate(self) -> float:
        return self.spam / self.delivered if self.delivered else 0.0


def counts(hours: int = 24) -> tuple[int, int]:
    since = utcnow() - timedelta(hours=hours)
    found = dict(db.session.execute(
        sa.select(Event.type, sa.func.count())
        .where(Event.type.in_((SPAM_TYPE, "email_delivered")), Event.occurred_at >= since)
        .group_by(Event.type)
    ).all())
    return int(found.get(SPAM_TYPE, 0)), int(found.get("email_delivered", 0))


def sending_paused() -> SendingPause | None:
    """The pause in force, if any: the workspace flag the engine may read."""
    return db.session.scalar(sa.select(SendingPause).where(SendingPause.lifted_at.is_(None))
                             .order_by(SendingPause.id.desc()).limit(1))


def status() -> Health:
    spam, delivered = counts()
    pause = sending_paused()
    rate = spam / delivered if delivered else (1.0 if spam else 0.0)
    level = "ok"
    if pause is not None:
        level = "paused"
    elif spam and rate > float(current_app.config["TRACKING_SPAM_WARN_RATE"]):
        level = "warning"
    return Health(spam, delivered, level, pause)


def check() -> Health:
    """Compute the rate and pause sending when it is over the limit. Commits a new pause."""
    health = status()
    rate = health.spam / health.delivered if health.delivered else (1.0 if health.spam else 0.0)
    if health.pause is None and health.spam and not _recently_lifted() and \
            rate > float(current_app.config["TRACKING_SPAM_PAUSE_RATE"]):
        health.pause = pause(f"Spam reports at {rate:.2%} of delivered email in 24 hours "
                             f"({health.spam} of {health.delivered})", rate)
        health.level = "paused"
        db.session.commit()
    if health.level == "paused":
        log.error("tracking: sending paused: %s", health.pause.reason if health.pause else "")
    elif health.level == "warning":
        log.warning("tracking: spam-report rate %.2f%% (%d of %d delivered in 24 h)",
                    rate * 100, health.spam, health.delivered)
    return health


def _recently_lifted(hours: int = 24) -> bool:
    """A marketer resumed sending within the window: the same reports must not pause again."""
    since = utcnow() - timedelta(hours=hours)
    found = db.session.scalar(sa.select(SendingPause.id).where(SendingPause.lifted_at >= since)
                              .limit(1))
    return found is not None


def pause(reason: str, rate: float) -> SendingPause:
    active = db.session.scalars(sa.select(Sequence).where(
        Sequence.status == SequenceStatus.ACTIVE.value)).all()
    for sequence in active:
        sequence.status = SequenceStatus.PAUSED.value
    row = SendingPause(reason=reason[:300], spam_rate=rate, sequence_ids=[s.id for s in active])
    db.session.add(row)
    db.session.flush()
    return row


def lift(row: SendingPause, by: str) -> int:
    """End the pause; resume the sequences it paused that are still paused. The caller commits."""
    row.lifted_at = utcnow()
    row.lifted_by = by[:320]
    resumed = 0
    for sequence_id in row.sequence_ids or []:
        sequence = db.session.get(Sequence, sequence_id)
        if sequence is not None and sequence.status == SequenceStatus.PAUSED.value:
            sequence.status = SequenceStatus.ACTIVE.value
            resumed += 1
    return resumed


def notify(health: Health) -> int:
    """Tell active marketers and admins about a warning or a pause by email, once per level per
    24 h: one outbox job per person (`send_notice`), so each email goes through the mail ledger
    and is retried on its own. Returns the emails queued. Commits."""
    if health.level not in ("warning", "paused"):
        return 0
    key = NOTICE_KEY + health.level
    try:
        if not queue.connection().set(key, "1", nx=True, ex=NOTICE_SECONDS):
            return 0  # told already
    except RedisError as exc:
        log.warning("tracking: spam-rate notice not sent (%s)", exc)
        return 0
    users = db.session.scalars(sa.select(User.id).where(
        User.active.is_(True), User.role.in_((Role.MARKETER.value, Role.ADMIN.value)))).all()
    if health.level == "paused":
        subject = "Sending is paused: too many spam reports"
        detail = (f"{health.pause.reason if health.pause else 'Spam reports are too high'}. "
                  "Nurture email stays paused until someone presses Resume sending.")
    else:
        subject = "Spam reports are above 0.1 %"
        detail = (f"Spam reports are at {health.rate:.2%} of delivered email in the last 24 "
                  f"hours ({health.spam} of {health.delivered}). Sending pauses above "
                  f"{float(current_app.config['TRACKING_SPAM_PAUSE_RATE']):.1%}.")
    stamp = utcnow().strftime("%Y%m%d%H%M")
    for user_id in users:
        mail_key = f"spam-notice:{health.level}:{stamp}:{user_id}"
        outbox.add("nurture.tracking.health.send_notice", user_id, health.level, subject,
                   detail, mail_key, queue_name="mail", dedupe_key=mail_key)
    db.session.commit()
    outbox.dispatch_committed()
    return len(users)


def send_notice(user_id: int, level: str, subject: str, detail: str, key: str) -> str | None:
    """The outbox job: one spam-rate notice to one marketer or admin, through the mail ledger
    (`key`). Its message id when sent now."""
    user = db.session.get(User, user_id)
    if user is None or not user.active:
        return None
    context = {"user": user, "level": level, "detail": detail,
               "page": f"{current_app.config['BASE_URL']}/admin/tracking/",
               "pause": float(current_app.config["TRACKING_SPAM_PAUSE_RATE"])}
    outcome = mail.deliver(key, lambda: mail.new_email(
        user.email, subject, html=render_template("tracking/mail/spam_notice.html", **context),
        text=render_template("tracking/mail/spam_notice.txt", **context),
        categories=["tracking-health"]))
    return outcome.message_id if outcome.status == "sent" else None
