"""Forms with a consent checkbox per purpose: each tick is a ledger row with the text shown."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from app.db import db
from app.privacy import consent
from tests.forms.support import leads, submissions


def _purposes():
    news = consent.define("product_news", "Product news", "Email me product news.")
    events = consent.define("events", "Events", "Invite me to events.")
    db.session.commit()
    return news, events


def _ask(form, how):
    from forms import consents

    consents.configure(form, how)
    db.session.commit()


def test_each_purpose_is_its_own_checkbox_and_only_ticked_ones_are_granted(app, make_form, page):
    news, events = _purposes()
    form = make_form()
    _ask(form, {news.id: "ask", events.id: "ask"})
    html = page.get(form).get_data(as_text=True)
    assert 'name="consent_product_news"' in html and "Email me product news." in html
    assert 'name="consent_events"' in html and "Invite me to events." in html

    response = page.post(form, {"email": "ann@example.com", "first_name": "Ann",
                                "consent_events": "y"}, environ_base={"REMOTE_ADDR": "203.0.113.5"})
    assert response.status_code == 201
    lead = leads()[0]
    rows = list(consent.history(lead.id))
    assert [(r.purpose.key, r.granted, r.source, r.ip) for r in rows] == [
        ("events", True, "form", "203.0.113.5")]
    assert rows[0].text.text == "Invite me to events." and "Guide form" in rows[0].detail


def test_a_required_purpose_must_be_ticked(app, make_form, page):
    news, _ = _purposes()
    form = make_form()
    _ask(form, {news.id: "required"})
    response = page.post(form, {"email": "ann@example.com", "first_name": "Ann"})
    assert response.status_code == 422 and "Please tick this box" in response.get_data(as_text=True)
    assert submissions() == []


def test_a_new_text_reaches_the_form_and_the_ledger_keeps_the_old_one(app, make_form, page):
    news, _ = _purposes()
    form = make_form()
    _ask(form, {news.id: "ask"})
    page.post(form, {"email": "ann@example.com", "first_name": "Ann", "consent_product_news": "y"})
    consent.define("product_news", "Product news", "Email me product news, monthly at most.")
    db.session.commit()
    html = page.get(form).get_data(as_text=True)
    assert "monthly at most" in html
    page.post(form, {"email": "bob@example.com", "first_name": "Bob", "consent_product_news": "y"})
    ann, bob = leads()
    assert next(iter(consent.history(ann.id))).text.version == 1
    assert next(iter(consent.history(bob.id))).text.version == 2


def test_the_embed_api_lists_the_purposes(app, make_form, client):
    news, _ = _purposes()
    form = make_form()
    _ask(form, {news.id: "required"})
    body = client.get(f"/api/forms/{form.key}").get_json()
    assert body["consents"] == [{"name": "consent_product_news", "purpose": "product_news",
                                 "text": "Email me product news.", "version": 1,
                                 "required": True}]


def test_marketer_chooses_the_purposes_of_a_form(app, make_form, client, auth):
    news, events = _purposes()
    form = make_form()
    auth.login_as("marketer")
    html = client.get(f"/admin/forms/{form.id}").get_data(as_text=True)
    assert "Consent per purpose" in html
    response = client.post(f"/admin/forms/{form.id}/consents", data={
        "csrf_token": auth.csrf(f"/admin/forms/{form.id}"),
        f"purpose-{news.id}": "required", f"purpose-{events.id}": ""})
    assert response.status_code == 302
    db.session.expire_all()
    assert [(c.purpose.key, c.required) for c in form.consents] == [("product_news", True)]


@pytest.mark.parametrize("path", ["batch", "row by row"])
def test_a_submit_processed_after_a_new_text_keeps_the_text_and_time_it_was_given(
        app, make_form, page, monkeypatch, path):
    """The intake processor may run long after the submit (a backlog, a replayed spill): the
    ledger row names the text the form showed when the person ticked the box, and that time."""
    from flask.testing import FlaskClient

    from forms import intake_batch, processor
    from forms.models import Intake
    from tests.forms.support import HostedPage

    news, _ = _purposes()
    form = make_form()
    _ask(form, {news.id: "ask"})
    visitor = HostedPage(FlaskClient(app))  # no worker behind it: the row waits
    assert visitor.post(form, {"email": "ann@example.com", "first_name": "Ann",
                               "consent_product_news": "y"}).status_code == 201
    (row,) = db.session.scalars(sa.select(Intake)).all()
    consent.define("product_news", "Product news", "Email me product news and partner offers.")
    db.session.commit()
    if path == "row by row":
        def raced(*args, **kwargs):
            raise intake_batch.Conflict("a lead of this batch was made meanwhile")

        monkeypatch.setattr(intake_batch, "apply", raced)
    assert processor.drain() == 1
    (record,) = consent.history(leads()[0].id)
    assert (record.text.version, record.text.text) == (1, "Email me product news.")
    assert record.created_at == row.received_at
