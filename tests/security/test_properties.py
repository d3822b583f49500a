"""Property-based tests (hypothesis): the form pipeline (any unicode → a clear error or a lead,
never a 500), email normalisation, the CSV writer's formula defusing and token signing. Kept
small (a few dozen examples each, no deadline) so CI stays quick."""

from __future__ import annotations

import csv
import io

import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.db import db
from app.leads.models import Lead
from app.leads.service import InvalidEmail, normalise_email
from app.sales import links
from app.sales.export import FORMULA_STARTS, defuse
from campaigns import tokens as campaign_tokens
from forms.admin import create_form
from forms.models import FormField
from nurture import unsubscribe
from nurture.tracking import tokens as tracking_tokens

SITE = "https://www.acme.example"
FAST = settings(max_examples=40, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])
ids = st.integers(min_value=1, max_value=2**53)
any_text = st.text(max_size=400)  # every code point but surrogates, NUL and controls included
# What a post can carry: lone surrogates too (JSON escapes them).
posted_text = st.text(st.characters(codec=None, exclude_categories=()), max_size=400)
addresses = st.one_of(st.emails(), any_text, st.builds(lambda local, domain: f"{local}@{domain}",
                                                      any_text, st.sampled_from([
                                                          "example.com", "Example.COM",
                                                          "exämple.com"])))


def _embedded_form():
    form = create_form("Any input")
    for position, (name, kind, required) in enumerate(
            [("first_name", "text", False), ("company", "text", False),
             ("message", "textarea", False)], start=1):
        form.fields.append(FormField(name=name, label=name.title(), type=kind,
                                     required=required, position=position, choices=[]))
    form.allowed_origins, form.min_submit_seconds = [SITE], 0
    form.touch()
    db.session.commit()
    return form


@FAST
@given(email=addresses, first_name=posted_text, company=posted_text, message=posted_text,
       extra=st.dictionaries(posted_text, posted_text, max_size=3), form_encoded=st.booleans())
def test_any_unicode_gives_a_clear_error_or_a_lead_never_a_500(app, client, email, first_name,
                                                               company, message, extra,
                                                               form_encoded):
    form = _embedded_form()
    token = client.get(f"/api/forms/{form.key}", headers={"Origin": SITE}).get_json()["token"]
    fields = {**extra, "email": email, "first_name": first_name, "company": company,
              "message": message, "token": token}
    url = f"/api/forms/{form.key}/submissions"
    response = (client.post(url, data=fields, headers={"Origin": SITE}) if form_encoded
                else client.post(url, json=fields, headers={"Origin": SITE}))
    assert response.status_code in (202, 422), (response.status_code, response.get_data()[:300])
    body = response.get_json()
    if response.status_code == 422:
        assert body["errors"] and all(isinstance(m, list) and m for m in body["errors"].values())
    else:
        assert body["status"] == "accepted"
        identity = normalise_email(email)[0]
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Lead)
                                 .where(Lead.email == identity)) == 1


@settings(max_examples=200, deadline=None)
@given(addresses)
def test_email_normalisation_is_stable_and_ignores_case_and_space(raw):
    try:
        identity, display = normalise_email(raw)
    except InvalidEmail as exc:
        assert str(exc)  # a reason to show
        return
    assert identity == identity.strip().lower() and "@" in identity
    assert display.lower() == identity
    assert normalise_email(display) == (identity, display)  # idempotent
    assert normalise_email(f"  {display}\t")[0] == identity
    assert normalise_email(display.upper())[0] == identity or not display.isascii()


cells = st.one_of(st.none(), any_text, st.integers(), st.floats(allow_nan=False))


@settings(max_examples=300, deadline=None)
@given(st.lists(cells, min_size=1, max_size=6))
def test_the_csv_writer_defuses_every_formula_and_keeps_the_text(row):
    out = io.StringIO()
    csv.writer(out).writerow([defuse(v) for v in row])
    (read,) = list(csv.reader(io.StringIO(out.getvalue(), newline="")))
    for value, cell in zip(row, read, strict=True):
        assert not cell.startswith(FORMULA_STARTS), cell
        if isinstance(value, str):
            assert cell in (value, "'" + value)  # defused, never otherwise changed
            assert (cell == "'" + value) == value.startswith(FORMULA_STARTS)


@FAST
@given(a=ids, b=ids)
def test_tokens_carry_their_ids_and_nothing_else(app, a, b):
    assert links.read_token("accept", links.make_token("accept", a, b)) == links.LinkTarget(a, b)
    signed = campaign_tokens.load_download(campaign_tokens.download_token(a, b))
    assert signed is not None and (signed.first, signed.second) == (a, b)
    assert unsubscribe.read_token(unsubscribe.make_token(a, b)) == (a, b)
    assert tracking_tokens.read_click(tracking_tokens.click_token(a, b)) == (a, b)
    assert tracking_tokens.read_open(tracking_tokens.open_token(a)) == a


@FAST
@given(st.text(max_size=300))
def test_any_text_as_a_token_is_refused_without_an_error(app, text):
    assert links.read_token("accept", text) is None
    assert campaign_tokens.load_download(text) is None
    assert campaign_tokens.load_thanks(text) is None
    assert unsubscribe.read_token(text) is None
    assert tracking_tokens.read_click(text) is None and tracking_tokens.read_open(text) is None
