"""Signed links: one salt per purpose, no address inside, tampering refused."""

import base64

from app.sales import links
from tests.app.sales.helpers import handed_off


def test_a_token_names_the_alert_and_lead_but_no_address(app):
    lead, alert = handed_off()
    token = links.make_token("accept", alert.id, lead.id)
    payload = token.split(".")[0]
    decoded = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    assert b"@" not in decoded and b"example" not in decoded
    assert links.read_token("accept", token) == links.LinkTarget(alert.id, lead.id)


def test_an_accept_token_is_not_a_reject_token_and_tampering_fails(app):
    token = links.make_token("accept", 1, 2)
    assert links.read_token("reject", token) is None
    assert links.read_token("accept", token[:-2] + ("AA" if token[-2:] != "AA" else "BB")) is None
    assert links.read_token("accept", "garbage") is None
