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


def test_erasing_an_address_leaves_anothers_that_ends_with_it(app, make_form, runner):
    """`joann@example.com` holds `ann@example.com`: erasing Ann must not empty Joann's
    spilled submit (her lead would never be made) nor drop her queued hits."""
    import json
    from datetime import timedelta

    from app.db import utcnow
    from app.leads.service import upsert_lead
    from app.queue import connection
    from forms import intake, pipeline, spill
    from forms.jobs import process_intake

    upsert_lead("ann@example.com", {"first_name": "Ann"}, source="test")
    db.session.commit()
    form = make_form()
    for minutes, email in ((2, "JoAnn@Example.com"), (1, "ann@example.com")):
        values = intake.row_values(form, {"email": email}, {}, pipeline.Context(), None)
        values["received_at"] = utcnow() - timedelta(minutes=minutes)
        spill.append(values)
    connection().rpush("kindling:tracking:events", json.dumps({"email": "joann@example.com"}),
                       json.dumps({"email": "ann@example.com"}))

    result = runner.invoke(args=["privacy", "erase", "ann@example.com", "--reason", "asked"])
    assert result.exit_code == 0, result.output
    assert connection().lrange("kindling:tracking:events", 0, -1) == [
        json.dumps({"email": "joann@example.com"}).encode()]
    process_intake()
    db.session.expire_all()
    assert "joann@example.com" in set(db.session.scalars(sa.select(Lead.email)))
    assert spill.refused() == 1  # Ann's, emptied by the erasure, set aside
