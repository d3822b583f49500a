"""The admin shell shows leads to staff, escaped, with their whole story."""

from app.db import db
from app.leads.service import change_stage, record_event, upsert_lead


def test_lead_page_shows_profile_timeline_and_history_escaped(client, auth, app):
    lead = upsert_lead("eve@example.com", {"first_name": "<script>alert(1)</script>",
                                           "company": "=HYPERLINK(\"http://evil.test\")"},
                       source="form").lead
    record_event(lead, "page_viewed", url="/pricing?<b>")
    record_event(lead, "email_opened", is_bot=True, bot_reason="Apple Mail privacy proxy")
    change_stage(lead, "mql", reason="engagement 55 ≥ 50", actor="scoring")
    db.session.commit()
    auth.login_as("sales")
    html = client.get(f"/admin/leads/{lead.id}").get_data(as_text=True)
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "/pricing?&lt;b&gt;" in html
    assert "engagement 55 ≥ 50" in html and "machine" in html


def test_leads_list_filters_by_stage_and_search(client, auth, app):
    upsert_lead("ann@acme.example.com", {"company": "Acme"})
    mql = upsert_lead("bob@beta.example.com", {"company": "Beta"}).lead
    change_stage(mql, "mql", reason="test")
    db.session.commit()
    auth.login_as("marketer")
    by_stage = client.get("/admin/leads/?stage=mql").get_data(as_text=True)
    assert "bob@beta.example.com" in by_stage and "ann@acme.example.com" not in by_stage
    by_search = client.get("/admin/leads/?q=acme").get_data(as_text=True)
    assert "ann@acme.example.com" in by_search and "bob@beta" not in by_search


def test_unknown_lead_is_404(client, auth):
    auth.login_as("marketer")
    assert client.get("/admin/leads/999").status_code == 404


def test_dashboard_counts_leads_by_stage(client, auth, app):
    upsert_lead("ann@example.com")
    db.session.commit()
    auth.login_as("marketer")
    html = client.get("/admin/").get_data(as_text=True)
    assert "<strong>1</strong> Lead" in html


def test_outbox_page_lists_and_shows_messages(client, auth, app):
    from app import mail

    mail.backend().send(mail.new_email("ann@example.com", "Hello <Ann>", "<p>Hi</p>", "Hi"))
    auth.login_as("marketer")
    listing = client.get("/admin/outbox/").get_data(as_text=True)
    assert "Hello &lt;Ann&gt;" in listing
    name = mail.backend().messages()[0].name
    assert client.get(f"/admin/outbox/{name}").status_code == 200
    html_part = client.get(f"/admin/outbox/{name}/html")
    assert "sandbox" in html_part.headers["Content-Security-Policy"]


def test_feature_packages_can_add_a_panel_to_the_lead_page(client, auth, app):
    from markupsafe import Markup, escape

    from app.templating import add_lead_panel

    add_lead_panel(app, lambda lead: Markup("<section id='extra'>%s</section>") % escape(lead.email))
    lead = upsert_lead("ann@example.com").lead
    db.session.commit()
    auth.login_as("sales")
    assert "<section id='extra'>ann@example.com</section>" in client.get(f"/admin/leads/{lead.id}").get_data(as_text=True)


def test_a_marketer_can_send_the_test_email_only_to_themselves(client, auth, app):
    import sqlalchemy as sa

    from app.outbox import OutboxJob

    auth.login_as("marketer")
    token = auth.csrf("/admin/outbox/")
    client.post("/admin/outbox/test", data={"to": "victim@example.com", "csrf_token": token})
    assert db.session.scalar(sa.select(sa.func.count()).select_from(OutboxJob)) == 0
    client.post("/admin/outbox/test", data={"to": "marketer@example.com", "csrf_token": token})
    assert db.session.scalar(sa.select(sa.func.count()).select_from(OutboxJob)) == 1
