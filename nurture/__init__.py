"""Nurture: sequences, the engine, the send ledger, rendering, unsubscribe, tracking, scoring."""

from __future__ import annotations

from flask import Flask

DEFAULTS = {
    "NURTURE_TICK_INTERVAL": 5,  # seconds between ticks
    "NURTURE_TICK_BATCH": 200,  # enrollments claimed per batch
    "NURTURE_TICK_MAX_BATCHES": 20,  # per tick; the rest waits for the next one
    "NURTURE_CLAIM_LEASE_SECONDS": 300,  # a claimed row is offered again after this
    "NURTURE_SEND_CLAIM_TIMEOUT": 120,  # a 'claimed' send older than this: its worker died
    "NURTURE_MAX_SEND_ATTEMPTS": 8,
    "NURTURE_RETRY_BASE_SECONDS": 30,
    "NURTURE_RETRY_MAX_SECONDS": 6 * 3600,
    "NURTURE_UNKNOWN_RECHECK_SECONDS": 900,
    "NURTURE_UNKNOWN_WAIT_SECONDS": 24 * 3600,  # then an unknown send is assumed sent
    "NURTURE_GOAL_RECHECK_SECONDS": 3600,
    "NURTURE_GOAL_WAIT_SECONDS": 30 * 24 * 3600,
}


def init_app(app: Flask) -> None:
    """Register this package's blueprints, jobs, periodic work and demo data with the app."""
    import nurture.models  # noqa: F401  this package's tables
    from app.leads.service import add_stage_listener
    from app.pickers import add_picker
    from app.privacy.consent import add_withdrawal_listener
    from app.schedule import add_periodic
    from app.seed import add_seeder
    from app.templating import add_nav
    from forms.pipeline import add_submission_listener
    from nurture import admin, email_picker, views
    from nurture.engine import FIRST_STEPS_QUEUE
    from nurture.enrollment import end_for_purpose
    from nurture.seed import seed_demo

    for name, value in DEFAULTS.items():
        app.config.setdefault(name, value)
    # The worker imports these before forking work-horses: nurture.preload warms what every
    # work-horse would otherwise redo for its chunk of sends.
    preload = tuple(app.config.get("RQ_PRELOAD_MODULES") or ())
    if "nurture.preload" not in preload:
        app.config["RQ_PRELOAD_MODULES"] = preload + ("nurture.preload",)
    app.register_blueprint(views.bp)
    app.register_blueprint(admin.bp)
    from app.templating import add_lead_panel
    from nurture import lead_panel

    app.register_blueprint(lead_panel.bp)
    add_lead_panel(app, lead_panel.lead_panel)
    from app.leads.bulk import BulkAction, add_bulk_action

    add_bulk_action(app, BulkAction("enroll", "Enroll in a sequence", lead_panel.bulk_enroll,
                                    choice=("sequence_id", "Sequence",
                                            lead_panel.active_sequences),
                                    roles=("marketer",)))
    add_nav(app, "nurture.index", "Sequences", "marketer")
    add_periodic(app, "nurture.jobs.tick", int(app.config["NURTURE_TICK_INTERVAL"]))
    # Enrollment and the first step share the first-steps queue, which workers take first.
    add_submission_listener(app, "nurture.jobs.enroll_from_submissions", batch=True,
                            queue=FIRST_STEPS_QUEUE)
    add_stage_listener(app, "nurture.jobs.on_stage_change")
    add_seeder(app, seed_demo)
    add_withdrawal_listener(app, end_for_purpose)  # no journey without its purpose's consent
    _register_personal_data(app)
    add_picker(app, email_picker.PICKER)  # an email step, by subject (scoring rules)
    # The Email report and its daily rollup (app.reports plugs them in).
    from app.reports.registry import add_report, add_rollup
    from nurture import reports

    add_report(app, reports.REPORT)
    add_rollup(app, reports.ROLLUP)
    from app.api.framework import register_resource
    from nurture import rest_api

    register_resource(app, rest_api.blp)  # its /api/v1 resources


def _register_personal_data(app: Flask) -> None:
    """For access and erasure requests (app.privacy.holders): journeys and sends stay for the
    email report's totals, without the rendered subject or the links' addresses; the plain
    suppression row goes (the keyed-hash list replaces it); browser links to the lead go."""
    import sqlalchemy as sa

    from app.privacy.holders import TableHolder, add_erasure_barrier, add_holder
    from nurture.ledger import wait_for_sends_in_flight
    from nurture.models import Send

    add_erasure_barrier(app, wait_for_sends_in_flight)

    def send_ids(lead_id: int):
        return sa.select(Send.id).where(Send.lead_id == lead_id)

    for holder in (
        TableHolder("enrollments", "nurture_enrollments", scrub={}),
        TableHolder("sends", "nurture_sends", scrub={"subject": "", "error": None}),
        TableHolder("send_links", "nurture_send_links", lead_column=None, via=send_ids,
                    scrub={"url": ""}),
        TableHolder("suppressions", "nurture_suppressions", lead_column=None,
                    also_by_email="email"),
        TableHolder("tracking_visitors", "tracking_visitors"),
        TableHolder("scores", "lead_scores", scrub={}),
    ):
        add_holder(app, holder)
