"""An erasure reaches the intake table: the rows a person's submits wrote keep nothing about
them, and a submit still waiting for the processor does not bring them back."""

import pytest
import sqlalchemy as sa
from flask.testing import FlaskClient

from app.db import db
from app.leads.models import Lead
from app.privacy.export import export
from forms import processor
from forms.models import Intake
from tests.app.privacy.support import scan_database
from tests.forms.support import HostedPage


@pytest.fixture
def visitor(app, page):
    return HostedPage(FlaskClient(app))


def test_an_erased_persons_intake_rows_keep_nothing_and_a_waiting_one_is_dropped(
        visitor, make_form, runner):
    form = make_form(consent_enabled=True, consent_text="Email me", consent_version="v1")
    assert visitor.post(form, {"email": "Ann.Person@Example.com", "first_name": "Ann",
                               "consent": "y"}).status_code == 201
    assert processor.drain() == 1
    # Another submit of theirs is still waiting for the processor when the erasure comes.
    assert visitor.post(form, {"email": "ann.person@example.com", "first_name": "Annabel",
                               "consent": "y"}).status_code == 201
    assert visitor.post(form, {"email": "bob@example.com", "first_name": "Bob",
                               "consent": "y"}).status_code == 201
    assert "intake.data" in scan_database("ann.person@example.com")
    # An access request shows both submits as received, the waiting one included.
    lead = db.session.scalar(sa.select(Lead).where(Lead.email == "ann.person@example.com"))
    rows = export(lead)["sections"]["intake"]
    assert [row["data"]["first_name"] for row in rows] == ["Ann", "Annabel"]

    result = runner.invoke(args=["privacy", "erase", "ann.person@example.com",
                                 "--reason", "asked"])
    assert result.exit_code == 0, result.output
    db.session.remove()
    assert scan_database("ann.person@example.com") == []
    assert [c for c in scan_database("annabel") if c.startswith("intake.")] == []

    processor.drain()  # the waiting submit of theirs is not made into a lead again
    db.session.expire_all()
    emails = set(db.session.scalars(sa.select(Lead.email)))
    assert "ann.person@example.com" not in emails and "bob@example.com" in emails
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Intake)
                             .where(Intake.status == "new")) == 0
