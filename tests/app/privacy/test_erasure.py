"""Erasure: the address is nowhere afterwards (database, instance files, Redis) except as the
keyed hash; reports keep their totals; a re-import is suppressed; an in-flight send stops."""

from __future__ import annotations

import hashlib
import hmac
import io
from pathlib import Path

import sqlalchemy as sa

from app.db import db
from app.leads.models import Lead
from app.privacy.models import ErasedAddress, Erasure
from app.reports import rollup
from app.reports.models import ReportDaily, ReportLead
from tests.app.privacy.support import (
    ADDRESS,
    person_with_everything,
    scan_database,
    scan_files,
    scan_redis,
)
from tests.helpers import csrf_from, outbox_files


def _totals() -> dict[str, int]:
    rollup.refresh()
    db.session.expire_all()
    rows = db.session.execute(sa.select(ReportDaily.metric, sa.func.sum(ReportDaily.value))
                              .group_by(ReportDaily.metric)).all()
    totals = {metric: int(value) for metric, value in rows}
    totals["report_leads"] = db.session.scalar(sa.select(sa.func.count()).select_from(ReportLead))
    return totals


def test_an_erased_person_is_found_nowhere_but_the_totals_stay(app, runner):
    lead = person_with_everything()
    lead_id = lead.id
    # The person really is everywhere before.
    assert {"leads.email", "submissions.raw", "nurture_suppressions.email",
            "sales_alerts.data", "events.url", "lead_notes.body",
            "webhook_messages.payload"} <= set(scan_database(ADDRESS))
    assert scan_files(ADDRESS) and scan_redis(ADDRESS)
    assert len(outbox_files()) == 1
    before = _totals()
    assert before["leads"] >= 1 and before["page_views"] >= 1

    result = runner.invoke(args=["privacy", "erase", ADDRESS.upper(), "--reason",
                                 "asked by email, ticket 42"])
    assert result.exit_code == 0, result.output
    assert "Erased (audit #" in result.output

    db.session.remove()
    assert scan_database(ADDRESS) == []
    assert scan_files(ADDRESS) == []
    assert scan_redis(ADDRESS) == []
    assert outbox_files() == []
    # What remains: the keyed hash, and an audit row without personal data.
    digest = hmac.new(b"test-secret", ADDRESS.encode(), hashlib.sha256).hexdigest()
    assert db.session.get(ErasedAddress, digest) is not None
    (audit,) = db.session.scalars(sa.select(Erasure))
    assert (audit.actor, audit.reason) == ("cli", "asked by email, ticket 42")
    assert audit.removed["submissions"] == 1 and audit.removed["instance files"] == 2
    tombstone = db.session.get(Lead, lead_id)
    assert tombstone.first_name == "" and tombstone.unsubscribed_at is not None
    # The spilled file kept its other line.
    spilled = (Path(app.instance_path) / "tracking-spill" / "1.jsonl").read_text()
    assert spilled == '{"url": "/other"}\n'
    assert _totals() == before


def test_erasing_an_unknown_address_says_so_and_exits_1(app, runner):
    result = runner.invoke(args=["privacy", "erase", "nobody@example.com", "--reason", "x"])
    assert result.exit_code == 1
    assert "No lead has the address nobody@example.com" in result.output
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Erasure)) == 0


def test_a_reimported_erased_address_gets_no_marketing_email(app, client, auth, runner):
    from tests.nurture.factories import drain, make_sequence

    person_with_everything()
    assert runner.invoke(args=["privacy", "erase", ADDRESS, "--reason", "asked"]).exit_code == 0
    for path in outbox_files():
        path.unlink()
    auth.login_as("marketer")
    sequence = make_sequence(name="Import target")
    page = client.get(f"/admin/nurture/{sequence.id}/enrollments").get_data(as_text=True)
    body = f"email,first_name\n{ADDRESS},Annabel\n".encode()
    response = client.post(f"/admin/nurture/{sequence.id}/enrollments/import", data={
        "csrf_token": csrf_from(page), "file": (io.BytesIO(body), "again.csv"),
        "basis": "consent"}, content_type="multipart/form-data", follow_redirects=True)
    assert "0 leads enrolled, 1 row skipped" in response.get_data(as_text=True)
    assert "unsubscribed" in response.get_data(as_text=True)
    drain()
    assert outbox_files() == []
    again = db.session.scalar(sa.select(Lead).where(Lead.email == ADDRESS))
    assert again is not None and again.unsubscribed_at is not None


def test_opting_in_again_through_a_form_lifts_the_suppression(app, runner):
    from app.privacy import consent
    from forms import pipeline
    from forms.models import Form

    person_with_everything()
    assert runner.invoke(args=["privacy", "erase", ADDRESS, "--reason", "asked"]).exit_code == 0
    form = db.session.scalar(sa.select(Form))
    result = pipeline.accept(form, {"email": ADDRESS, "consent_product_news": True}, {},
                             pipeline.Context(ip="198.51.100.2"))
    lead = result.lead
    assert lead.unsubscribed_at is None and lead.email == ADDRESS
    assert consent.has_consent(lead.id, consent.by_key("product_news").id)
    assert db.session.scalar(sa.select(sa.func.count()).select_from(ErasedAddress)) == 0


def test_the_lead_page_of_an_erased_person_takes_no_personal_data_again(app, client, auth,
                                                                         runner):
    """The tombstone's page says the person was erased and offers no profile, note, task or
    resubscribe form; a post to them anyway (an old tab) saves nothing and says why."""
    from app.leads.service import upsert_lead
    from app.leads.work import LeadNote, LeadTask

    lead = upsert_lead("gone@example.com", {"first_name": "Gina"}, source="test").lead
    db.session.commit()
    auth.login_as("admin")
    token = csrf_from(client.get(f"/admin/leads/{lead.id}").get_data(as_text=True))
    assert runner.invoke(args=["privacy", "erase", "gone@example.com", "--reason", "asked"]
                         ).exit_code == 0
    page = client.get(f"/admin/leads/{lead.id}").get_data(as_text=True)
    assert "erased on request" in page
    assert 'name="profile-first_name"' not in page and 'name="note-body"' not in page
    for path, data in (("profile", {"profile-first_name": "Gina", "profile-country": ""}),
                       ("notes", {"note-body": "Gina called, lives at 1 High St"}),
                       ("tasks", {"task-title": "Call Gina", "task-owner_id": "1"})):
        prefix = data and next(iter(data)).split("-")[0]
        response = client.post(f"/admin/leads/{lead.id}/{path}",
                               data={**data, f"{prefix}-csrf_token": token})
        assert response.status_code == 410, (path, response.status_code)
        assert "erased on request" in response.get_data(as_text=True)
    page = client.get(f"/admin/leads/{lead.id}").get_data(as_text=True)
    assert "Resubscribe" not in page and "no email goes to this person again" in page
    resubscribed = client.post(f"/admin/leads/{lead.id}/subscription/resubscribe",
                               data={"sub-csrf_token": token, "sub-consent_text": "asked"},
                               follow_redirects=True)
    assert "erased on request and gets no email again" in resubscribed.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(Lead, lead.id).first_name == ""
    assert db.session.get(Lead, lead.id).unsubscribed_at is not None
    assert db.session.scalars(sa.select(LeadNote).where(LeadNote.lead_id == lead.id)).all() == []
    assert db.session.scalars(sa.select(LeadTask).where(LeadTask.lead_id == lead.id)).all() == []


def test_a_person_held_only_in_a_quarantined_submit_can_be_exported_and_erased(app, runner):
    """No lead (the spam check held their only submit back), yet their raw values are kept:
    an access request shows them and an erasure removes them; no tombstone lead is made."""
    import json

    from forms import pipeline
    from forms.admin import create_form
    from forms.models import FormField, Submission

    form = create_form("Guide")
    form.fields.append(FormField(name="first_name", label="First name", type="text",
                                 position=1))
    db.session.commit()
    data = {"email": "Quinn@Example.com", "first_name": "Quinn"}
    pipeline.quarantine(form, data, {**data, "note": "call me on 0123"},
                        pipeline.Context(ip="203.0.113.9", user_agent="Firefox"),
                        "filled in too fast")
    exported = runner.invoke(args=["privacy", "export", "quinn@example.com"])
    assert exported.exit_code == 0, exported.output
    document = json.loads(exported.output)
    assert document["lead_id"] is None and document["profile"]["email"] == "quinn@example.com"
    (submission,) = document["sections"]["submissions"]
    assert submission["raw"]["note"] == "call me on 0123"

    result = runner.invoke(args=["privacy", "erase", "quinn@example.com", "--reason", "asked"])
    assert result.exit_code == 0, result.output
    db.session.remove()
    assert scan_database("quinn@example.com") == []
    assert db.session.scalar(sa.select(Submission.raw)) == {}
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Lead)) == 0
    (audit,) = db.session.scalars(sa.select(Erasure))
    assert audit.removed["submissions"] == 1
    digest = hmac.new(b"test-secret", b"quinn@example.com", hashlib.sha256).hexdigest()
    assert db.session.get(ErasedAddress, digest) is not None
    # Nothing anywhere: still "no such person", exit 1.
    again = runner.invoke(args=["privacy", "export", "quinn@example.com"])
    assert again.exit_code == 1 and "No lead has the address" in again.output


def test_a_queued_job_naming_an_address_of_any_length_is_removed(app, runner):
    """RQ pickles a job's arguments: the byte before an address there is its length, which
    for 43 to 46 characters reads as '+', '-' or '.', for 65 as 'A'; the job is still found."""
    from app.leads.service import upsert_lead
    from app.queue import get_queue

    for address in ("a" * 34 + "@example.com", "b" * 33 + "@example.com",
                    "c" * 53 + "@example.com"):
        upsert_lead(address, source="test")
        db.session.commit()
        get_queue("default").enqueue("app.privacy.seed.seed_privacy", address)
        assert scan_redis(address)
        assert runner.invoke(args=["privacy", "erase", address, "--reason", "asked"]
                             ).exit_code == 0
        assert scan_redis(address) == []


def test_a_bulk_actions_skip_reasons_keep_no_erased_address(app, runner):
    """A bulk action lists the leads it skipped by address, for the marketer: after an
    erasure the line stays (the count adds up) without the address; other leads' lines stay."""
    from app.auth.models import User
    from app.leads.bulk import BulkJob, start
    from app.leads.models import ERASED_DISPLAY
    from app.leads.service import upsert_lead
    from tests.helpers import make_user
    from tests.nurture.factories import make_sequence

    user = make_user()
    leads = [upsert_lead(address, source="test").lead
             for address in ("Zed@Example.com", "Bob@example.com")]
    for lead in leads:
        lead.unsubscribed_at = lead.created_at
    sequence = make_sequence(name="News")
    db.session.commit()
    start("enroll", {"sequence_id": sequence.id}, db.session.get(User, user.id),
          lead_ids=[lead.id for lead in leads], lq=None)
    assert "lead_bulk_jobs.reasons" in scan_database("zed@example.com")
    from app.privacy.export import export

    (line,) = export(leads[0])["sections"]["bulk_action_reasons"]  # Bob's line is not theirs
    assert line["reason"] == "Zed@example.com: the lead cannot be emailed (unsubscribed)"
    assert runner.invoke(args=["privacy", "erase", "zed@example.com", "--reason", "asked"]
                         ).exit_code == 0
    db.session.remove()
    assert scan_database("zed@example.com") == []
    (bulk,) = db.session.scalars(sa.select(BulkJob))
    assert bulk.skipped == 2
    assert sorted(bulk.reasons) == sorted([
        f"{ERASED_DISPLAY}: the lead cannot be emailed (unsubscribed)",
        "Bob@example.com: the lead cannot be emailed (unsubscribed)"])


def test_an_address_escaped_in_a_url_or_in_json_is_erased_too(app, runner):
    """Links and buffered hits keep an address as a URL has it (`ann%40example.com`), JSON as
    Python writes it by default (`zo\\u00eb@example.com`): both are the address."""
    import json

    from flask import current_app

    from app.leads.service import upsert_lead
    from app.queue import connection

    for address in ("ann@example.com", "zoë@example.com"):
        upsert_lead(address, source="test")
    db.session.commit()
    conn = connection()
    conn.hset("kindling:tracking:link:99", "0", "https://acme.example/?email=Ann%40Example.com")
    conn.rpush("kindling:tracking:events", json.dumps({"email": "Zoë@example.com"}),
               json.dumps({"email": "bob@example.com"}))
    spill = Path(current_app.instance_path) / "tracking-spill"
    spill.mkdir(parents=True, exist_ok=True)
    (spill / "2.jsonl").write_text(json.dumps({"url": "/p?e=ann%40example.com"}) + "\n"
                                   + json.dumps({"url": "/other"}) + "\n")

    for address in ("ann@example.com", "zoë@example.com"):
        assert runner.invoke(args=["privacy", "erase", address, "--reason", "asked"]
                             ).exit_code == 0
    assert not conn.exists("kindling:tracking:link:99")
    assert conn.lrange("kindling:tracking:events", 0, -1) == [
        json.dumps({"email": "bob@example.com"}).encode()]
    assert (spill / "2.jsonl").read_text() == '{"url": "/other"}\n'


def test_an_unconfirmed_double_opt_in_submit_does_not_lift_an_erasure(app, runner):
    """Anyone can type an erased address into a form: with double opt-in, only the
    confirmation shows it was the person. Until then the address stays suppressed (and a
    later import is still suppressed); the confirmation lifts it."""
    from app.leads.service import upsert_lead
    from app.privacy import consent
    from forms import consents, pipeline
    from forms.admin import create_form
    from forms.confirm import confirm

    upsert_lead("dora@example.com", source="test")
    db.session.commit()
    assert runner.invoke(args=["privacy", "erase", "dora@example.com", "--reason", "asked"]
                         ).exit_code == 0
    news = consent.define("product_news", "Product news", "Email me product news.")
    form = create_form("Newsletter")
    form.double_opt_in = True
    consents.configure(form, {news.id: "ask"})
    db.session.commit()
    result = pipeline.accept(form, {"email": "dora@example.com", "consent_product_news": True},
                             {}, pipeline.Context(ip="198.51.100.2"))
    db.session.commit()
    assert result.submission.status == "pending_confirmation"
    db.session.expire_all()
    lead = db.session.scalar(sa.select(Lead).where(Lead.email == "dora@example.com"))
    assert lead.unsubscribed_at is not None
    assert db.session.scalar(sa.select(sa.func.count()).select_from(ErasedAddress)) == 1

    assert confirm(result.submission)
    db.session.expire_all()
    assert db.session.get(Lead, lead.id).unsubscribed_at is None
    assert db.session.scalar(sa.select(sa.func.count()).select_from(ErasedAddress)) == 0


def test_an_erasure_reason_naming_the_address_keeps_it_out_of_the_audit(app, runner):
    """The audit row holds no personal data, even when the reason typed names the person's
    address (the admin is told not to, but the address is what they had at hand)."""
    from app.leads.service import upsert_lead

    upsert_lead("eve@example.com", source="test")
    db.session.commit()
    result = runner.invoke(args=["privacy", "erase", "eve@example.com", "--reason",
                                 "Mail from Eve@Example.com, ticket 7"])
    assert result.exit_code == 0, result.output
    db.session.remove()
    assert scan_database("eve@example.com") == []
    (audit,) = db.session.scalars(sa.select(Erasure))
    assert audit.reason == "Mail from [the erased address], ticket 7"


def test_a_bulk_action_on_a_search_for_the_address_keeps_no_erased_address(app, runner):
    """A marketer searched the list for the person's address and acted on the result: the
    job's recorded filter named the address; after the erasure it matches nobody."""
    from app.auth.models import User
    from app.leads.bulk import BulkJob, start
    from app.leads.query import LeadQuery
    from app.leads.service import upsert_lead
    from tests.helpers import make_user

    user = make_user()
    upsert_lead("Fay@Example.com", source="test")
    db.session.commit()
    start("stage", {"stage": "mql", "reason": "keen"}, db.session.get(User, user.id),
          lead_ids=None, lq=LeadQuery.parse({"q": "Fay@Example.com"}))
    assert "lead_bulk_jobs.query" in scan_database("fay@example.com")
    assert runner.invoke(args=["privacy", "erase", "fay@example.com", "--reason", "asked"]
                         ).exit_code == 0
    db.session.remove()
    assert scan_database("fay@example.com") == []
    (bulk,) = db.session.scalars(sa.select(BulkJob))
    assert bulk.query == {"q": "[the erased address]"}


def test_a_saved_view_searching_for_the_address_keeps_no_erased_address(app, runner):
    """A saved view of the leads list keeps its filter as a query string, where the address
    is URL-escaped; after the erasure its search (and a name repeating it) match nobody."""
    from urllib.parse import urlencode

    from app.leads.saved_views import SavedView, save
    from app.leads.service import upsert_lead
    from tests.helpers import make_user

    user = make_user()
    upsert_lead("gus@example.com", source="test")
    save(user.id, "Gus@example.com", urlencode({"q": "Gus@Example.com", "stage": "mql"}), False)
    save(user.id, "MQLs", "stage=mql", True)
    db.session.commit()
    assert runner.invoke(args=["privacy", "erase", "gus@example.com", "--reason", "asked"]
                         ).exit_code == 0
    db.session.remove()
    views = {v.name: v.query for v in db.session.scalars(sa.select(SavedView))}
    assert views == {"[the erased address]": "q=%5Bthe+erased+address%5D&stage=mql",
                     "MQLs": "stage=mql"}
