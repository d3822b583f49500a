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
    name = mail.backend().messages()[0].stem
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


def test_outbox_shows_an_email_in_the_admin_and_downloads_it_by_a_separate_link(
        client, auth, app):
    import re

    from app import mail

    mail.backend().send(mail.new_email(
        "ann@example.com", "Hello <Ann>", "<p>Hi <b>there</b></p><script>alert(1)</script>",
        "Hi there, in plain text", headers={"List-Unsubscribe": "<https://example.com/u/1>"}))
    auth.login_as("marketer")
    listing = client.get("/admin/outbox/").get_data(as_text=True)
    link = re.search(r'href="(/admin/outbox/[^"]+)">Hello &lt;Ann&gt;</a>', listing).group(1)

    shown = client.get(link)
    assert shown.status_code == 200 and shown.mimetype == "text/html"  # a page, not a download
    assert "attachment" not in shown.headers.get("Content-Disposition", "")
    page = shown.get_data(as_text=True)
    assert "<h1>Hello &lt;Ann&gt;</h1>" in page
    assert "Hi there, in plain text" in page  # the text part
    assert "List-Unsubscribe" in page and "&lt;https://example.com/u/1&gt;" in page  # headers
    assert "<script>alert(1)</script>" not in page

    frame = re.search(r"<iframe[^>]*>", page).group(0)
    sandbox = re.search(r'\ssandbox(?:="([^"]*)")?[\s>]', frame)
    assert sandbox and "allow-scripts" not in (sandbox.group(1) or "")
    part = client.get(re.search(r'src="([^"]+)"', frame).group(1))
    assert "<b>there</b>" in part.get_data(as_text=True)
    policy = part.headers["Content-Security-Policy"]
    assert policy.startswith("sandbox") and "allow-scripts" not in policy
    assert "default-src 'none'" in policy

    download = re.search(r'href="([^"]+)"[^>]*>Download \.eml</a>', page).group(1)
    assert download != link
    eml = client.get(download)
    assert eml.mimetype == "message/rfc822"
    assert eml.headers["Content-Disposition"].startswith("attachment")
    assert b"Subject: Hello <Ann>" in eml.data
