"""The demo form the demo landing page and the embed demo use."""

import sqlalchemy as sa

from app.db import db
from forms.models import Form
from forms.seed import seed_forms


def test_the_demo_form_is_made_once(app):
    first = seed_forms()
    seed_forms()
    (form,) = db.session.scalars(sa.select(Form)).all()
    assert form.name == "Demo guide form"
    assert [(f.name, f.label, f.type) for f in form.fields] == [
        ("email", "Work email", "email"), ("first_name", "First name", "text"),
        ("company", "Company", "text"), ("job_title", "Job title", "text"),
        ("country", "Country", "country")]
    assert form.consent_enabled and form.consent_version == "2026-11" and form.consent_text
    assert "http://127.0.0.1:8765" in form.allowed_origins
    assert any(form.key in line for line in first)


def test_seed_demo_includes_the_form(runner):
    result = runner.invoke(args=["seed-demo"])
    assert result.exit_code == 0, result.output
    assert "Demo guide form" in result.output
