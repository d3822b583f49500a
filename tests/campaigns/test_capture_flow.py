"""A visitor on a landing page, end to end over HTTP: page → form → lead → outbox → a real RQ
worker → the asset email → the download. And nothing is lost when Redis is down."""

from datetime import timedelta

import sqlalchemy as sa
import time_machine

from app import outbox
from app.db import db, utcnow
from app.leads.models import Event, Lead
from app.outbox import OutboxJob
from app.visitors import COOKIE
from app.worker import run_worker
from forms.models import Submission
from tests.campaigns.helpers import (
    PDF,
    asset_emails,
    fill_and_submit,
    flush_page_views,
    link_in,
    make_file_asset,
    make_form,
    make_page,
    parse,
    view_page,
)

DEAD_REDIS = "redis://127.0.0.1:1/0"
LISTENER = "campaigns.jobs.send_asset_emails"


def _events(lead_id):
    db.session.expire_all()
    return db.session.scalars(sa.select(Event).where(Event.lead_id == lead_id)
                              .order_by(Event.id)).all()


def test_visitor_gets_the_asset_by_page_email_and_download(app, client):
    page = make_page(form=make_form(), asset=make_file_asset())

    landing = view_page(client, "guide", "?utm_source=linkedin")
    assert landing.status_code == 200
    assert client.get_cookie(COOKIE) is not None  # from the page's beacon
    response = fill_and_submit(client, "guide", email="Ann@Example.com", first_name="Ann",
                               company="Acme")
    assert response.status_code == 303
    assert "/p/guide/thanks/" in response.headers["Location"]

    thanks = client.get(response.headers["Location"])
    html = thanks.get_data(as_text=True)
    assert thanks.status_code == 200 and "Thanks, it is yours" in html
    assert "Download The guide" in html  # the link on the page, right away

    lead = db.session.scalar(sa.select(Lead).where(Lead.email == "ann@example.com"))
    assert lead.first_name == "Ann" and lead.company == "Acme"
    (submission,) = db.session.scalars(sa.select(Submission)).all()
    assert submission.campaign_id == page.campaign_id and submission.landing_page_id == page.id
    assert submission.utm["utm_medium"] == "email"  # the campaign's default
    types = [e.type for e in _events(lead.id)]
    assert "form_submitted" in types
    # The view was still queued on Redis at submit time: the writer gives it to the lead whose
    # submit came after it, so the anonymous view still joins the lead's timeline.
    assert "page_viewed" not in types
    assert flush_page_views() == 2  # the landing page and the form's page before the submit
    types = [e.type for e in _events(lead.id)]
    assert "page_viewed" in types
    (row,) = db.session.scalars(sa.select(OutboxJob).where(OutboxJob.job == LISTENER)).all()
    assert row.args == [[submission.id]] and row.status == "queued"
    assert asset_emails() == []
    lead_id, submission_id, campaign_id = lead.id, submission.id, page.campaign_id

    run_worker(burst=True)  # forks; this session's objects are gone afterwards

    db.session.expire_all()
    assert db.session.get(OutboxJob, row.id).status == "done"
    (email,) = asset_emails()
    message = parse(email)
    assert message["To"].addresses[0].addr_spec == "Ann@example.com"
    link = link_in(email)
    assert "ann@example.com" not in link.lower()

    download = client.get(link)
    assert download.status_code == 200
    assert download.data == PDF
    assert "attachment" in download.headers["Content-Disposition"]
    assert "Guide 2026.pdf" in download.headers["Content-Disposition"]
    download.close()
    (downloaded,) = [e for e in _events(lead_id) if e.type == "asset_downloaded"]
    assert downloaded.campaign_id == campaign_id

    # The listener running again (RQ delivers at least once) sends nothing more.
    from campaigns.jobs import send_asset_emails

    assert send_asset_emails([submission_id]) == [None]
    assert len(asset_emails()) == 1


def test_redis_down_at_submit_the_visitor_is_thanked_and_the_email_follows(
        app_config, app, make_app, monkeypatch):
    from nurture.scoring import incremental

    # Scoring backs off Redis for 30 s per process after a failure: not into the next tests.
    monkeypatch.setattr(incremental, "_redis_down_until", 0.0)
    make_page(form=make_form(), asset=make_file_asset())
    # As in production: the rate limiter on (its counters in the same, unreachable Redis).
    config = {k: v for k, v in app_config.items() if k != "RATELIMIT_STORAGE_URI"}
    down = make_app({**config, "REDIS_URL": DEAD_REDIS, "RATELIMIT_ENABLED": True})
    assert down.config["RATELIMIT_STORAGE_URI"] == DEAD_REDIS
    visitor = down.test_client()

    response = fill_and_submit(visitor, "guide", email="bo@example.com")
    assert response.status_code == 303
    thanks = visitor.get(response.headers["Location"])
    assert thanks.status_code == 200 and "Thanks, it is yours" in thanks.get_data(as_text=True)

    db.session.expire_all()
    (row,) = db.session.scalars(sa.select(OutboxJob).where(OutboxJob.job == LISTENER)).all()
    assert row.status == "pending"  # Redis was unreachable: the row waits for the relay

    with time_machine.travel(utcnow() + timedelta(seconds=30)):
        assert outbox.relay() >= 1
    run_worker(burst=True)
    with time_machine.travel(utcnow() + timedelta(minutes=5)):
        outbox.relay()
    run_worker(burst=True)

    db.session.expire_all()
    assert db.session.get(OutboxJob, row.id).status == "done"
    (email,) = asset_emails()
    assert "bo@example.com" in email.read_text()


def test_invalid_email_rerenders_with_every_typed_value(app, client):
    make_page(form=make_form(), asset=make_file_asset())
    response = fill_and_submit(client, "guide", email="ann@", first_name="Ann <b>",
                               company="Acme & Sons")
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert 'value="ann@"' in html
    assert 'value="Ann &lt;b&gt;"' in html and 'value="Acme &amp; Sons"' in html
    assert "Enter a valid email address" in html
    # The error summary comes first on the page and takes the focus.
    assert html.index('id="error-summary"') < html.index("<h1")
    assert 'aria-describedby="email-error"' in html
    assert db.session.scalars(sa.select(Submission)).all() == []


def test_a_suspect_is_thanked_but_never_given_the_asset(app, client):
    make_page(form=make_form(), asset=make_file_asset())
    response = fill_and_submit(client, "guide", email="bot@example.com", website="http://spam")
    assert response.status_code == 303
    html = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Thanks, it is yours" in html
    assert "/d/" not in html and "Download" not in html
    (submission,) = db.session.scalars(sa.select(Submission)).all()
    assert submission.status == "quarantined"


def test_campaign_utm_defaults_stand_in_only_for_a_visitor_without_utm_values(app, client):
    make_page(form=make_form())  # defaults: newsletter / email / spring
    fill_and_submit(client, "guide", email="ann@example.com")
    fill_and_submit(client, "guide", "?utm_source=linkedin&gclid=g1", email="bo@example.com")
    fill_and_submit(client, "guide", "?gclid=g2", email="cy@example.com")
    db.session.expire_all()
    assert [s.utm for s in db.session.scalars(sa.select(Submission).order_by(Submission.id))] == [
        {"utm_source": "newsletter", "utm_medium": "email", "utm_campaign": "spring"},
        {"utm_source": "linkedin", "gclid": "g1"},  # not linkedin / email / spring
        {"utm_source": "newsletter", "utm_medium": "email", "utm_campaign": "spring",
         "gclid": "g2"},
    ]
