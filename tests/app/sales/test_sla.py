"""SLA: N working hours without an answer → one reminder to the owner; N more → one
escalation to the manager. Working hours are Mon–Fri 9–17 in the configured time zone."""

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import sqlalchemy as sa
import time_machine

from app.db import db
from app.sales import alerts, sla
from app.sales.models import Alert, SalesSettings
from app.sales.worktime import working_hours_between
from tests.app.sales.helpers import handed_off, mails, settings

MONDAY_10 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


def _at(day: int, hour: int, minute: int = 0, tz=UTC) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=tz)


def _send_all():
    for alert in db.session.scalars(sa.select(Alert).where(Alert.status == "pending")).all():
        alerts.send(alert.id)


def test_reminder_then_escalation_once_each(app):
    settings(sla_hours=4, timezone="UTC", manager_email="boss@example.com")
    with time_machine.travel(MONDAY_10, tick=False):
        handed_off()
        _send_all()
    with time_machine.travel(_at(23, 13, 59), tick=False):
        assert sla.run_checks() == 0
    with time_machine.travel(_at(23, 14, 0), tick=False):
        assert sla.run_checks() == 1
        assert sla.run_checks() == 0  # idempotent
        _send_all()
    with time_machine.travel(_at(23, 23, 0), tick=False):
        assert sla.run_checks() == 0  # evening hours do not count
    with time_machine.travel(_at(24, 10, 0), tick=False):  # 7 h Monday + 1 h Tuesday
        assert sla.run_checks() == 1
        assert sla.run_checks() == 0
        _send_all()
    with time_machine.travel(_at(27, 16, 0), tick=False):
        assert sla.run_checks() == 0  # one reminder, one escalation, ever
    sent = [(m["To"].addresses[0].addr_spec, m["Subject"]) for m in mails()]
    assert [to for to, _ in sent] == ["sam@example.com"] * 2 + ["boss@example.com"]
    assert sum("Reminder" in s for _, s in sent) == 1
    assert sum("Escalation" in s for _, s in sent) == 1


def test_answered_leads_are_left_alone(app):
    settings(sla_hours=1, manager_email="boss@example.com")
    with time_machine.travel(MONDAY_10, tick=False):
        _, alert = handed_off()
        alert.assignment.outcome = "accepted"
        db.session.commit()
    with time_machine.travel(_at(25, 12), tick=False):
        assert sla.run_checks() == 0


def test_weekends_and_time_zones():
    berlin = SalesSettings(timezone="Europe/Berlin", work_start_hour=9, work_end_hour=17)
    friday_16 = datetime(2026, 11, 27, 16, 0, tzinfo=ZoneInfo("Europe/Berlin"))
    monday_12 = datetime(2026, 11, 30, 12, 0, tzinfo=ZoneInfo("Europe/Berlin"))
    assert working_hours_between(friday_16, monday_12, berlin) == 4  # 1 on Friday, 3 Monday
    # 9:00 UTC is 10:00 in Berlin in November: one working hour already gone
    assert working_hours_between(_at(23, 8), _at(23, 9), berlin) == 1
    assert working_hours_between(_at(28, 0), _at(29, 23), berlin) == 0  # Saturday, Sunday
