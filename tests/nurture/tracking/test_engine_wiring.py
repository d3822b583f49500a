"""An email the engine sends is tracked: its links go through signed redirects that lead back
to the marketer's page, and it carries the open pixel and the honeypot link."""

import re
from datetime import timedelta

import time_machine

from app.db import utcnow
from nurture.enrollment import enroll
from tests.helpers import outbox_files
from tests.nurture.factories import email_step, make_lead, make_sequence, work
from tests.nurture.tracking.stories import BROWSER, HOME_IP, events, flush


def test_sent_email_links_are_tracked_and_lead_back_to_the_page(app, client):
    lead = make_lead()
    sequence = make_sequence(email_step(body="Read [the guide](https://www.acme.example/guide?a=1)."))
    enroll(lead.id, sequence.id, "test")
    work()

    (eml,) = outbox_files()
    html = eml.read_text()
    html = re.sub(r"=\r?\n", "", html).replace("=3D", "=")  # undo quoted-printable soft breaks
    assert "https://www.acme.example/guide" not in html  # every link is a tracked redirect
    click_path = re.search(r'href="http://kindling\.test(/t/c/[^"]+)"[^>]*>the guide<', html).group(1)
    assert re.search(r'<a href="http://kindling\.test/t/c/[^"]+"[^>]*display: ?none', html)  # honeypot
    assert f"(http://kindling.test{click_path})" in html  # the text part is tracked too
    assert re.search(r'<img src="http://kindling\.test/t/o/[^"]+\.gif"', html)

    with time_machine.travel(utcnow() + timedelta(minutes=5)):
        response = client.get(click_path, headers={"User-Agent": BROWSER},
                              environ_base={"REMOTE_ADDR": HOME_IP})
        assert response.status_code == 302
        assert response.headers["Location"] == "https://www.acme.example/guide?a=1"
        flush()
    (clicked,) = events("email_clicked", lead_id=lead.id)
    assert not clicked.is_bot
