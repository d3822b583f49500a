"""Accept and reject pages: GET shows, POST acts for a signed-in sales user; tampered links,
second clicks, non-owners and marketers are answered plainly."""

from urllib.parse import unquote

import sqlalchemy as sa

from app.db import db
from app.leads.models import Event, Lead
from app.sales.models import Assignment
from tests.app.sales.helpers import handed_off, link, settings, stage_changes
from tests.helpers import PASSWORD, csrf_from, make_user


def _post(client, path, **data):
    page = client.get(path)
    return client.post(path, data={"csrf_token": csrf_from(page.get_data(as_text=True)), **data})


def test_signed_out_the_link_goes_to_login_and_back(app, client):
    _, alert = handed_off()
    path = link("accept", alert)
    response = client.get(path)
    assert response.status_code == 302
    assert "/login?next=" in response.headers["Location"]
    assert unquote(response.headers["Location"]).endswith(path)  # kept through the login
    assert client.post(path).status_code in (302, 400)  # never acts without a session
    assert db.session.get(Lead, alert.lead_id).stage == "mql"


def test_a_tampered_link_is_refused(app, client, auth):
    _, alert = handed_off()
    auth.login("sam@example.com")
    path = link("accept", alert)
    assert client.get(path[:-3] + "xyz").status_code == 404
    assert client.get(link("accept", alert).replace("/a/", "/r/")).status_code == 404


def test_the_second_use_says_it_was_already_done_and_by_whom(app, client, auth):
    lead, alert = handed_off()
    auth.login("sam@example.com")
    path = link("accept", alert)
    assert _post(client, path).status_code == 200
    again = _post(client, path)
    text = again.get_data(as_text=True)
    assert again.status_code == 200
    assert "Already done" in text and "accepted" in text and "sam@example.com" in text
    assert [c.to_stage for c in stage_changes(lead)].count("sql") == 1
    # and the reject link of the same alert says the same
    assert "Already done" in client.get(link("reject", alert)).get_data(as_text=True)


def test_reject_and_recycle_resets_engagement_with_the_reason(app, client, auth):
    lead, alert = handed_off()
    lead.engagement_score = 42
    db.session.commit()
    auth.login("sam@example.com")
    page = client.get(link("reject", alert))
    assert "Recycle" in page.get_data(as_text=True) and "Reason" in page.get_data(as_text=True)
    response = _post(client, link("reject", alert), outcome="recycled", reason="Too early")
    assert response.status_code == 200
    db.session.expire_all()
    lead = db.session.get(Lead, lead.id)
    assert lead.stage == "recycled" and lead.engagement_score == 0
    last = stage_changes(lead)[-1]
    assert (last.actor, last.reason) == ("user", "Rejected by sam@example.com: Too early")
    reset = db.session.scalar(sa.select(Event).where(Event.type == "engagement_reset"))
    assert reset.data["from"] == 42


def test_the_reset_survives_rescoring_and_the_lead_enters_its_nurture_sequence(app, client,
                                                                              auth):
    from datetime import timedelta

    from app.db import utcnow
    from app.leads.service import record_event
    from nurture.models import Enrollment
    from nurture.scoring import jobs as scoring_jobs
    from tests.nurture.factories import make_sequence

    sequence = make_sequence(name="Recycled", trigger_stage="recycled")
    lead, alert = handed_off()
    for days, kind, url in ((3, "page_viewed", "/pricing"), (2, "form_submitted", None),
                            (1, "email_clicked", None)):
        record_event(lead, kind, url=url, occurred_at=utcnow() - timedelta(days=days))
    db.session.commit()
    scoring_jobs.score_lead(lead.id)
    db.session.expire_all()
    assert db.session.get(Lead, lead.id).engagement_score > 30
    auth.login("sam@example.com")
    _post(client, link("reject", alert), outcome="recycled", reason="Next quarter")
    from app import outbox
    from app.outbox import OutboxJob

    for row in db.session.scalars(sa.select(OutboxJob).where(OutboxJob.done_at.is_(None),
                                                              OutboxJob.job.like("nurture.%"))):
        outbox.run(row.id)
    scoring_jobs.score_lead(lead.id)  # the rescore the reset event itself triggers
    db.session.expire_all()
    assert db.session.get(Lead, lead.id).engagement_score == 0
    enrolled = db.session.scalars(sa.select(Enrollment).where(Enrollment.lead_id == lead.id))
    assert [e.sequence_id for e in enrolled] == [sequence.id]


def test_reject_and_disqualify_needs_a_reason(app, client, auth):
    lead, alert = handed_off()
    auth.login("sam@example.com")
    missing = _post(client, link("reject", alert), outcome="disqualified", reason="")
    assert missing.status_code == 400
    assert _post(client, link("reject", alert), outcome="disqualified",
                 reason="Student").status_code == 200
    assert db.session.get(Lead, lead.id).stage == "disqualified"


def test_a_non_owner_is_refused_and_logged_unless_allowed(app, client, auth):
    lead, alert = handed_off()
    make_user("kim@example.com", "sales")
    auth.login("kim@example.com")
    looked = client.get(link("accept", alert))
    assert looked.status_code == 403 and "was logged" not in looked.get_data(as_text=True)
    refused = _post(client, link("accept", alert))
    assert refused.status_code == 403
    assert "belongs to sam@example.com" in refused.get_data(as_text=True)
    assert "Your attempt was logged." in refused.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(Lead, lead.id).stage == "mql"
    logged = db.session.scalar(sa.select(Event).where(Event.type == "handoff_refused"))
    assert logged.data["by"] == "kim@example.com"

    settings(allow_non_owner=True)
    assert _post(client, link("accept", alert)).status_code == 200
    db.session.expire_all()
    assert db.session.get(Lead, lead.id).stage == "sql"
    decided = db.session.scalar(sa.select(Event).where(Event.type == "handoff_decided"))
    assert decided.data["non_owner"] is True and decided.data["by"] == "kim@example.com"
    assert db.session.scalar(sa.select(Assignment)).decided_by.email == "kim@example.com"
    # The SQL is now Kim's, as the accept page promised; the change of owner is logged.
    assert db.session.get(Lead, lead.id).owner.email == "kim@example.com"
    moved = db.session.scalars(sa.select(Event).where(Event.type == "owner_assigned")
                               .order_by(Event.id)).all()
    assert [(e.data["owner"], e.data["method"]) for e in moved] == [
        ("sam@example.com", "round_robin"), ("kim@example.com", "accepted")]


def test_a_refused_non_owner_logs_what_they_tried_never_what_they_typed(app, client, auth):
    """The refusal's log entry takes the outcome from the form as sent: a made-up one (100 KB,
    a NUL that PostgreSQL refuses in JSON: a 500) must not reach the lead's timeline."""
    lead, alert = handed_off()
    make_user("kim@example.com", "sales")
    auth.login("kim@example.com")
    refused = _post(client, link("reject", alert), outcome="x\x00" + "y" * 5000, reason="r")
    assert refused.status_code == 403
    assert "Your attempt was logged." in refused.get_data(as_text=True)
    logged = db.session.scalar(sa.select(Event).where(Event.type == "handoff_refused"))
    assert logged.data["outcome"] == "rejected" and logged.data["by"] == "kim@example.com"
    _post(client, link("reject", alert), outcome="disqualified", reason="r")
    logged = db.session.scalars(sa.select(Event).where(Event.type == "handoff_refused")
                                .order_by(Event.id)).all()[-1]
    assert logged.data["outcome"] == "disqualified"
    db.session.expire_all()
    assert db.session.get(Lead, lead.id).stage == "mql"


def test_a_team_alert_accepted_gives_the_lead_to_whoever_accepted(app, client, auth):
    settings(team_email="team@example.com")
    lead, alert = handed_off(None)  # no sales user yet: the team address is alerted
    assert alert.recipient == "team@example.com"
    make_user("kim@example.com", "sales")
    auth.login("kim@example.com")
    assert _post(client, link("accept", alert)).status_code == 200
    db.session.expire_all()
    lead = db.session.get(Lead, lead.id)
    assert lead.stage == "sql" and lead.owner.email == "kim@example.com"


def test_a_marketer_cannot_use_the_links(app, client, auth):
    _, alert = handed_off()
    auth.login_as("marketer")
    assert client.get(link("accept", alert)).status_code == 403


def test_a_lead_moved_by_another_path_is_not_changed(app, client, auth):
    lead, alert = handed_off()
    from app.leads.service import change_stage

    change_stage(lead, "customer", reason="signed", actor="user")
    db.session.commit()
    auth.login("sam@example.com")
    page = client.get(link("accept", alert))
    assert "no longer an MQL" in page.get_data(as_text=True)


def test_signing_in_from_the_link_lands_back_on_it(app, client, auth):
    _, alert = handed_off()
    path = link("accept", alert)
    login = client.get(path).headers["Location"]
    response = client.post(login, data={"email": "sam@example.com", "password": PASSWORD,
                                        "csrf_token": auth.csrf()})
    assert response.status_code == 302 and response.headers["Location"] == path
    assert "Accept lead" in client.get(path).get_data(as_text=True)


def test_a_non_owner_cannot_decide_by_moving_the_stage_instead(app, client, auth):
    """Only the owner may accept or reject a waiting handoff (unless the workspace allows
    anyone): Kim, refused on the accept page, moved Sam's MQL to SQL (or to recycled) with the
    lead page's "Change stage" form, or with the list's bulk "Change stage", and it left Sam's
    queue unanswered. The owner still may move it."""
    lead, _alert = handed_off()
    make_user("kim@example.com", "sales")
    auth.login("kim@example.com")
    path = f"/admin/leads/{lead.id}"
    page = client.get(path).get_data(as_text=True)
    moved = client.post(f"{path}/stage", data={"move-csrf_token": csrf_from(page),
                                               "move-stage": "sql", "move-reason": "Mine now"})
    assert moved.status_code == 400
    assert "only its owner may accept or reject" in moved.get_data(as_text=True)
    bulk = client.post("/admin/leads/bulk", data={
        "csrf_token": csrf_from(page), "action": "stage", "stage": "recycled",
        "reason": "Not now", "scope": "ticked", "lead": [str(lead.id)]}, follow_redirects=True)
    assert "1 skipped" in bulk.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(Lead, lead.id).stage == "mql"
    client.post("/logout", data={"csrf_token": csrf_from(page)})
    auth.login("sam@example.com")
    page = client.get(path).get_data(as_text=True)
    owner_moves = client.post(f"{path}/stage", data={
        "move-csrf_token": csrf_from(page), "move-stage": "sql", "move-reason": "Talked"})
    assert owner_moves.status_code == 302
    db.session.expire_all()
    assert db.session.get(Lead, lead.id).stage == "sql"


def test_a_waiting_lead_given_to_another_rep_is_theirs_to_decide(app, client, auth):
    """Sam is away: a marketer gives his waiting MQL to Kim with the list's "Set owner". The
    lead said Kim, but the handoff still named Sam: it stayed in Sam's queue, not Kim's, and
    Kim's "Accept" on the lead page was refused as "belongs to sam@example.com"."""
    lead, _alert = handed_off()
    kim = make_user("kim@example.com", "sales")
    auth.login_as("marketer")
    token = csrf_from(client.get("/admin/leads/").get_data(as_text=True))
    client.post("/admin/leads/bulk", data={"csrf_token": token, "action": "owner",
                                           "owner_id": str(kim.id), "scope": "ticked",
                                           "lead": [str(lead.id)]})
    client.post("/logout", data={"csrf_token": token})
    auth.login("kim@example.com")
    assert lead.email_display in client.get("/sales/queue").get_data(as_text=True)
    page = client.get(f"/admin/leads/{lead.id}").get_data(as_text=True)
    client.post(f"/sales/leads/{lead.id}/accept", data={"csrf_token": csrf_from(page)})
    db.session.expire_all()
    accepted = db.session.get(Lead, lead.id)
    assert (accepted.stage, accepted.owner.email) == ("sql", "kim@example.com")
    assert db.session.scalar(sa.select(Assignment)).decided_by.email == "kim@example.com"


def test_a_non_owner_cannot_decide_by_moving_the_stage_through_the_api(app, client):
    """The same guard holds for a rep's API token: Kim's integration moving Sam's waiting MQL
    to SQL is refused with the reason, and Sam's handoff still waits for Sam."""
    from tests.app.api.conftest import ApiClient, token_for

    lead, _alert = handed_off()
    api = ApiClient(client, token_for("kim@example.com", role="sales"))
    refused = api.post(f"/api/v1/leads/{lead.id}/stage", {"stage": "sql", "reason": "Mine now"})
    assert refused.status_code == 422, refused.get_json()
    assert "only its owner may accept or reject" in refused.get_json()["detail"]
    db.session.expire_all()
    assert db.session.get(Lead, lead.id).stage == "mql"
    owner = ApiClient(client, token_for("sam@example.com", role="sales"))
    assert owner.post(f"/api/v1/leads/{lead.id}/stage",
                      {"stage": "sql", "reason": "Talked"}).status_code == 200
