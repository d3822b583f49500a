"""Returns to the marketer's site: page views, high-intent pages, new sessions, privacy."""

from datetime import timedelta

import pytest
import time_machine

from app.db import db, utcnow
from app.leads.models import Lead
from tests.nurture.tracking.stories import events, flush, hit, make_lead, make_send, path, tracked

SITE = "https://www.acme.example"


def view(client, page: str, vid: str | None = None, headers=None, referrer: str = ""):
    url = f"/t/v.gif?u={SITE}{page}&r={referrer}"
    if vid:
        url += f"&vid={vid}"
    return hit(client, url, headers=headers)


def known_browser(client) -> tuple[int, str]:
    """A lead who clicked a tracked link in this browser."""
    send = make_send()
    _, (url,) = tracked(send, f"{SITE}/guide")
    hit(client, path(url))
    flush()
    return send.lead_id, client.get_cookie("kv").value


def test_the_script_is_small_cacheable_and_points_home(app, client):
    response = client.get("/t/v.js")
    assert response.status_code == 200
    assert response.mimetype == "application/javascript"
    assert "max-age" in response.headers["Cache-Control"]
    body = response.get_data(as_text=True)
    assert '"http://kindling.test"' in body and "/t/v.gif" in body
    assert "localStorage" in body and "globalPrivacyControl" in body
    assert len(response.data) < 4096


def test_an_anonymous_visit_joins_the_lead_once_the_browser_clicks(app, client):
    response = view(client, "/blog/post", referrer="https://search.example/")
    assert response.mimetype == "image/gif" and client.get_cookie("kv") is not None
    flush()
    (anonymous,) = events("page_viewed")
    assert anonymous.lead_id is None and anonymous.url == f"{SITE}/blog/post"
    assert anonymous.data["referrer"] == "https://search.example/"

    lead_id, _ = known_browser(client)
    view(client, "/features")
    flush()
    views = events("page_viewed")
    assert [v.lead_id for v in views] == [lead_id, lead_id]  # the earlier visit is theirs too


def test_high_intent_pages_get_their_own_event(app, client):
    lead_id, _ = known_browser(client)
    view(client, "/pricing")
    view(client, "/demo/book")
    view(client, "/pricing-history")  # not under /pricing
    flush()
    assert [e.url for e in events("pricing_viewed")] == [f"{SITE}/pricing"]
    assert [e.url for e in events("demo_viewed")] == [f"{SITE}/demo/book"]
    assert len(events("page_viewed", lead_id)) == 3


def test_a_new_session_after_thirty_minutes_is_a_return(app, client):
    lead_id, _ = known_browser(client)
    view(client, "/features")
    with time_machine.travel(utcnow() + timedelta(minutes=20)):
        view(client, "/pricing")
    with time_machine.travel(utcnow() + timedelta(minutes=20 + 31)):
        view(client, "/blog")
    flush()
    (returned,) = events("site_returned")
    assert returned.lead_id == lead_id and returned.url == f"{SITE}/blog"
    assert returned.data["minutes_away"] == 31


def test_the_site_script_id_identifies_the_lead_without_cookies(app, client):
    lead_id, _cookie = known_browser(client)
    view(client, "/features", vid="LocalStorageId_0123456789")  # both: the two are linked
    flush()
    client.delete_cookie("kv")  # third-party cookies blocked on the next visit
    view(client, "/pricing", vid="LocalStorageId_0123456789")
    flush()
    assert [e.lead_id for e in events("pricing_viewed")] == [lead_id]


def test_global_privacy_control_and_do_not_track_are_honoured(app, client):
    known_browser(client)
    for header in ({"Sec-GPC": "1"}, {"DNT": "1"}):
        response = view(client, "/pricing", headers=header)
        assert response.mimetype == "image/gif"
    flush()
    assert events("page_viewed") == [] and events("pricing_viewed") == []


def test_privacy_signals_can_be_switched_off(app_config, make_app):
    other = make_app({**app_config, "TRACKING_HONOUR_GPC": False})
    with other.app_context():
        view(other.test_client(), "/pricing", headers={"Sec-GPC": "1"})
        flush()
        assert len(events("pricing_viewed")) == 1


@pytest.mark.parametrize("answer", [False, "no", "false", "0"])  # a form's checkbox, a CSV
def test_a_lead_without_tracking_consent_is_not_tracked(app, client, answer):
    lead = make_lead(tracking_consent=answer)
    send = make_send(lead)
    tracker, (url,) = tracked(send, f"{SITE}/guide")
    hit(client, path(tracker.pixel_url()))
    hit(client, path(url))
    assert db.session.get(Lead, lead.id).attributes["tracking_consent"] == answer
    flush()
    assert events() == []


def test_a_scanners_click_never_makes_its_browser_the_leads(app, client):
    from tests.nurture.tracking.test_classification import OUTLOOK_DESKTOP

    send = make_send()
    _, (url,) = tracked(send, f"{SITE}/guide")
    hit(client, path(url), ua=OUTLOOK_DESKTOP, ip="104.47.58.33")  # Safe Links fetches it
    flush()
    (click,) = events("email_clicked")
    assert click.is_bot and click.visitor_id is None
    view(client, "/pricing")  # the scanner's later fetches stay anonymous
    flush()
    assert [v.lead_id for v in events("page_viewed")] == [None]


def test_the_no_js_pixel_records_the_page_it_sits_on(app, client):
    """`<img src=".../t/v.gif">` without the script: the page comes from the Referer."""
    lead_id, _ = known_browser(client)
    response = hit(client, "/t/v.gif", headers={"Referer": f"{SITE}/pricing"})
    assert response.mimetype == "image/gif" and len(response.data) == 43
    assert "no-store" in response.headers["Cache-Control"]
    flush()
    (viewed,) = events("page_viewed")
    assert viewed.lead_id == lead_id and viewed.url == f"{SITE}/pricing"
    assert [e.lead_id for e in events("pricing_viewed")] == [lead_id]


def test_a_return_is_found_across_writer_runs(app, client):
    """The writer runs every second: the previous visit is nearly always in an earlier batch."""
    lead_id, _ = known_browser(client)
    view(client, "/features")
    flush()
    with time_machine.travel(utcnow() + timedelta(minutes=29)):
        view(client, "/blog")  # same session: 29 minutes of inactivity
        flush()
    with time_machine.travel(utcnow() + timedelta(minutes=29 + 45)):
        view(client, "/pricing")
        flush()
    (returned,) = events("site_returned")
    assert returned.lead_id == lead_id and returned.url == f"{SITE}/pricing"
    assert returned.data["minutes_away"] == 45


def test_the_script_stays_quiet_only_when_the_workspace_honours_signals(app_config, make_app):
    honouring = make_app(app_config).test_client().get("/t/v.js").get_data(as_text=True)
    ignoring = make_app({**app_config, "TRACKING_HONOUR_GPC": False}).test_client() \
        .get("/t/v.js").get_data(as_text=True)
    assert "if (true &&" in honouring and "if (false &&" in ignoring


def test_a_click_under_a_privacy_signal_sets_no_visitor_cookie(app, client):
    send = make_send()
    _, (url,) = tracked(send, f"{SITE}/guide")
    response = hit(client, path(url), headers={"Sec-GPC": "1"})
    assert response.status_code == 302 and client.get_cookie("kv") is None
    flush()
    (click,) = events("email_clicked")  # the click on our own email still counts
    assert click.visitor_id is None


def test_a_lead_who_withdraws_tracking_consent_is_no_longer_followed_on_the_site(app, client):
    lead_id, _ = known_browser(client)
    lead = db.session.get(Lead, lead_id)
    lead.attributes = {**(lead.attributes or {}), "tracking_consent": False}
    db.session.commit()
    view(client, "/pricing")
    view(client, "/features", vid="LocalStorageId_0123456789")
    flush()
    assert events("page_viewed") == [] and events("pricing_viewed") == []


def test_a_workspace_can_require_consent_before_tracking(app_config, make_app):
    strict = make_app({**app_config, "TRACKING_REQUIRE_CONSENT": True})
    with strict.app_context():
        client = strict.test_client()
        silent = make_send(make_lead("ann@example.com"))  # never answered
        agreed = make_send(make_lead("bob@example.com", tracking_consent="yes"))
        for send in (silent, agreed):
            tracker, (_url,) = tracked(send, f"{SITE}/guide")
            hit(client, path(tracker.pixel_url()))
        flush()
        assert [e.lead_id for e in events("email_opened")] == [agreed.lead_id]


def test_a_visit_with_a_nul_character_does_not_stop_the_writer(app, client):
    """Anyone can send the beacon. A NUL in its address or referrer (PostgreSQL stores none)
    made the writer's batch fail on every run, and no tracking hit was written any more."""
    hit(client, "/t/v.gif?u=https://www.acme.example/a%00b&r=https://x.example/%00")
    view(client, "/pricing")
    flush()
    views = events("page_viewed")
    assert [v.url for v in views] == [f"{SITE}/ab", f"{SITE}/pricing"]
    assert views[0].data["referrer"] == "https://x.example/"


def test_an_erased_person_clicking_an_old_email_is_not_followed_again(app, client, runner):
    """After the erasure, their old email's link still takes them to the page, but nothing
    links their browser to the tombstone again: no click, no visitor link, no page views."""
    import sqlalchemy as sa

    from app.leads.models import Event
    from nurture.tracking.models import Visitor

    lead = make_lead("gone@example.com")
    send = make_send(lead)
    tracker, (url,) = tracked(send, f"{SITE}/guide")
    assert runner.invoke(args=["privacy", "erase", "gone@example.com", "--reason", "asked"]
                         ).exit_code == 0
    before = db.session.scalar(sa.select(sa.func.count()).select_from(Event)
                               .where(Event.lead_id == lead.id))
    assert hit(client, path(url)).status_code in (302, 303)
    hit(client, path(tracker.pixel_url()))
    view(client, "/pricing")
    flush()
    db.session.expire_all()
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Event)
                             .where(Event.lead_id == lead.id)) == before
    assert db.session.scalars(sa.select(Visitor).where(Visitor.lead_id == lead.id)).all() == []
