"""Human or machine, and why: every open and click carries the verdict a marketer can read."""

from datetime import timedelta

import pytest

from nurture.tracking import classify
from tests.nurture.tracking.stories import (BROWSER, events, flush, hit, make_send, path,
                                            tracked)

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
    assert opens[1].data["send_id"] == str(send.id)
    assert [c.is_bot for c in events("email_clicked")] == [False, False]
