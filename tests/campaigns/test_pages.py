"""Landing pages as visitors and marketers see them."""

import sqlalchemy as sa

from app.db import db
from app.leads.models import Event
from app.visitors import COOKIE
from tests.campaigns.helpers import flush_page_views, make_form, make_page


def test_live_page_shows_headline_body_and_an_accessible_form(app, client):
    from tests.campaigns.helpers import view_page

    page = make_page(form=make_form())
    response = view_page(client, "guide")
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "<h1>Get the guide</h1>" in html
    assert "<strong>this</strong>" in html
    assert '<label for="email">Work email</label>' in html
    assert 'name="viewport"' in html
    assert "Set-Cookie" not in response.headers  # the beacon gives the visitor cookie
    assert flush_page_views() == 1  # queued on Redis, written by the periodic writer
    (view,) = db.session.scalars(sa.select(Event).where(Event.type == "page_viewed")).all()
    assert view.lead_id is None and view.campaign_id == page.campaign_id
    assert view.visitor_id == client.get_cookie(COOKIE).value


def test_markdown_body_is_sanitised(app, client):
    make_page(form=make_form(), body=(
        "Hello <script>alert('x')</script> **bold**\n\n"
        "[click](javascript:alert(1)) <img src=x onerror=alert(2)>"))
    html = client.get("/p/guide").get_data(as_text=True)
    assert "<strong>bold</strong>" in html
    assert "alert(" not in html
    assert "onerror" not in html and "javascript:" not in html


def test_unknown_page_is_404(app, client):
    assert client.get("/p/nothing-here").status_code == 404


def test_draft_page_is_404_for_visitors_and_a_preview_for_marketers(app, client, auth):
    make_page(status="draft", form=make_form())
    assert client.get("/p/guide").status_code == 404

    auth.login_as("marketer")
    response = client.get("/p/guide")
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "Preview" in html and "Get the guide" in html
    # A marketer's preview is not a visitor's page view.
    flush_page_views()
    assert db.session.scalars(sa.select(Event).where(Event.type == "page_viewed")).all() == []


def test_sales_users_do_not_get_draft_previews(app, client, auth):
    make_page(status="draft", form=make_form())
    auth.login_as("sales")
    assert client.get("/p/guide").status_code == 404


def test_archived_page_is_410_with_a_friendly_page(app, client):
    make_page(status="archived", form=make_form())
    response = client.get("/p/guide")
    assert response.status_code == 410
    assert "no longer available" in response.get_data(as_text=True)


def test_thank_you_address_cannot_be_forged(app, client):
    make_page(form=make_form())
    assert client.get("/p/guide/thanks/not-a-token").status_code == 404


def test_landing_page_posts_are_rate_limited_per_address_on_redis(app_config, make_app,
                                                                   redis_conn):
    from app.leads.models import Lead
    from forms.models import Submission
    from tests.campaigns.helpers import fill_and_submit

    config = {k: v for k, v in app_config.items() if k != "RATELIMIT_STORAGE_URI"}
    limited = make_app({**config, "RATELIMIT_ENABLED": True, "FORM_RATE_LIMIT": "3 per minute"})
    assert limited.config["RATELIMIT_STORAGE_URI"].startswith("redis")  # the counters' home
    with limited.app_context():
        make_page(form=make_form())
        visitor = limited.test_client()
        statuses = [fill_and_submit(visitor, "guide", email=f"p{n}@example.com").status_code
                    for n in range(5)]
        assert statuses == [303, 303, 303, 429, 429]
        assert visitor.get("/p/guide").status_code == 200  # reading the page is not limited
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Lead)) == 3
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Submission)) == 3
        assert redis_conn.keys("LIMITS:LIMITER*")  # counted in Redis, not in this process


def test_a_landing_page_post_asks_redis_once_and_sends_no_limit_headers(
        app_config, make_app, monkeypatch):
    """The per-address limit costs one Redis round trip (the counter's increment): no
    X-RateLimit-* headers, which would read the counter back (two more) for no browser. A
    refusal still says when to come back."""
    import threading

    import redis
    from flask.testing import FlaskClient

    from tests.campaigns.helpers import form_values

    config = {k: v for k, v in app_config.items() if k != "RATELIMIT_STORAGE_URI"}
    limited = make_app({**config, "RATELIMIT_ENABLED": True, "FORM_RATE_LIMIT": "2 per minute"})
    with limited.app_context():
        make_page(form=make_form())
        visitor = FlaskClient(limited)  # no worker behind it: its Redis calls are not counted
        data = form_values(visitor.get("/p/guide").get_data(as_text=True))

        def post(n: int):
            return visitor.post("/p/guide", data={**data, "email": f"p{n}@example.com"},
                                headers={"Sec-Fetch-Site": "same-origin"})

        assert post(1).status_code == 303  # the first loads the limiter's script
        me, sent = threading.get_ident(), []
        real = redis.connection.AbstractConnection.send_packed_command
        handshake = (b"HELLO", b"CLIENT", b"SELECT", b"AUTH")  # a new connection's own

        def counted(self, command, *args, **kwargs):
            words = b"".join(command if isinstance(command, list) else [command]).split(b"\r\n")
            if threading.get_ident() == me and words[2].upper() not in handshake:
                sent.append(words[2])  # the request's, not the kick thread's
            return real(self, command, *args, **kwargs)

        monkeypatch.setattr(redis.connection.AbstractConnection, "send_packed_command", counted)
        second = post(2)
        assert second.status_code == 303 and len(sent) == 1
        assert not [name for name, _ in second.headers if "ratelimit" in name.lower()]
        refused = post(3)
        assert refused.status_code == 429 and 0 < int(refused.headers["Retry-After"]) <= 60
        # Its limiter checks in its decorator only: no app-wide hook on every other request.
        from app.extensions import form_limiter

        assert form_limiter._check_request_limit not in limited.before_request_funcs[None]


def test_every_control_of_every_field_type_is_labelled_and_errors_are_tied_to_it(app, client):
    from html.parser import HTMLParser

    from forms.admin import create_form
    from forms.models import FormField

    form = create_form("All types")
    for position, (name, kind) in enumerate([
            ("first_name", "text"), ("notes", "textarea"), ("plan", "select"),
            ("demo", "checkbox"), ("phone", "phone"), ("country", "country"),
            ("ref", "hidden")], start=1):
        form.fields.append(FormField(name=name, label=f"Label {name}", type=kind, required=True,
                                     help_text=f"Help {name}", position=position,
                                     choices=["A", "B"] if kind == "select" else []))
    form.consent_enabled, form.consent_text = True, "Email me"
    form.min_submit_seconds = 0
    form.touch()
    db.session.commit()
    make_page(form=form)

    class Controls(HTMLParser):
        def __init__(self):
            super().__init__()
            self.controls, self.labels, self.ids = {}, set(), set()

        def handle_starttag(self, tag, attrs):
            a = dict(attrs)
            if a.get("id"):
                self.ids.add(a["id"])
            if tag == "label":
                self.labels.add(a.get("for"))
            elif tag in ("input", "select", "textarea") and a.get("type") != "hidden":
                self.controls[a["name"]] = a

    def parsed(html):
        parser = Controls()
        parser.feed(html)
        return parser

    shown = parsed(client.get("/p/guide").get_data(as_text=True))
    visible = {"email", "first_name", "notes", "plan", "demo", "phone", "country", "consent",
               "website"}
    assert set(shown.controls) == visible  # "ref" is hidden, the honeypot is labelled too
    for name, attrs in shown.controls.items():
        assert attrs["id"] in shown.labels, name
        if name not in ("email", "consent", "website"):
            assert attrs["aria-describedby"] == f"{attrs['id']}-hint"
            assert f"{attrs['id']}-hint" in shown.ids

    from tests.campaigns.helpers import form_values

    data = form_values(client.get("/p/guide").get_data(as_text=True))
    data.update(email="a@", first_name="Ann")
    response = client.post("/p/guide", data=data)
    assert response.status_code == 422
    failed = parsed(response.get_data(as_text=True))
    for name in ("email", "notes", "plan", "demo", "phone", "country", "consent"):
        attrs = failed.controls[name]
        assert f"{attrs['id']}-error" in attrs["aria-describedby"].split(), name
        assert f"{attrs['id']}-error" in failed.ids and attrs["aria-invalid"] == "true"
    assert failed.controls["first_name"]["value"] == "Ann"
    assert "aria-invalid" not in failed.controls["first_name"]


def test_an_address_with_a_nul_character_is_not_found_not_a_server_error(app, client):
    """`/p/%00` is typed or scanned; PostgreSQL refuses a NUL in a query's text, which
    answered 500 for the page, its submit and its thank-you page."""
    app.config["PROPAGATE_EXCEPTIONS"] = False
    make_page(form=make_form())
    assert client.get("/p/%00").status_code == 404
    assert client.get("/p/guide%00").status_code == 404
    assert client.post("/p/gu%00ide", data={"email": "ann@example.com"}).status_code == 404
    assert client.get("/p/%00/thanks/x").status_code == 404
