"""The marketer's screens over HTTP, and the whole journey end to end with a real worker and
the fake SendGrid: enroll → email 1 → wait → branch on a click → email 2 → goal → finished."""

from datetime import timedelta

import pytest
import sqlalchemy as sa
import time_machine

from app.db import db, utcnow
from app.leads.models import Lead
from app.leads.service import change_stage, record_event
from nurture.models import Enrollment, Send, Sequence, Step
from tests.helpers import csrf_from
from tests.nurture.factories import drain, email_step, enrollment_of, make_lead, make_sequence, work


def _token(client, path="/admin/nurture/"):
    return csrf_from(client.get(path).get_data(as_text=True))


def _build_sequence_over_http(client) -> int:
    token = _token(client)
    response = client.post("/admin/nurture/", data={"name": "Guide follow-up",
                                                    "csrf_token": token})
    assert response.status_code == 302
    sequence_id = db.session.scalar(sa.select(Sequence.id))
    base = f"/admin/nurture/{sequence_id}"
    for kind in ("email", "wait", "branch", "email", "goal"):
        assert client.post(f"{base}/steps", data={"kind": kind, "csrf_token": token}) \
            .status_code == 302
    first, wait, branch, second, goal = db.session.scalars(
        sa.select(Step.id).order_by(Step.position)).all()
    posts = {
        first: {"subject": "Your guide, {{ lead.first_name }}", "body_format": "markdown",
                "body": "Hi {{ lead.first_name }}, [read it](https://example.com/guide)"},
        wait: {"wait_hours": "24", "wait_minutes": "0", "wait_until": ""},
        branch: {"condition": "clicked_previous", "yes_step_id": str(second),
                 "no_step_id": str(goal)},
        second: {"subject": "A quick call?", "body_format": "markdown", "body": "Shall we talk?"},
        goal: {"goal_stages": "mql"},
    }
    for step_id, data in posts.items():
        response = client.post(f"{base}/steps/{step_id}", data={**data, "csrf_token": token})
        assert response.status_code == 302, response.get_data(as_text=True)
    assert client.post(f"{base}/activate", data={"csrf_token": token}).status_code == 302
    return sequence_id


@pytest.fixture
def app_config(app_config, fake_sendgrid):
    return {**app_config, "SENDGRID_API_KEY": "SG.test", "SENDGRID_API_HOST": fake_sendgrid.url}


def test_the_whole_journey_end_to_end(app, client, auth, fake_sendgrid):
    auth.login_as("marketer")
    sequence_id = _build_sequence_over_http(client)
    lead_id = make_lead("dana@example.com", first_name="Dana").id
    start = utcnow()

    path = f"/admin/nurture/{sequence_id}/enrollments"
    response = client.post(path, data={"email": "Dana@Example.com", "csrf_token": _token(client)})
    assert response.status_code == 302
    drain()
    (first,) = fake_sendgrid.mail_sends
    assert first.json["subject"] == "Your guide, Dana"

    # Dana clicks (a person, not a link scanner); tracking will record this for real.
    send_id = db.session.scalar(sa.select(Send.id))
    record_event(db.session.get(Lead, lead_id), "email_clicked", is_bot=False,
                 data={"send_id": str(send_id)}, url="https://example.com/guide")
    db.session.commit()

    with time_machine.travel(start + timedelta(hours=23)):
        work()
    assert len(fake_sendgrid.mail_sends) == 1  # still waiting
    with time_machine.travel(start + timedelta(hours=24, minutes=1)):
        work()
    assert [r.json["subject"] for r in fake_sendgrid.mail_sends] == ["Your guide, Dana",
                                                                    "A quick call?"]
    assert enrollment_of(lead_id).status == "active"  # at the goal, waiting for it

    change_stage(db.session.get(Lead, lead_id), "mql", reason="score reached 60")
    db.session.commit()
    with time_machine.travel(start + timedelta(hours=26)):
        work()
    enrollment = enrollment_of(lead_id)
    assert enrollment.status == "finished" and enrollment.exit_reason == "goal reached: mql"
    assert len(fake_sendgrid.mail_sends) == 2

    page = client.get(f"/admin/nurture/{sequence_id}").get_data(as_text=True)
    assert "Your guide" in page
    rows = [line for line in page.split("<tr>") if "Email: Your guide" in line]
    assert "<td>1</td>" in rows[0]  # sent 1 (and clicked 1)


def test_activation_refused_shows_the_errors(app, client, auth):
    auth.login_as("marketer")
    sequence = make_sequence(email_step(body="{{ ''.__class__ }}"), active=False)
    response = client.post(f"/admin/nurture/{sequence.id}/activate",
                           data={"csrf_token": _token(client)})
    assert response.status_code == 400
    assert "cannot go live" in response.get_data(as_text=True)
    assert "__class__" in response.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(Sequence, sequence.id).status == "draft"


def test_screens_need_a_marketer(app, client, auth):
    assert client.get("/admin/nurture/").status_code == 302  # to the login page
    auth.login_as("sales")
    assert client.get("/admin/nurture/").status_code == 403


def test_step_editor_preview_and_test_send(app, client, auth, fake_sendgrid):
    auth.login_as("marketer")
    sequence = make_sequence(email_step(body="Hello **{{ lead.company }}**"))
    step_id = sequence.steps[0].id
    lead_id = make_lead(company="Acme & Sons").id
    base = f"/admin/nurture/{sequence.id}/steps/{step_id}"
    assert client.get(base).status_code == 200
    preview = client.get(f"{base}/preview?lead_id={lead_id}")
    assert "<strong>Acme &amp; Sons</strong>" in preview.get_data(as_text=True)
    assert "sandbox" in preview.headers["Content-Security-Policy"]
    response = client.post(f"{base}/test", data={"csrf_token": _token(client),
                                                 "lead_id": str(lead_id)})
    assert response.status_code == 302
    drain()
    (test,) = fake_sendgrid.mail_sends
    assert test.json["subject"] == "[Test] Hello Ann"
    assert test.json["personalizations"][0]["to"] == [{"email": "marketer@example.com"}]
    assert "Acme &amp; Sons" in test.json["content"][1]["value"]
    db.session.expire_all()
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Send)) == 0  # no ledger


def test_enrollments_can_be_paused_resumed_and_removed(app, client, auth):
    auth.login_as("marketer")
    sequence = make_sequence(email_step(), name="Held")
    lead_id = make_lead().id
    from nurture.enrollment import enroll

    enrollment_id = enroll(lead_id, sequence.id, "test").id
    db.session.commit()
    token = _token(client)
    page = client.get(f"/admin/nurture/{sequence.id}/enrollments").get_data(as_text=True)
    assert "Ann" in page
    for action, status in (("pause", "paused"), ("resume", "active"), ("remove", "exited")):
        response = client.post(f"/admin/nurture/enrollments/{enrollment_id}/{action}",
                               data={"csrf_token": token})
        assert response.status_code == 302
        db.session.expire_all()
        assert db.session.get(Enrollment, enrollment_id).status == status
    assert db.session.get(Enrollment, enrollment_id).exit_reason == \
        "removed by marketer@example.com"


def test_settings_and_step_order_are_edited(app, client, auth):
    auth.login_as("marketer")
    sequence = make_sequence(email_step(subject="A"), email_step(subject="B"), active=False)
    a, b = [s.id for s in sequence.steps]
    token = _token(client)
    response = client.post(f"/admin/nurture/{sequence.id}", data={
        "csrf_token": token, "name": "Renamed", "window_days": ["0", "1"],
        "window_start_hour": "9", "window_end_hour": "17", "timezone": "Europe/Paris",
        "frequency_cap_hours": "24", "reenroll": "never", "on_permanent_failure": "stop",
        "trigger_form_id": "0", "exit_stages": ["sql"]})
    assert response.status_code == 302, response.get_data(as_text=True)
    client.post(f"/admin/nurture/{sequence.id}/steps/{b}/move",
                data={"csrf_token": token, "direction": "up"})
    db.session.expire_all()
    sequence = db.session.get(Sequence, sequence.id)
    assert (sequence.name, sequence.window_days, sequence.window_start_hour,
            sequence.timezone, sequence.exit_stages) == ("Renamed", [0, 1], 9, "Europe/Paris",
                                                         ["sql"])
    assert [s.id for s in sorted(sequence.steps, key=lambda s: s.position)] == [b, a]
    bad = client.post(f"/admin/nurture/{sequence.id}", data={
        "csrf_token": token, "name": "X", "window_start_hour": "9", "window_end_hour": "5",
        "timezone": "Mars/Base", "frequency_cap_hours": "0", "reenroll": "never",
        "on_permanent_failure": "stop", "trigger_form_id": "0"})
    assert bad.status_code == 400
    assert "Europe/London" in bad.get_data(as_text=True)


def test_the_editor_shows_a_syntax_error_activation_is_refused_and_nothing_is_sent(app, client,
                                                                                    auth):
    auth.login_as("marketer")
    sequence = make_sequence(email_step(), active=False)
    base = f"/admin/nurture/{sequence.id}/steps/{sequence.steps[0].id}"
    token = _token(client)
    saved = client.post(base, data={"subject": "Hi", "body_format": "markdown",
                                    "body": "Hi {{ lead.first_name ", "csrf_token": token},
                        follow_redirects=True)
    page = saved.get_data(as_text=True)
    assert "needs work before the sequence can go live" in page
    assert "Body: line 1: unexpected end of template" in page
    refused = client.post(f"/admin/nurture/{sequence.id}/activate", data={"csrf_token": token})
    assert refused.status_code == 400 and "unexpected end of template" in refused.get_data(
        as_text=True)
    lead_id = make_lead().id
    from nurture.enrollment import enroll

    assert enroll(lead_id, sequence.id, "test") is None  # a draft takes nobody
    work()
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Send)) == 0


def test_a_live_sequence_keeps_its_working_template(app, client, auth, fake_sendgrid):
    auth.login_as("marketer")
    sequence = make_sequence(email_step(subject="Working"))
    step_id = sequence.steps[0].id
    response = client.post(f"/admin/nurture/{sequence.id}/steps/{step_id}", data={
        "subject": "Broken", "body_format": "markdown", "body": "{{ ''.__class__.__mro__ }}",
        "csrf_token": _token(client)})
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert "Not saved" in page and "not allowed" in page
    db.session.expire_all()
    assert db.session.get(Step, step_id).subject == "Working"
    lead_id = make_lead().id
    from nurture import engine
    from nurture.enrollment import enroll

    enrollment_id = enroll(lead_id, sequence.id, "test").id
    db.session.commit()
    engine.kick([enrollment_id])
    drain()
    assert [r.json["subject"] for r in fake_sendgrid.mail_sends] == ["Working"]


def test_a_csv_import_enrolls_its_leads_and_starts_their_emails(app, client, auth,
                                                                 fake_sendgrid):
    import io

    auth.login_as("marketer")
    sequence = make_sequence(email_step(subject="Hello {{ lead.first_name | default('there') }}"))
    existing = make_lead("old@example.com", first_name="Olga").id
    csv_bytes = (b"Email,First_Name,Company,timezone\r\n"
                 b"new@example.com,Nina,Acme,Asia/Tokyo\r\n"
                 b"OLD@example.com,,Globex,\r\n"
                 b"not-an-address,Bob,,\r\n"
                 b",Nobody,,\r\n"
                 b"new@example.com,Nina,Acme,\r\n")
    response = client.post(f"/admin/nurture/{sequence.id}/enrollments/import", data={
        "csrf_token": _token(client), "file": (io.BytesIO(csv_bytes), "leads.csv"),
        "basis": "legitimate_interest"},
        content_type="multipart/form-data", follow_redirects=True)
    page = response.get_data(as_text=True)
    assert "CSV import: 2 leads enrolled, 3 rows skipped." in page
    assert "Line 4 skipped: not an email address" in page
    assert "Line 5 skipped: no email" in page
    assert "Line 6 skipped: the lead is already in this sequence" in page
    db.session.expire_all()
    nina = db.session.scalar(sa.select(Lead).where(Lead.email == "new@example.com"))
    assert (nina.first_name, nina.company, nina.attributes["timezone"]) \
        == ("Nina", "Acme", "Asia/Tokyo")
    olga = db.session.get(Lead, existing)
    assert (olga.first_name, olga.company) == ("Olga", "Globex")  # a blank never erases
    from app.leads.models import StageChange

    assert db.session.scalar(sa.select(StageChange.actor).where(
        StageChange.lead_id == nina.id)) == "CSV import"
    sources = {e.source for e in db.session.scalars(sa.select(Enrollment))}
    assert sources == {"CSV import (leads.csv) by marketer@example.com"}
    drain()  # the import kicked them: no waiting for the tick
    assert sorted(r.json["subject"] for r in fake_sendgrid.mail_sends) \
        == ["Hello Nina", "Hello Olga"]


def test_a_csv_import_needs_an_email_column_and_a_live_sequence(app, client, auth):
    import io

    auth.login_as("marketer")
    draft = make_sequence(active=False)
    live = make_sequence(name="Live")
    token = _token(client)
    for sequence, body, message in (
            (live, b"name\r\nAnn\r\n", "one of them &#39;email&#39;"),
            (draft, b"email\r\nann@example.com\r\n", "the sequence is not active")):
        page = client.post(f"/admin/nurture/{sequence.id}/enrollments/import", data={
            "csrf_token": token, "file": (io.BytesIO(body), "x.csv"), "basis": "contract"},
            content_type="multipart/form-data", follow_redirects=True).get_data(as_text=True)
        assert "Not imported" in page and message in page
    db.session.expire_all()
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Enrollment)) == 0
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Lead)) == 0


def test_an_accepted_lead_of_a_new_sequence_gets_no_further_email(app, client, auth,
                                                                   fake_sendgrid):
    """A sequence made in the admin, with its exit stages left as they come: once sales
    accepts the lead (SQL), the journey ends; so it does for customers and the disqualified."""
    auth.login_as("marketer")
    token = _token(client)
    client.post("/admin/nurture/", data={"name": "Onboarding", "csrf_token": token})
    sequence_id = db.session.scalar(sa.select(Sequence.id))
    settings = client.get(f"/admin/nurture/{sequence_id}").get_data(as_text=True)
    for stage in ("sql", "customer", "disqualified"):  # shown ticked, so the marketer sees it
        assert f'value="{stage}" selected' in settings or f'selected value="{stage}"' in settings
    base = f"/admin/nurture/{sequence_id}"
    for kind in ("email", "wait", "email"):
        client.post(f"{base}/steps", data={"kind": kind, "csrf_token": token})
    first, wait, second = db.session.scalars(sa.select(Step.id).order_by(Step.position)).all()
    for step_id, data in {first: {"subject": "Welcome", "body_format": "markdown", "body": "Hi"},
                          wait: {"wait_hours": "24", "wait_minutes": "0", "wait_until": ""},
                          second: {"subject": "Still there?", "body_format": "markdown",
                                   "body": "Hello again"}}.items():
        assert client.post(f"{base}/steps/{step_id}", data={**data, "csrf_token": token}) \
            .status_code == 302
    assert client.post(f"{base}/activate", data={"csrf_token": token}).status_code == 302
    lead_id = make_lead("dana@example.com").id
    client.post(f"{base}/enrollments", data={"email": "dana@example.com", "csrf_token": token})
    drain()
    assert [r.json["subject"] for r in fake_sendgrid.mail_sends] == ["Welcome"]

    change_stage(db.session.get(Lead, lead_id), "sql", reason="accepted by sales",
                 actor="sales")
    db.session.commit()
    with time_machine.travel(utcnow() + timedelta(hours=25)):
        work()
    assert [r.json["subject"] for r in fake_sendgrid.mail_sends] == ["Welcome"]
    enrollment = enrollment_of(lead_id)
    assert enrollment.status == "exited" and "sql" in enrollment.exit_reason


def _campaign(name: str):
    from campaigns.models import Campaign

    campaign = Campaign(name=name, slug=name.lower().replace(" ", "-"))
    db.session.add(campaign)
    db.session.commit()
    return campaign


def test_preview_and_test_send_fill_the_campaign(app, client, auth, fake_sendgrid):
    from nurture.enrollment import enroll

    auth.login_as("marketer")
    sequence = make_sequence(email_step(subject="News from {{ campaign.name }}",
                                        body="Thanks for joining **{{ campaign.name }}**."))
    base = f"/admin/nurture/{sequence.id}/steps/{sequence.steps[0].id}"
    lead_id = make_lead("dana@example.com", first_name="Dana").id
    spring = _campaign("Spring launch")
    enroll(lead_id, sequence.id, "form", campaign_id=spring.id)
    db.session.commit()

    sample = client.get(f"{base}/preview").get_data(as_text=True)
    assert "<strong>Sample campaign</strong>" in sample  # never an empty campaign
    page = client.get(f"{base}?lead_id={lead_id}").get_data(as_text=True)
    assert "“Spring launch”" in page and "the lead&#39;s enrollment" in page
    shown = client.get(f"{base}/preview?lead_id={lead_id}").get_data(as_text=True)
    assert "Thanks for joining <strong>Spring launch</strong>." in shown

    # Another campaign, chosen by name for the preview
    _campaign("Autumn webinar")
    chosen = client.get(f"{base}/preview?lead_id={lead_id}&campaign_id=Autumn webinar")
    assert "<strong>Autumn webinar</strong>" in chosen.get_data(as_text=True)

    client.post(f"{base}/test", data={"csrf_token": _token(client), "lead_id": str(lead_id)})
    drain()
    (test,) = fake_sendgrid.mail_sends
    assert test.json["subject"] == "[Test] News from Spring launch"
    assert "Thanks for joining <strong>Spring launch</strong>" in test.json["content"][1]["value"]

    # The test send takes the campaign picked for the preview, and is one mail-ledger email.
    from app.mail.ledger import MailDelivery

    client.post(f"{base}/test", data={"csrf_token": _token(client), "lead_id": str(lead_id),
                                      "campaign_id": "Autumn webinar"})
    drain()
    assert fake_sendgrid.mail_sends[-1].json["subject"] == "[Test] News from Autumn webinar"
    assert len(fake_sendgrid.mail_sends) == 2
    db.session.expire_all()
    tests = db.session.scalars(sa.select(MailDelivery).where(
        MailDelivery.purpose == "step-test")).all()
    assert len(tests) == 2 and {t.status for t in tests} == {"sent"}


def test_a_preview_for_a_lead_that_does_not_exist_says_so(app, client, auth, fake_sendgrid):
    from app.outbox import OutboxJob

    auth.login_as("marketer")
    sequence = make_sequence(email_step())
    base = f"/admin/nurture/{sequence.id}/steps/{sequence.steps[0].id}"
    page = client.get(f"{base}?lead_id=999").get_data(as_text=True)
    assert "There is no lead #999." in page
    assert "<iframe" not in page and "Send me a test" not in page
    frame = client.get(f"{base}/preview?lead_id=999")
    assert frame.status_code == 404 and "There is no lead #999." in frame.get_data(as_text=True)
    by_email = client.get(f"{base}?lead_id=nobody@example.com").get_data(as_text=True)
    assert "No lead matches “nobody@example.com”" in by_email

    response = client.post(f"{base}/test", data={"csrf_token": _token(client), "lead_id": "999"},
                           follow_redirects=True)
    assert "There is no lead #999. No test was sent." in response.get_data(as_text=True)
    assert db.session.scalar(sa.select(sa.func.count()).select_from(OutboxJob)) == 0


def test_counts_read_as_words_one_lead_two_leads(app, client, auth):
    from nurture.enrollment import enroll

    auth.login_as("marketer")
    sequence = make_sequence(email_step(), name="Busy")
    step_id = sequence.steps[0].id
    enroll(make_lead("ann@example.com").id, sequence.id, "test")
    db.session.commit()
    path = f"/admin/nurture/{sequence.id}/steps/{step_id}/remove"
    page = client.post(path, data={"csrf_token": _token(client)}, follow_redirects=True)
    assert "1 lead is at this step; pause or remove them first." in page.get_data(as_text=True)
    enroll(make_lead("bo@example.com").id, sequence.id, "test")
    db.session.commit()
    page = client.post(path, data={"csrf_token": _token(client)}, follow_redirects=True)
    assert "2 leads are at this step" in page.get_data(as_text=True)
