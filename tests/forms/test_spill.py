"""The spill journal's replay: a submit the database refuses for what it holds is set aside
(kept, named in the log), and the submits after it still reach the intake table; a database
that refuses everything (down) stops the replay with every file kept in place."""

import json
import logging
from datetime import timedelta

import pytest
import sqlalchemy as sa

from app.db import db, utcnow
from app.leads.models import Lead
from forms import intake, pipeline, spill
from forms.jobs import process_intake
from forms.models import Intake
from tests.forms.support import count
from tests.helpers import database_refusing


def _spilled(form, email: str, minutes_ago: int, **changes) -> str:
    """A submit of `email` kept in the journal (as `intake.receive` keeps it when the INSERT
    is refused), received `minutes_ago`: the journal replays in received order."""
    values = intake.row_values(form, {"email": email}, {}, pipeline.Context(), None)
    values["received_at"] = utcnow() - timedelta(minutes=minutes_ago)
    return spill.append({**values, **changes}).name


def _names(folder) -> list[str]:
    return sorted(p.name for p in folder.glob("*.json")) if folder.is_dir() else []


def _postgresql() -> bool:
    return db.engine.dialect.name == "postgresql"


# What the database refuses in a row itself, whatever the time of the try.
REFUSED_ROWS = {
    "not-null": {"form_id": None},  # IntegrityError, not a duplicate
    "too-long": {"ip": "9" * 200},  # DataError (PostgreSQL: SQLite keeps any length)
    "nul": {"user_agent": "Mozilla\x00"},  # DataError (PostgreSQL text holds no NUL)
}


@pytest.mark.parametrize("refused", sorted(REFUSED_ROWS))
def test_a_submit_the_database_refuses_for_its_content_is_set_aside_and_the_rest_replayed(
        app, make_form, refused, caplog):
    if refused != "not-null" and not _postgresql():
        pytest.skip("SQLite stores this row")
    form = make_form()
    bad = _spilled(form, "bad@example.com", 3, **REFUSED_ROWS[refused])
    _spilled(form, "ann@example.com", 2)
    _spilled(form, "bob@example.com", 1)
    with caplog.at_level(logging.ERROR, logger="forms.spill"):
        assert process_intake() == 2
    assert {lead.email for lead in db.session.scalars(sa.select(Lead))} == {
        "ann@example.com", "bob@example.com"}
    assert not spill.waiting()
    assert _names(spill.folder() / "refused") == [bad]  # kept for a person to look at
    assert spill.refused() == 1
    assert any(bad in record.getMessage() for record in caplog.records
               if record.levelno == logging.ERROR)
    # The next runs replay nothing again and set nothing else aside.
    _spilled(form, "cat@example.com", 0)
    assert process_intake() == 1 and count(Lead) == 3 and spill.refused() == 1


@pytest.mark.parametrize("content", ["", '{"id": "abc", "received_at": "2026-', "[1, 2]",
                                     ('{"id": "abc", "no_such_column": 1, '
                                      '"received_at": "2026-12-01T10:00:00+00:00"}')])
def test_a_journal_file_that_is_no_submit_is_set_aside_too(app, make_form, content, caplog):
    """Truncated, empty (an erasure emptied it), or naming columns the table does not have:
    it is never going to be a row, so it stops counting as a submit waiting."""
    form = make_form()
    _spilled(form, "ann@example.com", 1)
    broken = spill.folder() / "2026-12-01T100000+0000-abc.json"
    broken.write_text(content)
    with caplog.at_level(logging.ERROR, logger="forms.spill"):
        assert process_intake() == 1
    assert count(Lead) == 1 and not spill.waiting()
    assert _names(spill.folder() / "refused") == [broken.name]
    assert (spill.folder() / "refused" / broken.name).read_text() == content
    assert any(broken.name in r.getMessage() for r in caplog.records)


def test_a_database_that_refuses_every_row_keeps_every_file_in_place(app, make_form):
    """Down (a connection refused): not the row's fault. The replay stops, nothing is set
    aside, and the next try once it answers replays them all."""
    form = make_form()
    names = [_spilled(form, f"{who}@example.com", n) for n, who in enumerate(("ann", "bob"))]
    with database_refusing(), pytest.raises(intake.REFUSED):
        spill.replay()
    assert _names(spill.folder()) == sorted(names) and spill.refused() == 0
    assert spill.replay() == 2 and count(Intake) == 2 and spill.refused() == 0


def test_the_intake_status_command_counts_the_submits_set_aside(app, make_form):
    form = make_form()
    _spilled(form, "bad@example.com", 1, form_id=None)
    process_intake()
    out = app.test_cli_runner().invoke(args=["intake", "status"]).output
    assert "1 set aside" in out and "intake-spill/refused" in out, out
    data = json.loads((spill.folder() / "refused").glob("*.json").__next__().read_text())
    assert data["data"] == {"email": "bad@example.com"}


def test_flask_doctor_warns_of_submits_set_aside(app, make_form):
    form = make_form()
    doctor = app.test_cli_runner()
    assert "OK    intake spill" in doctor.invoke(args=["doctor"]).output
    _spilled(form, "bad@example.com", 1, form_id=None)
    process_intake()
    out = doctor.invoke(args=["doctor"]).output
    line = next(line for line in out.splitlines() if "intake spill" in line)
    assert line.startswith("WARN") and "1 spilled submit(s) set aside" in line, out


def test_an_operator_retries_the_submits_set_aside_once_the_cause_is_fixed(app, make_form):
    """`flask intake retry-refused`: after a fix (a file mended by hand, or a release whose
    database takes the row), the set-aside submits go back through the replay in one command;
    one still refused is set aside again and said so."""
    form = make_form()
    mended = _spilled(form, "ann@example.com", 2, form_id=None)
    still_bad = _spilled(form, "bob@example.com", 1, form_id=None)
    process_intake()
    assert spill.refused() == 2 and count(Lead) == 0
    path = spill.folder() / "refused" / mended
    path.write_text(json.dumps({**json.loads(path.read_text()), "form_id": form.id}))

    out = app.test_cli_runner().invoke(args=["intake", "retry-refused"]).output
    assert "2 set-aside submit(s) retried: 1 replayed, 1 set aside again" in out, out
    assert _names(spill.folder() / "refused") == [still_bad] and not spill.waiting()
    assert process_intake() == 1
    assert [lead.email for lead in db.session.scalars(sa.select(Lead))] == ["ann@example.com"]
