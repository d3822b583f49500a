"""Building a WTForms class from a definition: safe names, SelectChoice, a cache per version."""

import pytest

from app.db import db
from forms.builder import bind, form_class, name_problem


@pytest.mark.parametrize("name", ["email", "first_name", "job_title2", "a" * 60])
def test_safe_identifiers_are_accepted(name):
    assert name_problem(name) is None


@pytest.mark.parametrize("name", ["", "First", "1st", "job-title", "a" * 61, "name\n",
                                  "csrf_token", "website", "ts", "consent", "token",
                                  "utm_source", "utm_anything", "gclid", "landing_url",
                                  "data", "errors", "meta", "validate", "field_order"])
def test_unsafe_or_reserved_names_are_refused(name):
    assert name_problem(name)


def test_the_class_is_cached_until_the_definition_changes(app, make_form):
    form = make_form()
    first = form_class(form)
    assert form_class(form) is first
    form.fields[1].label = "Given name"
    form.touch()
    db.session.commit()
    rebuilt = form_class(form)
    assert rebuilt is not first
    assert bind(form, {}).first_name.label.text == "Given name"


def test_select_and_country_fields_validate_their_choices(app, make_form):
    form = make_form(fields=[("size", "Size", "select", True, ["Small", "Large"]),
                             ("country", "Country", "country", False)])
    good = bind(form, {"email": "ann@example.com", "size": "Large", "country": "FR"})
    assert good.validate(), good.errors
    bad = bind(form, {"email": "ann@example.com", "size": "Huge", "country": "XX"})
    assert not bad.validate()
    assert set(bad.errors) == {"size", "country"}


def test_phone_and_length_limits(app, make_form):
    form = make_form(fields=[("phone", "Phone", "phone", False),
                             ("company", "Company", "text", False)])
    form.fields[2].max_length = 5
    form.touch()
    db.session.commit()
    bad = bind(form, {"email": "ann@example.com", "phone": "call me", "company": "Acme Ltd"})
    assert not bad.validate()
    assert "digits only" in bad.errors["phone"][0]
    assert "at most 5" in bad.errors["company"][0]
