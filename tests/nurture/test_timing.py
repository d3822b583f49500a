"""Time zones, send windows and 'next <weekday>' waits."""

from datetime import UTC, datetime

from app.leads.models import Lead
from nurture.timing import lead_zone, next_opening, parse_wait_until, wait_until, zone


def test_the_leads_zone_comes_from_their_attribute_then_country_then_the_default():
    assert str(lead_zone(Lead(attributes={"timezone": "Asia/Tokyo"}, country="GB"))) == "Asia/Tokyo"
    assert str(lead_zone(Lead(attributes={"timezone": "Mars/Olympus"}, country="GB"))) \
        == "Europe/London"
    assert str(lead_zone(Lead(attributes={}, country=""), "America/Chicago")) == "America/Chicago"


def test_next_opening_skips_closed_days_and_hours():
    london = zone("Europe/London")
    friday_evening = datetime(2030, 1, 4, 18, 0, tzinfo=UTC)
    assert next_opening(friday_evening, london, [0, 1, 2, 3, 4], 9, 17) \
        == datetime(2030, 1, 7, 9, 0, tzinfo=UTC)
    inside = datetime(2030, 1, 7, 10, 0, tzinfo=UTC)
    assert next_opening(inside, london, [0], 9, 17) == inside
    assert next_opening(inside, london, [], 9, 17) is None


def test_wait_until_next_weekday():
    assert parse_wait_until("Next Tuesday 09:30") == (1, 9, 30)
    assert parse_wait_until("next someday 9:00") is None
    monday_8 = datetime(2030, 1, 7, 8, 0, tzinfo=UTC)
    utc = zone("UTC")
    assert wait_until(monday_8, utc, "next monday 09:00") == datetime(2030, 1, 7, 9, tzinfo=UTC)
    assert wait_until(monday_8, utc, "next monday 07:00") == datetime(2030, 1, 14, 7, tzinfo=UTC)
