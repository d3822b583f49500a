"""Fixtures for the forms tests: a form factory and a stand-in for a hosted landing page.

Landing pages belong to campaigns; the hosted path is exercised through a test-only page that
does what a landing page does with `forms.hosted`: build, process, re-render on error.
"""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from flask import Blueprint, abort, make_response, render_template_string, request

from app.db import db
from app.extensions import csrf
from app.visitors import remember
from forms import hosted, pipeline
from forms.admin import create_form
from forms.models import Form, FormField
from tests.forms.support import LISTENER, PAGE, HostedPage


@pytest.fixture
def make_form(app):
    def factory(name: str = "Guide form", fields: list[tuple] | None = None, **settings: Any):
        form = create_form(name)
        specs = fields if fields is not None else [("first_name", "First name", "text", False)]
        for position, (field_name, label, kind, required, *rest) in enumerate(specs, start=1):
            form.fields.append(FormField(name=field_name, label=label, type=kind,
                                         required=required, position=position,
                                         choices=rest[0] if rest else []))
        settings.setdefault("min_submit_seconds", 0)
        for key, value in settings.items():
            setattr(form, key, value)
        form.touch()
        db.session.commit()
        return form

    return factory


@pytest.fixture
def page(app, client):
    """GET /test-page/<key> renders the form; POST submits it like a landing page would.

    It shares the `client` (one browser): the `app` fixture's app context, and so `g`, lives
    across requests in tests, and Flask-WTF keeps the CSRF token in `g`."""
    bp = Blueprint("test_page", __name__)

    @bp.route("/test-page/<key>", methods=["GET", "POST"])
    def show(key: str):
        form = db.session.scalar(sa.select(Form).where(Form.key == key)) or abort(404)
        instance = hosted.build(form)
        if request.method == "POST":
            receipt = hosted.process(form, instance, pipeline.Context(campaign_id=7))
            if receipt is not None:
                return remember(make_response(f"thanks:{receipt.status}", 201))
        html = render_template_string(PAGE, wtform=instance, form_def=form, action=request.path)
        return remember(make_response(html, 422 if request.method == "POST" else 200))

    csrf.exempt(bp)  # a public lead form, like campaigns' landing pages
    app.register_blueprint(bp)
    pipeline.add_submission_listener(app, LISTENER)
    return HostedPage(client)
