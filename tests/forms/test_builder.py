"""Building a WTForms class from a definition: safe names, SelectChoice, a cache per version."""

import pytest
from wtforms import SelectChoice

from app.db import db
from forms.builder import bind, form_class, name_problem


@pytest.mark.parametrize("name", ["email", "first_name", "job_title2", "a" * 60])
def test_safe_identifiers_are_accepted(name):
    assert name_problem(name) is None


@pytest.mark.parametrize("name", ["", "First", "1st", "job-title", "a" * 61, "name\n",
                                  "csrf_token", "website", "ts", "consent", "token",
                                  "utm_source", "utm_anything", "gclid", "landing_url",
                                  "data", "errors", "meta", "validate", "field_order",
                                  "query_fields"])
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


@pytest.mark.parametrize("posted", [None, {"c": "GB"}, {"c": ""}, {"c": "nowhere"},
                                    {"c": '"><b>'}])
def test_cached_select_renders_exactly_what_wtforms_renders(posted):
    """The option markup is rendered once per field definition; every render, selected value
    or not, extra attributes or not, must equal WTForms' own."""
    from werkzeug.datastructures import MultiDict
    from wtforms import Form, SelectField

    from forms.builder import CachedSelect, countries

    choices = countries() + [SelectChoice('a"<', "Odd & <value>")]

    class Cached(Form):
        c = SelectField(choices=choices, widget=CachedSelect(), render_kw={"autocomplete": "x"})

    class Plain(Form):
        c = SelectField(choices=choices, render_kw={"autocomplete": "x"})

    for _ in range(2):  # the second render comes from the cache
        cached = Cached(MultiDict(posted)) if posted else Cached()
        plain = Plain(MultiDict(posted)) if posted else Plain()
        assert str(cached.c()) == str(plain.c())
        assert str(cached.c(**{"aria-invalid": "true"})) == str(plain.c(**{"aria-invalid": "true"}))
    picked = Cached(MultiDict({"c": "GB"}))
    assert '<option selected value="GB">' in str(picked.c())
    picked.c.choices = [SelectChoice("GB", "Britain")]  # changed choices: never stale
    assert str(picked.c()) == ('<select autocomplete="x" id="c" name="c">'
                               '<option selected value="GB">Britain</option></select>')


@pytest.mark.parametrize("posted", ["GB", "", "nowhere", '"><b>'])
def test_choice_field_shares_its_tuple_and_answers_as_a_select_field(posted):
    """A ChoiceField given a tuple keeps that very tuple on every instance (no per-submit check
    and copy of ~250 countries), and validates and renders exactly as WTForms' SelectField."""
    from werkzeug.datastructures import MultiDict
    from wtforms import Form, SelectField
    from wtforms.validators import DataRequired

    from forms.builder import CachedSelect, ChoiceField, countries

    choices = tuple(countries())

    class Shared(Form):
        c = ChoiceField(choices=choices, widget=CachedSelect(), validators=[DataRequired()])

    class Plain(Form):
        c = SelectField(choices=list(choices), validators=[DataRequired()])

    for _ in range(2):  # the second time from the widget's cache
        shared, plain = Shared(MultiDict({"c": posted})), Plain(MultiDict({"c": posted}))
        assert shared.c.choices is choices
        assert shared.validate() == plain.validate()
        assert shared.errors == plain.errors
        assert str(shared.c()) == str(plain.c())
    changed = Shared(MultiDict({"c": "GB"}))
    changed.c.choices = [SelectChoice("FR", "France")]  # an instance's own choices still count
    assert not changed.validate() and changed.errors["c"] == ["Not a valid choice."]
    assert str(changed.c()) == ('<select id="c" name="c" required>'
                              '<option value="FR">France</option></select>')
