"""Tracking: the signals scoring feeds on — email opens and clicks (told apart from machines),
returns to the marketer's site, and SendGrid's delivery events.

Modules: `tokens` (signed ids), `links` (tracked links for the render step), `views` (pixel,
click redirect, site script and pixel), `fastpath` (pixel and click before Flask), `buffer` (Redis list, memory when Redis is down),
`writer` + `jobs` (the batch writer), `classify` + `agents` (human or machine, and why),
`webhook` + `outcomes` (SendGrid Event Webhook), `health` (spam-report rate, sending pause),
`admin` (the Tracking page). See docs in each module.

Consent: a lead whose `attributes["tracking_consent"]` is False (or "no", "false", "0" from an
import) is not tracked: no opens, clicks or visits are stored for them. With
`TRACKING_REQUIRE_CONSENT` on, neither is a lead who never answered (only a yes is tracked).
GPC / DNT headers are honoured when `TRACKING_HONOUR_GPC` is on.
"""

from __future__ import annotations

from flask import Flask

DEFAULTS = {
    "TRACKING_HIGH_INTENT": {"/pricing": "pricing_viewed", "/demo": "demo_viewed"},
    "TRACKING_HONOUR_GPC": True,
    "TRACKING_REQUIRE_CONSENT": False,  # True: only leads with tracking_consent True are tracked
    "TRACKING_MACHINE_SECONDS": 2,  # opens/clicks this soon after delivery are machines
    "TRACKING_SESSION_MINUTES": 30,  # inactivity that makes the next visit a return
    "TRACKING_FLUSH_INTERVAL": 1,  # seconds between batch writer runs
    "TRACKING_BATCH_SIZE": 1000,
    "TRACKING_FAST_PATH": True,  # pixel and click answered in front of Flask (see fastpath)
    "TRACKING_LINK_TTL": 7 * 24 * 3600,  # link targets kept in Redis for the click's hot path
    "TRACKING_SPAM_WARN_RATE": 0.001,
    "TRACKING_SPAM_PAUSE_RATE": 0.003,
    "TRACKING_SPAM_CHECK_INTERVAL": 300,
    "SENDGRID_WEBHOOK_MAX_AGE": 24 * 3600,
    "SENDGRID_WEBHOOK_MAX_BYTES": 32 * 1024 * 1024,
}


def init_app(app: Flask) -> None:
    import nurture.tracking.models  # noqa: F401  this package's tables
    from app.extensions import csrf
    from app.schedule import add_periodic
    from app.templating import add_nav
    from nurture.tracking import admin, fastpath, views, webhook

    for name, value in DEFAULTS.items():
        app.config.setdefault(name, value)
    app.register_blueprint(views.bp)
    app.register_blueprint(webhook.bp)
    app.register_blueprint(admin.bp)
    csrf.exempt(webhook.bp)
    fastpath.install(app)  # in front of every extension's hooks: see fastpath's docstring
    add_nav(app, "tracking_admin.index", "Tracking", "marketer")
    add_periodic(app, "nurture.tracking.jobs.flush", int(app.config["TRACKING_FLUSH_INTERVAL"]),
                 queue="tracking")
    add_periodic(app, "nurture.tracking.jobs.check_spam_rate",
                 int(app.config["TRACKING_SPAM_CHECK_INTERVAL"]), queue="tracking")
    # The render step asks for a tracker per send: tracked links, the open pixel, the honeypot.
    app.extensions["nurture_tracker"] = _tracker
    # Other packages ask `app.machines.machine_reason()` about fetches of emailed links.
    app.extensions["machine_reason"] = _machine_reason


def _machine_reason(req) -> str | None:
    from nurture.tracking import classify

    return classify.by_request("click", method=req.method,
                               user_agent=req.headers.get("User-Agent", ""),
                               ip=req.remote_addr).bot_reason


def _tracker(send_id: int, unsubscribe_url: str, fresh: bool = False):
    from app.db import db
    from nurture.models import Send
    from nurture.tracking import links

    if fresh:  # claimed just now: no links yet, and the caller writes them (render.tracker_for)
        return links.Tracker(send_id, {}, unsubscribe_url, deferred=True)
    send = db.session.get(Send, send_id)
    return links.prepare(send, unsubscribe_url=unsubscribe_url) if send is not None else None
