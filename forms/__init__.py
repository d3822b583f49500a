"""Forms: definitions, the hosted and embedded submit paths, spam defence, consent, double opt-in."""

from __future__ import annotations

from flask import Flask

EXPIRE_CONFIRMATIONS_EVERY = 600  # seconds


def init_app(app: Flask) -> None:
    """Register this package's blueprints (with their templates), jobs and demo data."""
    import forms.models  # this package's tables
    from app.pickers import Picker, add_picker, named
    from app.privacy.consent import add_text_listener
    from app.schedule import add_periodic
    from app.seed import add_seeder
    from app.templating import add_nav
    from forms import admin, api, cli, confirm, consents, embed, intake, seed

    # admin's blueprint first: it also makes forms/templates (the render_form macro) loadable.
    for blueprint in (admin.bp, api.bp, confirm.bp, embed.bp):
        app.register_blueprint(blueprint)
    add_nav(app, "forms.index", "Forms", "marketer")
    add_seeder(app, seed.seed_forms)
    add_text_listener(app, consents.on_text_changed)  # a new text: the checkboxes rebuild
    from app.privacy.holders import TableHolder, add_holder
    from app.privacy.retention import add_expiring_column

    add_expiring_column(app, "ip", "submissions", "ip", "created_at")  # truncated after 30 days
    add_expiring_column(app, "raw", "submissions", "raw", "created_at")  # emptied after 2 years
    # Each submit as received, kept beside the submission it became: shortened alike.
    add_expiring_column(app, "ip", "intake", "ip", "received_at")
    add_expiring_column(app, "raw", "intake", "raw", "received_at")

    # What was submitted, raw values included; erased by scrubbing, so counts keep totals.
    add_holder(app, TableHolder(
        "submissions", "submissions", also_by_email="email", order_by="created_at",
        scrub={"email": "", "values": {}, "raw": {}, "utm": {}, "referrer": "",
               "landing_url": "", "ip": "", "user_agent": "", "visitor_id": None,
               "fingerprint": "", "quarantine_reason": None}))
    # The submits as received: those that made the person's submissions, and those still
    # waiting for the processor (or failed) with their address. Deleted: a waiting one would
    # otherwise bring the person back after the erasure.
    add_holder(app, TableHolder("intake", "intake", lead_column=None, via=intake.rows_of_lead,
                                by_address=intake.rows_of_address, order_by="received_at"))
    # Chosen by name wherever a form is picked (scoring rules).
    add_picker(app, Picker("form", "form", *named(forms.models.Form, forms.models.Form.name)))
    add_periodic(app, "forms.jobs.expire_confirmations", EXPIRE_CONFIRMATIONS_EVERY)
    # The sweep: intake rows whose kick Redis lost, and the spill journal (forms.processor).
    app.config.setdefault("INTAKE_SWEEP_SECONDS", 5)
    app.config.setdefault("INTAKE_BATCH_SIZE", 200)
    add_periodic(app, "forms.jobs.process_intake", int(app.config["INTAKE_SWEEP_SECONDS"]),
                 queue="intake")
    cli.init_app(app)  # flask intake process | status
    from app.leads.timeline import add_event_details
    from forms.timeline import submission_answers

    add_event_details(app, "form_submitted", submission_answers)
    from app.api.framework import register_resource
    from forms import rest_api

    register_resource(app, rest_api.blp)  # its /api/v1 resources
