"""The leads list: filters in the query string, sorts, keyset pages (no OFFSET, no whole-table
count), saved views, bulk actions (ticked leads now; a whole filter as a job with progress)."""

from __future__ import annotations

import re
from datetime import timedelta
from html import unescape

import pytest
import sqlalchemy as sa

from app.db import db, utcnow
from app.leads import engagement
from app.leads.bulk import BulkJob, run_bulk
from app.leads.models import Lead
from app.leads.service import change_stage, upsert_lead
from tests.helpers import csrf_from, make_user

NAMES = re.compile(r'<a href="/admin/leads/\d+">([^<]+)</a>')


def _lead(email, **values) -> Lead:
    lead = upsert_lead(email, values, source="test").lead
    db.session.flush()
    return lead


def _names(html: str) -> list[str]:
    return [unescape(n) for n in NAMES.findall(html)]


def _next(html: str) -> str | None:
    found = re.search(r'<a href="([^"]+)" rel="next">', html)
    return unescape(found.group(1)) if found else None


def test_filters_live_in_the_query_string(app, client, auth):
    auth.login_as("marketer")
    rep = make_user("rep@example.com", "sales")
    hot = _lead("hot@example.com", first_name="Hot", company="Acme")
    hot.fit_score, hot.owner_id = 35, rep.id
    engagement.store(hot, 80.0)
    change_stage(hot, "mql", reason="t")
    cold = _lead("cold@example.com", first_name="Cold", company="Acme")
    cold.fit_score = 5
    gone = _lead("gone@example.com", first_name="Gone")
    gone.unsubscribed_at = utcnow()
    db.session.commit()
    get = lambda **q: _names(client.get("/admin/leads/", query_string=q).get_data(as_text=True))
    assert set(get()) == {"Hot", "Cold", "Gone"}
    assert get(stage="mql") == ["Hot"]
    assert get(grade="A") == ["Hot"]  # default bands: A ≥ 30, B ≥ 20, C ≥ 10, D ≥ 0
    assert set(get(grade="D")) == {"Cold", "Gone"} and get(grade="B") == []
    assert get(owner=str(rep.id)) == ["Hot"]
    assert set(get(owner="none")) == {"Cold", "Gone"}
    assert get(eng_min="50") == ["Hot"]
    assert set(get(eng_max="50")) == {"Cold", "Gone"}
    assert get(suppressed="yes") == ["Gone"]
    assert set(get(q="acm")) == {"Hot", "Cold"}
    tomorrow = (utcnow() + timedelta(days=1)).date().isoformat()
    assert get(created_from=tomorrow) == []
    assert set(get(active_to=tomorrow)) == {"Hot", "Cold", "Gone"}
    bad = client.get("/admin/leads/?eng_min=lots&created_from=31/03/2026")
    assert bad.status_code == 400
    text = bad.get_data(as_text=True)
    assert "Use a number" in text and "Use a date like 2026-03-31" in text
    assert set(_names(text)) == {"Hot", "Cold", "Gone"}  # the rest of the filter still applies


def test_the_fit_column_shows_the_grade_the_filter_picks_by(app, client, auth):
    """The filter asks for a fit grade (A–F); the column showed only points, so a marketer
    could not see which rows a grade would keep."""
    auth.login_as("marketer")
    for email, points in (("a@example.com", 35), ("c@example.com", 12), ("f@example.com", -10)):
        _lead(email).fit_score = points
    db.session.commit()
    html = client.get("/admin/leads/").get_data(as_text=True)
    cells = [unescape(c) for c in re.findall(r'<td class="num fit">(.*?)</td>', html)]
    assert sorted(cells) == ["A · 35", "C · 12", "F · -10"]


@pytest.mark.parametrize("sort,direction", [("fit", "desc"), ("name", "asc"),
                                            ("created", "desc"), ("engagement", "desc"),
                                            ("activity", "asc")])
def test_keyset_pages_walk_every_match_once_in_order(app, client, auth, sort, direction):
    auth.login_as("marketer")
    start = utcnow() - timedelta(days=30)
    for n in range(120):
        lead = _lead(f"l{n:03d}@example.com", first_name=f"F{n % 7}", last_name=f"L{n % 11}")
        lead.fit_score = n % 13
        lead.created_at = start + timedelta(minutes=n % 17)  # ties: the id breaks them
        lead.last_activity_at = start + timedelta(hours=n % 5)
        engagement.store(lead, float(n % 9) * 10, start + timedelta(days=n % 3))
    db.session.commit()
    statements: list[str] = []

    def record(conn, cursor, statement, parameters, *args):
        # SQLite's dialect writes "LIMIT ? OFFSET ?" (offset 0) for every limit; PostgreSQL
        # writes an OFFSET only when one is asked for.
        statements.append(statement.upper().replace("LIMIT ? OFFSET ?", "LIMIT ?"))

    sa.event.listen(db.engine, "before_cursor_execute", record)
    try:
        seen: list[str] = []
        url: str | None = f"/admin/leads/?sort={sort}&dir={direction}"
        pages = 0
        while url:
            html = client.get(url).get_data(as_text=True)
            found = re.findall(r'<small>([^<]+@example\.com)</small>', html)
            seen += found
            url = _next(html)
            pages += 1
    finally:
        sa.event.remove(db.engine, "before_cursor_execute", record)
    assert pages == 3 and len(seen) == 120 and len(set(seen)) == 120
    leads = {lead.email: lead for lead in db.session.scalars(sa.select(Lead))}
    keys = {"fit": lambda lead: (lead.fit_score, lead.id),
            "name": lambda lead: (lead.last_name, lead.first_name, lead.id),
            "created": lambda lead: (lead.created_at, lead.id),
            "engagement": lambda lead: (lead.engagement_key, lead.id),
            "activity": lambda lead: (lead.last_activity_at, lead.id)}[sort]
    expected = sorted(leads.values(), key=keys, reverse=direction == "desc")
    assert seen == [lead.email_display for lead in expected]
    assert not [s for s in statements if "OFFSET" in s]
    counts = [s for s in statements if "COUNT(" in s and "FROM LEADS" in s]
    assert counts and all("LIMIT" in s for s in counts)  # bounded counts only


def test_a_saved_view_keeps_the_filter(app, client, auth):
    auth.login_as("marketer")
    _lead("ann@example.com", first_name="Ann")
    db.session.commit()
    page = client.get("/admin/leads/?stage=mql&sort=fit").get_data(as_text=True)
    client.post("/admin/leads/views", data={"csrf_token": csrf_from(page), "name": "Hot MQLs",
                                            "query": "stage=mql&sort=fit"})
    listed = client.get("/admin/leads/").get_data(as_text=True)
    assert '<a href="/admin/leads/?stage=mql&amp;sort=fit">Hot MQLs</a>' in listed


def test_bulk_on_ticked_leads_runs_at_once(app, client, auth):
    auth.login_as("marketer")
    rep = make_user("rep@example.com", "sales")
    a = _lead("a@example.com", first_name="=HYPERLINK(1)")
    b = _lead("b@example.com", first_name="B")
    for stage in ("mql", "sql", "customer"):
        change_stage(b, stage, reason="setup")
    db.session.commit()
    token = csrf_from(client.get("/admin/leads/").get_data(as_text=True))
    owner = client.post("/admin/leads/bulk", data={
        "csrf_token": token, "action": "owner", "owner_id": str(rep.id), "scope": "ticked",
        "lead": [str(a.id), str(b.id)]}, follow_redirects=True)
    assert "Finished: 2 leads done" in owner.get_data(as_text=True)
    db.session.expire_all()
    assert {a.owner_id, b.owner_id} == {rep.id}
    no_reason = client.post("/admin/leads/bulk", data={
        "csrf_token": token, "action": "stage", "stage": "mql", "scope": "ticked",
        "lead": [str(a.id)]}, follow_redirects=True)
    assert "a reason is required; nothing changed" in no_reason.get_data(as_text=True)
    moved = client.post("/admin/leads/bulk", data={
        "csrf_token": token, "action": "stage", "stage": "mql", "reason": "Trade show",
        "scope": "ticked", "lead": [str(a.id), str(b.id)]}, follow_redirects=True)
    text = moved.get_data(as_text=True)
    assert "1 lead done, 1 skipped" in text
    assert "b@example.com: A lead cannot move from Customer to MQL" in text
    db.session.expire_all()
    assert (a.stage, b.stage) == ("mql", "customer")
    export = client.post("/admin/leads/bulk", data={
        "csrf_token": token, "action": "export", "scope": "ticked",
        "lead": [str(a.id), str(b.id)]}, follow_redirects=True)
    link = re.search(r'href="(/admin/leads/bulk/\d+/file)"', export.get_data(as_text=True))
    csv_text = client.get(link.group(1)).get_data(as_text=True)
    assert csv_text.splitlines()[0].startswith("id,email,first_name")
    assert "'=HYPERLINK(1)" in csv_text and len(csv_text.splitlines()) == 3


def test_a_bulk_action_on_ticked_leads_that_breaks_says_so(app, client, auth):
    """An action that fails in the request (here: an error of the action itself) left its job
    'running' for good, its page refreshing forever; it says it stopped, and how far it got."""
    from dataclasses import replace

    auth.login_as("marketer")
    a = _lead("a@example.com")
    db.session.commit()
    broken = replace(app.extensions["bulk_actions"]["owner"],
                     apply=lambda *args: (_ for _ in ()).throw(RuntimeError("boom")))
    app.extensions["bulk_actions"]["owner"] = broken
    token = csrf_from(client.get("/admin/leads/").get_data(as_text=True))
    page = client.post("/admin/leads/bulk", data={
        "csrf_token": token, "action": "owner", "owner_id": "", "scope": "ticked",
        "lead": [str(a.id)]}, follow_redirects=True)
    text = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "Failed: Stopped by an error after 0 of 1 leads" in text
    assert "refreshes itself" not in text
    assert db.session.scalar(sa.select(BulkJob.status)) == "failed"


def test_a_bulk_action_on_ten_thousand_leads_runs_as_a_job(app, client, auth):
    auth.login_as("marketer")
    rep = make_user("rep@example.com", "sales")
    now = utcnow()
    db.session.execute(sa.insert(Lead), [
        {"email": f"bulk{n}@example.com", "email_display": f"bulk{n}@example.com",
         "first_name": "", "last_name": "", "company": "Bulk", "job_title": "", "phone": "",
         "country": "", "attributes": {}, "stage": "lead", "fit_score": 0,
         "engagement_score": 0.0, "engagement_key": engagement.NO_KEY, "created_at": now,
         "updated_at": now, "last_activity_at": now} for n in range(10_000)])
    db.session.commit()
    token = csrf_from(client.get("/admin/leads/?q=bulk").get_data(as_text=True))
    response = client.post("/admin/leads/bulk", data={
        "csrf_token": token, "action": "owner", "owner_id": str(rep.id), "scope": "all",
        "query": "q=bulk"})
    assert response.status_code == 302
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Queued" in page and '<meta http-equiv="refresh"' in page and "<progress" in page
    (job,) = db.session.scalars(sa.select(BulkJob)).all()
    assert job.status == "queued" and job.done == 0  # nothing ran in the request
    assert run_bulk(job.id) == "done"
    assert run_bulk(job.id) == "done"  # a redelivered job does nothing more
    db.session.expire_all()
    assert (job.total, job.done) == (10_000, 10_000)
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Lead)
                             .where(Lead.owner_id == rep.id)) == 10_000
    finished = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Finished: 10,000 leads done" in finished and 'value="100"' in finished


def test_the_campaign_filter_follows_every_event_writer_and_pages_by_keyset(app, client, auth):
    """A lead is in campaign C once any event of C is written for it: one by one, in bulk, or
    an anonymous visitor's event attached to it later (the triggers of lead_campaigns). Pages
    walk the members newest first (or any other sort) once each; created_at moves follow."""
    from app.leads.models import Event
    from app.leads.service import record_event

    auth.login_as("marketer")
    start = utcnow() - timedelta(days=30)
    leads = []
    for n in range(130):
        lead = _lead(f"c{n:03d}@example.com", first_name=f"C{n:03d}")
        lead.created_at = start + timedelta(minutes=n % 23)  # ties: the id breaks them
        lead.fit_score = (n % 7) * 6  # grade C (10–19 points): n % 7 in (2, 3)
        leads.append(lead)
    db.session.commit()
    for lead in leads[:40]:
        record_event(lead, "page_viewed", campaign_id=7)
        record_event(lead, "email_clicked", campaign_id=7)  # twice: still one membership
    record_event(leads[40], "page_viewed", campaign_id=8)  # another campaign
    record_event(leads[41], "page_viewed")  # no campaign
    db.session.execute(sa.insert(Event), [  # a bulk writer (Core, many rows)
        {"lead_id": lead.id, "type": "form_submitted", "occurred_at": utcnow(),
         "campaign_id": 7, "is_bot": False} for lead in leads[50:120]])
    db.session.execute(sa.insert(Event), [  # a visitor's, before anyone knows who they are
        {"lead_id": None, "visitor_id": "v-1", "type": "page_viewed", "occurred_at": utcnow(),
         "campaign_id": 7, "is_bot": False}])
    db.session.commit()
    db.session.execute(sa.update(Event).where(Event.visitor_id == "v-1")
                       .values(lead_id=leads[125].id))
    leads[0].created_at = start + timedelta(days=5)  # now the newest member
    db.session.commit()
    members = [*leads[:40], *leads[50:120], leads[125]]
    assert len(members) == 111

    def walk(query: str) -> list[str]:
        seen: list[str] = []
        url: str | None = f"/admin/leads/?{query}"
        while url:
            html = client.get(url).get_data(as_text=True)
            seen += re.findall(r'<small>([^<]+@example\.com)</small>', html)
            url = _next(html)
        return seen

    newest = sorted(members, key=lambda lead: (lead.created_at, lead.id), reverse=True)
    assert walk("campaign=7") == [lead.email_display for lead in newest]
    assert walk("campaign=7&dir=asc") == [lead.email_display for lead in reversed(newest)]
    by_fit = sorted(members, key=lambda lead: (lead.fit_score, lead.id), reverse=True)
    assert walk("campaign=7&sort=fit") == [lead.email_display for lead in by_fit]
    grade_c = [lead for lead in newest if 10 <= lead.fit_score < 20]
    assert 0 < len(grade_c) < len(members)
    assert walk("campaign=7&grade=C") == [lead.email_display for lead in grade_c]
    assert walk("campaign=8") == [leads[40].email_display]
    assert walk("campaign=9") == []
    statements: list[str] = []
    record = lambda conn, cursor, statement, *args: statements.append(" ".join(statement.split()))
    sa.event.listen(db.engine, "before_cursor_execute", record)
    try:
        page = client.get("/admin/leads/?campaign=7").get_data(as_text=True)
    finally:
        sa.event.remove(db.engine, "before_cursor_execute", record)
    assert "111 leads match" in page
    # The page and its count walk the campaign's members (their index), never the events.
    assert not [s for s in statements if "FROM events" in s or "JOIN events" in s]
    walked = [s for s in statements if "FROM leads JOIN lead_campaigns" in s]
    assert walked and "ORDER BY lead_campaigns.created_at DESC" in walked[0]
    counted = client.get("/admin/leads/?campaign=7&grade=C").get_data(as_text=True)
    assert f"{len(grade_c)} leads match" in counted
    # Filter results as "has an event of the campaign" said them before the table.
    has_event = set(db.session.scalars(sa.select(Event.lead_id).where(Event.campaign_id == 7)))
    assert has_event == {lead.id for lead in members}
    db.session.execute(sa.delete(Lead).where(Lead.id == leads[1].id))  # memberships go too
    db.session.commit()
    assert len(walk("campaign=7")) == 110


class _Killed(Exception):
    """The worker killed between writing a batch and committing it."""


@pytest.mark.parametrize("killed_at", [1, 2])
def test_a_bulk_export_cut_short_and_delivered_again_lists_each_lead_once(
        app, client, auth, monkeypatch, killed_at):
    """RQ delivers at least once: a worker killed after a batch's rows reached the file but
    before its progress was committed runs the job again. The file then held that batch twice
    (or, cut in the first batch, its rows before a second header's worth of the same rows)."""
    import csv
    import dataclasses
    import io

    from app.leads import bulk

    auth.login_as("marketer")
    leads = [_lead(f"cut{n}@example.com", company="Cut") for n in range(5)]
    db.session.commit()
    monkeypatch.setattr(bulk, "BATCH", 2)
    calls: list[list[int]] = []

    def killed_once(ids, params, user, job):
        outcome = bulk.export_rows(ids, params, user, job)
        calls.append(ids)
        if len(calls) == killed_at:
            raise _Killed
        return outcome

    registered = app.extensions["bulk_actions"]
    monkeypatch.setitem(registered, "export",
                        dataclasses.replace(registered["export"], apply=killed_once))
    token = csrf_from(client.get("/admin/leads/?q=cut").get_data(as_text=True))
    client.post("/admin/leads/bulk", data={"csrf_token": token, "action": "export",
                                           "scope": "all", "query": "q=cut"})
    (job,) = db.session.scalars(sa.select(BulkJob)).all()
    with pytest.raises(_Killed):
        run_bulk(job.id)
    db.session.rollback()  # what the killed worker had not committed is gone
    assert run_bulk(job.id) == "done"
    text = client.get(f"/admin/leads/bulk/{job.id}/file").get_data(as_text=True)
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0][:2] == ["id", "email"]
    assert [row[1] for row in rows[1:]] == [lead.email_display for lead in leads]


def test_every_lead_matching_means_those_there_when_the_action_was_asked(app, client, auth):
    """A bulk action on a whole filter runs later, as a job: a lead that arrived in between
    (a form submit while the job waited in the queue or ran) was not on the page the user
    acted on, and the action took it too (here: given to a rep, past the assignment rules)."""
    auth.login_as("marketer")
    rep = make_user("rep@example.com", "sales")
    shown = [_lead(f"acme{n}@example.com", company="Acme") for n in range(3)]
    db.session.commit()
    token = csrf_from(client.get("/admin/leads/?q=acme").get_data(as_text=True))
    client.post("/admin/leads/bulk", data={
        "csrf_token": token, "action": "owner", "owner_id": str(rep.id), "scope": "all",
        "query": "q=acme"})
    (job,) = db.session.scalars(sa.select(BulkJob)).all()
    late = _lead("acme-late@example.com", company="Acme")
    db.session.commit()
    assert run_bulk(job.id) == "done"
    db.session.expire_all()
    assert [lead.owner_id for lead in shown] == [rep.id] * 3
    assert late.owner_id is None
    assert (job.total, job.done) == (3, 3)


def test_a_filter_on_a_deactivated_owner_shows_as_chosen(app, client, auth):
    """The owner choices were the active users only: a saved view (or link) for the leads of
    a rep who has left listed just their leads under an owner box saying "Anyone", and the
    next "Show leads" dropped that filter without a word (a bulk action then took everyone)."""
    auth.login_as("marketer")
    rep = make_user("gone-rep@example.com", "sales")
    mine = _lead("kept@example.com", first_name="Kept")
    mine.owner_id = rep.id
    _lead("other@example.com", first_name="Other")
    rep.active = False
    db.session.commit()
    html = client.get(f"/admin/leads/?owner={rep.id}").get_data(as_text=True)
    assert _names(html) == ["Kept"]
    assert re.search(rf'<option value="{rep.id}" selected>gone-rep@example.com', html)


def test_a_filter_on_a_campaign_past_the_first_500_shows_as_chosen(app, client, auth):
    """The campaign box lists the first 500 campaigns by name: a view of a later one showed
    "Any" over that campaign's leads, and the next "Show leads" dropped the filter."""
    from campaigns.models import Campaign

    auth.login_as("marketer")
    db.session.add_all([Campaign(name=f"C{n:04d}", slug=f"c{n:04d}") for n in range(501)])
    db.session.commit()
    last = db.session.scalar(sa.select(Campaign).where(Campaign.name == "C0500"))
    html = client.get(f"/admin/leads/?campaign={last.id}").get_data(as_text=True)
    assert re.search(rf'<option value="{last.id}" selected>C0500</option>', html)
