"""The lead page people act on: profile edits, stage moves with a reason, notes, tasks with
reminders, accept/reject by sales, sequences and subscription, and a paged full timeline."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa

from app.db import db, utcnow
from app.leads.models import Event, Lead, StageChange
from app.leads.service import change_stage, record_event, upsert_lead
from app.leads.work import LeadNote, LeadTask
from tests.helpers import csrf_from, make_user, outbox_files


def _lead(email="ann@example.com", **values) -> Lead:
    lead = upsert_lead(email, {"first_name": "Ann", "company": "Acme", **values},
                       source="test").lead
    db.session.commit()
    return lead


def _page(client, lead_id, **params):
    response = client.get(f"/admin/leads/{lead_id}", query_string=params)
    assert response.status_code == 200
    return response.get_data(as_text=True)


def test_profile_edit_is_saved_and_shown_with_who_made_it(app, client, auth):
    auth.login_as("marketer")
    lead = _lead()
    token = csrf_from(_page(client, lead.id))
    response = client.post(f"/admin/leads/{lead.id}/profile", data={
        "profile-csrf_token": token, "profile-first_name": "Ann", "profile-last_name": "Lee",
        "profile-company": "Acme Ltd", "profile-job_title": "", "profile-phone": "",
        "profile-country": "gb"})
    assert response.status_code == 302
    db.session.refresh(lead)
    assert (lead.company, lead.last_name, lead.country) == ("Acme Ltd", "Lee", "GB")
    page = _page(client, lead.id)
    assert "Profile edited" in page and "company: Acme → Acme Ltd" in page
    assert "By marketer@example.com" in page


def test_a_bad_country_saves_nothing(app, client, auth):
    auth.login_as("marketer")
    lead = _lead()
    token = csrf_from(_page(client, lead.id))
    response = client.post(f"/admin/leads/{lead.id}/profile", data={
        "profile-csrf_token": token, "profile-company": "Other", "profile-country": "Narnia"})
    assert response.status_code == 400
    assert "two-letter country code" in response.get_data(as_text=True)
    db.session.refresh(lead)
    assert lead.company == "Acme"


def test_stage_move_with_reason_records_the_actor(app, client, auth):
    auth.login_as("marketer")
    lead = _lead()
    change_stage(lead, "mql", reason="score", actor="scoring")
    db.session.commit()
    token = csrf_from(_page(client, lead.id))
    response = client.post(f"/admin/leads/{lead.id}/stage", data={
        "move-csrf_token": token, "move-stage": "sql", "move-reason": "Called, wants a demo"})
    assert response.status_code == 302
    db.session.refresh(lead)
    assert lead.stage == "sql"
    change = db.session.scalars(sa.select(StageChange).order_by(StageChange.id.desc())).first()
    assert (change.actor, change.actor_user.email, change.reason) == (
        "user", "marketer@example.com", "Called, wants a demo")
    assert "Stage MQL → SQL" in _page(client, lead.id)


def test_a_forbidden_move_says_so_and_changes_nothing(app, client, auth):
    auth.login_as("marketer")
    lead = _lead()
    for stage in ("mql", "sql", "customer"):
        change_stage(lead, stage, reason="setup")
    db.session.commit()
    before = db.session.scalar(sa.select(sa.func.count()).select_from(StageChange))
    token = csrf_from(_page(client, lead.id))
    response = client.post(f"/admin/leads/{lead.id}/stage", data={
        "move-csrf_token": token, "move-stage": "mql", "move-reason": "oops"})
    assert response.status_code == 400
    assert "A lead cannot move from Customer to MQL" in response.get_data(as_text=True)
    db.session.refresh(lead)
    assert lead.stage == "customer"
    assert db.session.scalar(sa.select(sa.func.count()).select_from(StageChange)) == before


def test_a_move_without_a_reason_is_refused(app, client, auth):
    auth.login_as("marketer")
    lead = _lead()
    token = csrf_from(_page(client, lead.id))
    response = client.post(f"/admin/leads/{lead.id}/stage", data={
        "move-csrf_token": token, "move-stage": "mql", "move-reason": "  "})
    assert response.status_code == 400
    db.session.refresh(lead)
    assert lead.stage == "lead"


def test_a_long_actor_name_fits(app):
    lead = _lead()
    change_stage(lead, "mql", reason="x", actor="form “" + "A very long form name " * 7 + "”")
    db.session.commit()
    assert len(db.session.scalars(sa.select(StageChange.actor)).all()[-1]) > 40


def test_notes_show_in_the_timeline_escaped(app, client, auth):
    auth.login_as("sales")
    lead = _lead()
    token = csrf_from(_page(client, lead.id))
    client.post(f"/admin/leads/{lead.id}/notes", data={
        "note-csrf_token": token, "note-body": "Asked for <b>pricing</b>"})
    page = _page(client, lead.id)
    assert "Note by sales@example.com" in page
    assert "Asked for &lt;b&gt;pricing&lt;/b&gt;" in page


def test_a_due_task_reminds_its_owner_once(app, client, auth):
    auth.login_as("marketer")
    rep = make_user("rep@example.com", "sales")
    lead = _lead()
    token = csrf_from(_page(client, lead.id))
    due = (utcnow() + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
    response = client.post(f"/admin/leads/{lead.id}/tasks", data={
        "task-csrf_token": token, "task-title": "Call Ann", "task-due_at": due,
        "task-owner_id": str(rep.id)})
    assert response.status_code == 302
    assert "Call Ann" in _page(client, lead.id)
    from app.leads import reminders

    assert reminders.schedule_due() == 0  # not due yet
    assert reminders.schedule_due(now=utcnow() + timedelta(hours=2)) == 1
    (task,) = db.session.scalars(sa.select(LeadTask)).all()
    assert reminders.send(task.id) == "sent"
    assert reminders.send(task.id) == "done"  # a redelivered job sends nothing
    (eml,) = outbox_files()
    text = eml.read_text()
    assert "To: rep@example.com" in text and "Task due: Call Ann" in text
    assert reminders.schedule_due(now=utcnow() + timedelta(hours=3)) == 0


def test_a_task_done_before_it_is_due_is_not_reminded(app, client, auth):
    auth.login_as("marketer")
    lead = _lead()
    user = db.session.scalar(sa.select(Lead.id))
    from app.leads import reminders
    from app.leads.work import add_task

    task = add_task(lead.id, "Email", utcnow() - timedelta(minutes=1), user, None)
    db.session.commit()
    token = csrf_from(_page(client, lead.id))
    client.post(f"/admin/leads/{lead.id}/tasks/{task.id}/done", data={"csrf_token": token})
    assert reminders.send(task.id) == "done before it was due"
    assert outbox_files() == []


def test_a_task_of_a_deactivated_rep_is_not_mailed_to_them(app):
    """A rep who left is deactivated: their open tasks' reminders, which name the lead and
    link to it, no longer go to their mailbox."""
    from app.leads import reminders
    from app.leads.work import add_task

    rep = make_user("left@example.com", "sales")
    task = add_task(_lead().id, "Call Ann", utcnow() - timedelta(minutes=1), rep.id, None)
    rep.deactivate()
    db.session.commit()
    assert reminders.schedule_due() == 1
    assert reminders.send(task.id) == "owner deactivated"
    assert outbox_files() == []


def test_sales_accepts_from_the_lead_page(app, client, auth):
    from app.sales.handoff import on_mql

    auth.login_as("sales")
    lead = _lead()
    change = change_stage(lead, "mql", reason="score", actor="scoring")
    db.session.commit()
    on_mql(change)
    db.session.commit()
    page = _page(client, lead.id)
    assert "Accept lead" in page
    response = client.post(f"/sales/leads/{lead.id}/accept",
                           data={"csrf_token": csrf_from(page)})
    assert response.status_code == 302
    db.session.refresh(lead)
    assert lead.stage == "sql" and lead.owner.email == "sales@example.com"
    assert "Accept lead" not in _page(client, lead.id)


def test_the_timeline_pages_through_everything_once(app, client, auth):
    auth.login_as("marketer")
    lead = _lead()
    start = utcnow() - timedelta(days=5)
    for n in range(45):
        record_event(lead, "page_viewed", url=f"/p/{n}", occurred_at=start + timedelta(hours=n))
    record_event(lead, "email_opened", is_bot=True, bot_reason="Apple Mail privacy proxy",
                 occurred_at=start - timedelta(hours=1))
    db.session.commit()
    seen: list[str] = []
    params: dict = {}
    import re

    for _ in range(5):
        page = _page(client, lead.id, **params)
        seen += re.findall(r'<span class="url">(/p/\d+)</span>', page)
        more = re.search(r'before=([^"#]+)#timeline-h">Older', page)
        if not more:
            break
        from html import unescape
        from urllib.parse import unquote

        params = {"before": unquote(unescape(more.group(1)))}
    assert sorted(seen, key=lambda u: int(u.rsplit("/", 1)[1])) == [f"/p/{n}" for n in range(45)]
    assert len(seen) == 45
    assert "machine" in page and "Apple Mail privacy proxy" in page


def test_a_submission_shows_its_answers(app, client, auth):
    from forms.models import Form, Submission

    auth.login_as("marketer")
    lead = _lead()
    form = Form(name="Demo request")
    db.session.add(form)
    db.session.flush()
    submission = Submission(form_id=form.id, lead_id=lead.id, email=lead.email,
                            values={"email": lead.email, "team_size": "11-50"},
                            consent_given=True, consent_text="Email me about Kindling")
    db.session.add(submission)
    db.session.flush()
    record_event(lead, "form_submitted", data={"form": "Demo request",
                                               "submission_id": submission.id})
    db.session.commit()
    page = _page(client, lead.id)
    assert "team size: 11-50" in page and "Email me about Kindling" in page
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Event)) == 1


def test_the_timeline_pages_through_many_entries_of_one_instant_once(app, client, auth):
    """Entries that share a time (an API batch of page views stamped to the second) are cut
    by (time, kind, id); the page after such a cut read only 20 past the page's size at that
    time, so the rest of the instant never showed: 70 views, 51 on the pages."""
    import re
    from html import unescape
    from urllib.parse import unquote

    auth.login_as("marketer")
    lead = _lead()
    at = (utcnow() - timedelta(days=1)).replace(microsecond=0)
    for n in range(70):
        record_event(lead, "page_viewed", url=f"/p/{n}", occurred_at=at)
    client.post(f"/admin/leads/{lead.id}/notes", data={
        "note-csrf_token": csrf_from(_page(client, lead.id)), "note-body": "Older note"})
    db.session.execute(sa.update(LeadNote).values(created_at=at - timedelta(hours=1)))
    db.session.commit()
    seen: list[str] = []
    notes = 0
    params: dict = {}
    for _ in range(10):
        page = _page(client, lead.id, **params)
        seen += re.findall(r'<span class="url">(/p/\d+)</span>', page)
        notes += page.count("<li>Older note</li>")
        more = re.search(r'before=([^"#]+)#timeline-h">Older', page)
        if not more:
            break
        params = {"before": unquote(unescape(more.group(1)))}
    assert sorted(seen, key=lambda u: int(u.rsplit("/", 1)[1])) == [f"/p/{n}" for n in range(70)]
    assert notes == 1
