"""Erasing a person while an email to them is in flight (issue 14, Bad input): the worker
neither sends afterwards nor crashes. The erasure commits while the worker is handing the email
to the provider; it waits for that send to settle before cleaning the instance folder, so the
email's local copy goes too, and the journey's next email is never sent."""

from __future__ import annotations

import threading
import time

import pytest
import sqlalchemy as sa

from app import mail
from app.db import db
from app.leads.models import Lead
from app.privacy.erase import erase
from nurture import jobs
from nurture.enrollment import enroll
from tests.app.privacy.support import scan_database, scan_files
from tests.helpers import outbox_files
from tests.nurture.factories import email_step, make_lead, make_sequence

ADDRESS = "flight.person@example.com"


def _erased(app, lead_id: int) -> bool:
    with app.app_context(), db.engine.connect() as conn:
        email = conn.execute(sa.select(Lead.email).where(Lead.id == lead_id)).scalar()
    return email != ADDRESS


@pytest.mark.parametrize("path", ["chunk", "single step"])
def test_an_erasure_during_a_send_leaves_nothing_sent_after_it(app, monkeypatch, path):
    lead = make_lead(ADDRESS, first_name="Flight")
    sequence = make_sequence(email_step(subject="One"), email_step(subject="Two"))
    enrollment = enroll(lead.id, sequence.id, "test")
    db.session.commit()
    lead_id, first_step, enrollment_id = lead.id, enrollment.step_id, enrollment.id
    erasure: dict[str, object] = {}

    def run_erasure() -> None:
        with app.app_context():
            try:
                erasure["audit"] = erase(ADDRESS, actor="test", reason="asked while sending")
            except Exception as exc:  # noqa: BLE001 - the test reports it
                erasure["error"] = exc

    real_transmit = mail.transmit

    def transmit_while_erased(email, **kwargs):
        """The provider call starts; meanwhile the erasure commits."""
        thread = threading.Thread(target=run_erasure)
        erasure["thread"] = thread
        thread.start()
        for _ in range(400):
            if _erased(app, lead_id) or not thread.is_alive():
                break
            time.sleep(0.05)
        return real_transmit(email, **kwargs)

    monkeypatch.setattr(mail, "transmit", transmit_while_erased)
    if path == "chunk":
        outcomes = jobs.run_steps([[enrollment_id, first_step]])
    else:
        from nurture import engine

        outcomes = {"only": engine.run_step(enrollment_id, first_step)}
        db.session.commit()
    thread = erasure["thread"]
    assert isinstance(thread, threading.Thread)
    thread.join(timeout=60)
    assert not thread.is_alive()
    assert "error" not in erasure, erasure.get("error")
    # The worker finished its job normally: the email was with the provider before the
    # erasure completed.
    assert list(outcomes.values()) == ["sent"]

    monkeypatch.setattr(mail, "transmit", real_transmit)
    db.session.remove()
    assert outbox_files() == []  # the in-flight email's copy was cleaned after it settled
    assert scan_files(ADDRESS) == []
    assert scan_database(ADDRESS) == []
    # The journey's next email: never sent to the erased person.
    with app.app_context():
        from nurture.models import Enrollment

        current = db.session.get(Enrollment, enrollment_id)
        assert current is not None
        if current.status == "active":
            again = jobs.run_steps([[current.id, current.step_id]])
            assert all(outcome != "sent" for outcome in again.values())
    assert outbox_files() == []
