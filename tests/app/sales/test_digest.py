"""The daily digest: once per sales user and day, with their qualified leads as CSV."""

import csv
import io
from datetime import UTC, datetime

import sqlalchemy as sa
import time_machine

from app.db import db
from app.sales import alerts, digest
from app.sales.models import Alert
from tests.app.sales.helpers import handed_off, mails
from tests.helpers import make_user


def _send_all():
    for alert in db.session.scalars(sa.select(Alert).where(Alert.status == "pending")).all():
        alerts.send(alert.id)


def test_one_digest_per_user_and_day_with_the_csv(app):
    _, mql_alert = handed_off(company="=cmd|' /C calc'!A0")
    alerts.send(mql_alert.id)
    make_user("idle@example.com", "sales")  # no leads: no digest
    with time_machine.travel(datetime(2026, 11, 24, 6, 0, tzinfo=UTC), tick=False):
        assert digest.run_digest() == 0  # before the digest hour
    with time_machine.travel(datetime(2026, 11, 24, 9, 0, tzinfo=UTC), tick=False):
        assert digest.run_digest() == 1
        assert digest.run_digest() == 0
        _send_all()
    with time_machine.travel(datetime(2026, 11, 24, 20, 0, tzinfo=UTC), tick=False):
        assert digest.run_digest() == 0
    with time_machine.travel(datetime(2026, 11, 25, 9, 0, tzinfo=UTC), tick=False):
        assert digest.run_digest() == 1  # a new day

    digests = [m for m in mails() if "qualified leads" in m["Subject"]]
    (message,) = digests
    assert message["To"].addresses[0].addr_spec == "sam@example.com"
    (attachment,) = list(message.iter_attachments())
    assert attachment.get_filename() == "qualified-leads-2026-11-24.csv"
    rows = list(csv.reader(io.StringIO(attachment.get_content().lstrip("\ufeff"))))
    assert rows[0][1] == "email" and rows[1][1] == "dana@acme.example.com"
    assert rows[1][4] == "'=cmd|' /C calc'!A0"
