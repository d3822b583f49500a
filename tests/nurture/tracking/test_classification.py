"""Human or machine, and why: every open and click carries the verdict a marketer can read."""

from datetime import timedelta

import pytest

from nurture.tracking import classify
from tests.nurture.tracking.stories import (
    BROWSER,
    events,
    flush,
    hit,
    make_lead,
    make_send,
    path,
    tracked,
)

APPLE_PROXY_UA = "Mozilla/5.0"
GOOGLE_PROXY_UA = ("Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 "
                   "(via ggpht.com GoogleImageProxy)")
OUTLOOK_DESKTOP = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like "
                   "Gecko) Chrome/124.0.0.0 Safari/537.36 Edg/124.0.0.0")


def opened(client, send, **kwargs):
    tracker, _ = tracked(send)
    hit(client, path(tracker.pixel_url()), **kwargs)
    flush()
    (event,) = events("email_opened")
    return event


@pytest.mark.parametrize("ua, ip, reason", [
    (APPLE_PROXY_UA, "17.58.101.4", classify.APPLE_PROXY),  # Apple's proxy, its bare UA
    (BROWSER, "17.120.3.9", classify.APPLE_PROXY),  # Apple's address space
    (OUTLOOK_DESKTOP, "40.93.12.8", "link scanner: Microsoft Safe Links"),
    (OUTLOOK_DESKTOP, "205.139.110.61", "link scanner: Mimecast"),
    (OUTLOOK_DESKTOP, "148.163.140.2", "link scanner: Proofpoint"),
    (OUTLOOK_DESKTOP, "64.235.150.10", "link scanner: Barracuda"),
    ("Barracuda Sentinel (EE)", "198.51.100.20", "link scanner: Barracuda"),
    ("python-requests/2.32.3", "198.51.100.20", "link scanner: automated client"),
    ("", "198.51.100.20", classify.NO_USER_AGENT),
])
def test_machine_opens_are_stored_with_their_reason(app, client, ua, ip, reason):
    event = opened(client, make_send(), ua=ua, ip=ip)
    assert event.is_bot and event.bot_reason == reason


def test_googles_image_proxy_is_a_real_open(app, client):
    event = opened(client, make_send(), ua=GOOGLE_PROXY_UA, ip="66.249.84.31")
    assert not event.is_bot and event.bot_reason is None
    assert event.data["reason"] == classify.GOOGLE_PROXY


def test_an_open_within_seconds_of_sending_is_a_machine(app, client):
    event = opened(client, make_send(sent_ago=timedelta(seconds=0)))
    assert event.is_bot and event.bot_reason == "within 2s of delivery"


def test_a_head_request_is_a_machine_and_still_redirected(app, client):
    send = make_send()
    _, (url,) = tracked(send, "https://example.com/guide")
    response = hit(client, path(url), method="HEAD")
    assert response.status_code == 302
    flush()
    (click,) = events("email_clicked")
    assert click.is_bot and click.bot_reason == classify.HEAD


def test_a_scanner_click_from_safe_links_ranges(app, client):
    send = make_send()
    _, (url,) = tracked(send, "https://example.com/guide")
    hit(client, path(url), ua=OUTLOOK_DESKTOP, ip="104.47.58.33")
    flush()
    (click,) = events("email_clicked")
    assert click.is_bot and click.bot_reason == "link scanner: Microsoft Safe Links"
    assert events("email_opened") == []  # a machine click implies nothing


def test_several_links_clicked_within_a_second_are_a_machine(app, client):
    send = make_send()
    _, urls = tracked(send, "https://example.com/a", "https://example.com/b",
                      "https://example.com/c")
    for url in urls:
        hit(client, path(url))
    flush()
    clicks = events("email_clicked")
    assert len(clicks) == 3
    assert all(c.is_bot and c.bot_reason == classify.BURST for c in clicks)


def test_the_honeypot_link_catches_machines(app, client):
    send = make_send()
    tracker, _ = tracked(send)
    response = hit(client, path(tracker.honeypot_url()))
    assert response.status_code == 204 and "Location" not in response.headers
    flush()
    (click,) = events("email_clicked")
    assert click.is_bot and click.bot_reason == classify.HONEYPOT


def test_a_human_click_upgrades_a_machine_open_once(app, client):
    send = make_send()
    tracker, (url,) = tracked(send, "https://example.com/guide")
    hit(client, path(tracker.pixel_url()), ua=APPLE_PROXY_UA, ip="17.58.101.4")
    flush()
    (machine,) = events("email_opened")
    assert machine.is_bot
    hit(client, path(url))
    flush()
    hit(client, path(url))  # a second click a while later: still one implied open
    flush()
    opens = events("email_opened")
    assert [o.is_bot for o in opens] == [True, False]
    assert opens[1].data["reason"] == classify.IMPLIED_BY_CLICK
    assert opens[1].send_id == send.id
    assert [c.is_bot for c in events("email_clicked")] == [False, False]


def test_an_open_within_seconds_of_the_delivery_event_is_a_machine(app, client):
    """Sent an hour ago, but SendGrid reports the delivery just now: a scanner opens at once."""
    from app.db import db
    from app.leads.models import Lead
    from app.leads.service import record_event

    send = make_send(sent_ago=timedelta(hours=1))
    record_event(db.session.get(Lead, send.lead_id), "email_delivered",
                 data={"send_id": str(send.id)})
    db.session.commit()
    event = opened(client, send)
    assert event.is_bot and event.bot_reason == "within 2s of delivery"


def test_a_head_request_for_the_pixel_is_a_machine(app, client):
    event = opened(client, make_send(), method="HEAD")
    assert event.is_bot and event.bot_reason == classify.HEAD


def test_apples_bare_user_agent_alone_marks_the_proxy(app, client):
    event = opened(client, make_send(), ua=APPLE_PROXY_UA, ip="198.51.100.20")
    assert event.is_bot and event.bot_reason == classify.APPLE_PROXY


def test_one_link_clicked_twice_quickly_is_a_person(app, client):
    send = make_send()
    _, (url,) = tracked(send, "https://example.com/guide")
    hit(client, path(url))
    hit(client, path(url))  # a double click
    flush()
    assert [c.is_bot for c in events("email_clicked")] == [False, False]


def test_a_burst_spread_over_two_writer_runs_is_still_a_machine(app, client):
    send = make_send()
    _, (first, second) = tracked(send, "https://example.com/a", "https://example.com/b")
    hit(client, path(first))
    flush()
    hit(client, path(second))
    flush()
    assert [(c.is_bot, c.bot_reason) for c in events("email_clicked")][1] == (True,
                                                                              classify.BURST)


MIMECAST_IP, PROOFPOINT_IP, SAFE_LINKS_IP = "207.211.30.44", "67.231.149.12", "40.107.22.61"


@pytest.mark.parametrize("ua, ip, vendor", [
    (OUTLOOK_DESKTOP, MIMECAST_IP, "Mimecast"),
    (OUTLOOK_DESKTOP, PROOFPOINT_IP, "Proofpoint"),
    ("Mozilla/5.0 (compatible; Proofpoint URL Defense)", "198.51.100.30", "Proofpoint"),
    (OUTLOOK_DESKTOP, SAFE_LINKS_IP, "Microsoft Safe Links"),
])
def test_gateway_clicks_are_stored_as_machines_and_score_nothing(app, client, ua, ip, vendor):
    from nurture.scoring.service import score_lead

    send = make_send()
    other = make_send(make_lead("bob@example.com"))
    _, (url,) = tracked(send, "https://example.com/guide")
    _, (human_url,) = tracked(other, "https://example.com/guide")
    hit(client, path(url), ua=ua, ip=ip)
    hit(client, path(human_url))  # the control: a person's click scores
    flush()
    (click,) = events("email_clicked", send.lead_id)
    assert click.is_bot and click.bot_reason == f"link scanner: {vendor}"
    assert score_lead(send.lead_id).engagement.score == 0
    assert score_lead(other.lead_id).engagement.score > 0
