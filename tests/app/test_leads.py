"""The lead core: one lead per person, nothing erased, every change explained."""

import pytest
import sqlalchemy as sa

from app.db import db
from app.leads.models import Event, Lead, StageChange
from app.leads.service import InvalidEmail, change_stage, normalise_email, record_event, upsert_lead


@pytest.mark.parametrize("raw,identity", [
    ("  Ann.Smith@Example.COM ", "ann.smith@example.com"),
    ("josé@bücher.de", "josé@bücher.de"),
    ("用户@例子.广告", "用户@例子.广告"),
    ("=1+1@example.com", "=1+1@example.com"),
])
def test_email_identity_folds_case_and_space(raw, identity):
    assert normalise_email(raw)[0] == identity


def test_display_form_keeps_what_was_typed():
    assert normalise_email(" Ann.Smith@Example.COM ")[1] == "Ann.Smith@example.com"


@pytest.mark.parametrize("raw", ["a@", "a@b", "a b@example.com", "x" * 300 + "@example.com", ""])
def test_invalid_addresses_are_refused(raw):
    with pytest.raises(InvalidEmail):
        normalise_email(raw)


def test_a_domain_checked_before_gives_the_same_answers_again():
    """The domain checks are remembered (an import's rows share few domains): the second
    time round, every address is normalised or refused exactly as the first time."""
    import importlib

    check = importlib.import_module("email_validator.validate_email").validate_email_domain_name
    addresses = ["Ann@Example.COM", "bob@EXAMPLE.com", "josé@Bücher.de", "jo@bücher.DE",
                 "x@example.test", "y@localhost", "z@-bad-.com", "w@exa_mple.com",
                 "v@" + "a" * 64 + ".com", "u@xn--bcher-kva.de"]

    def answers() -> list[object]:
        out: list[object] = []
        for raw in addresses:
            try:
                out.append(normalise_email(raw))
            except InvalidEmail as exc:
                out.append(str(exc))
        return out

    first = answers()
    hits = check.cache_info().hits
    assert answers() == first
    assert check.cache_info().hits > hits  # the second round did not check them again
    assert first[0] == ("ann@example.com", "Ann@example.com")
    assert first[3] == ("jo@bücher.de", "jo@bücher.de") and isinstance(first[4], str)


def test_same_person_in_another_case_is_one_lead(app):
    first = upsert_lead("Ann@Example.com", {"first_name": "Ann"}, source="form")
    second = upsert_lead(" ann@example.COM", {"company": "Acme"}, source="form")
    db.session.commit()
    assert first.created and not second.created
    assert first.lead.id == second.lead.id
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Lead)) == 1


def test_upsert_fills_blanks_updates_changes_and_never_erases(app):
    upsert_lead("ann@example.com", {"first_name": "Ann", "company": "Acme", "job_title": "CTO"})
    result = upsert_lead("ann@example.com", {"first_name": "", "company": "Acme Ltd",
                                             "phone": "+44 20 7946 0000", "job_title": None,
                                             "favourite_colour": "green"})
    lead = result.lead
    assert lead.first_name == "Ann" and lead.job_title == "CTO"  # blanks erased nothing
    assert lead.company == "Acme Ltd" and lead.phone == "+44 20 7946 0000"
    assert lead.attributes == {"favourite_colour": "green"}
    assert result.changes == {"company": ["Acme", "Acme Ltd"], "phone": ["", "+44 20 7946 0000"],
                              "favourite_colour": [None, "green"]}


def test_new_lead_history_starts_with_its_source(app):
    upsert_lead("ann@example.com", source="demo form")
    db.session.commit()
    (change,) = db.session.scalars(sa.select(StageChange)).all()
    assert (change.from_stage, change.to_stage, change.actor) == (None, "lead", "demo form")


def test_stage_change_records_who_and_why(app):
    lead = upsert_lead("ann@example.com").lead
    change = change_stage(lead, "mql", reason="engagement 62 ≥ 50 and fit B", actor="scoring")
    assert change_stage(lead, "mql", reason="again") is None  # already there: no duplicate row
    db.session.commit()
    assert lead.stage == "mql"
    assert (change.from_stage, change.to_stage, change.reason) == ("lead", "mql",
                                                                   "engagement 62 ≥ 50 and fit B")


def test_events_with_a_dedupe_key_are_written_once(app):
    lead = upsert_lead("ann@example.com").lead
    assert record_event(lead, "email_opened", dedupe_key="sg:abc") is not None
    assert record_event(lead, "email_opened", dedupe_key="sg:abc") is None
    db.session.commit()
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Event)) == 1


def test_unique_email_is_enforced_by_the_database(app):
    db.session.add(Lead(email="a@example.com", email_display="a@example.com"))
    db.session.add(Lead(email="a@example.com", email_display="A@example.com"))
    with pytest.raises(sa.exc.IntegrityError):
        db.session.commit()
    db.session.rollback()


def test_stage_listeners_get_work_in_the_same_transaction(app):
    from app.leads.service import add_stage_listener
    from app.outbox import OutboxJob

    add_stage_listener(app, "app.mail.jobs.send_test_email")
    lead = upsert_lead("ann@example.com").lead
    change = change_stage(lead, "mql", reason="test")
    db.session.rollback()
    assert db.session.scalar(sa.select(sa.func.count()).select_from(OutboxJob)) == 0  # nothing kept
    lead = upsert_lead("ann@example.com").lead
    change = change_stage(lead, "mql", reason="test")
    db.session.commit()
    rows = db.session.scalars(sa.select(OutboxJob)).all()
    assert ("app.mail.jobs.send_test_email", [change.id]) in [(r.job, r.args) for r in rows]


def test_story_tells_who_and_what_with_sections_from_features(app):
    from app.leads.story import Section, add_story_section, story

    lead = upsert_lead("ann@example.com", {"first_name": "Ann", "company": "Acme"}).lead
    record_event(lead, "page_viewed", url="/pricing")
    record_event(lead, "email_opened", is_bot=True, bot_reason="scanner")
    db.session.commit()
    add_story_section(app, lambda lead: Section("Extra", [f"fit {lead.fit_score}"]))
    titles = [s.title for s in story(lead)]
    assert titles[0] == "Who" and "Extra" in titles and titles[-1] == "Recent activity"
    who, recent = story(lead)[0], story(lead)[-1]
    assert "Company: Acme" in who.lines
    assert len(recent.lines) == 1 and "/pricing" in recent.lines[0]  # the machine open is left out


def test_values_longer_than_a_column_are_kept_as_far_as_they_fit(app):
    result = upsert_lead("ann@example.com", {"first_name": "A" * 150, "company": "C" * 250,
                                             "country": "gbr"})
    db.session.commit()  # would raise on PostgreSQL if a value did not fit
    lead = result.lead
    assert lead.first_name == "A" * 100 and lead.company == "C" * 200 and lead.country == "GB"
