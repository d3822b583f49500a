"""A send whose answer never came may have been accepted: it is never sent again blindly."""

from datetime import timedelta

import time_machine

from app.db import utcnow
from nurture.enrollment import enroll
from tests.nurture.factories import email_step, make_lead, make_sequence, sends, work


def test_a_timed_out_send_waits_for_provider_events_instead_of_resending(app_config, make_app,
                                                                           fake_sendgrid):
    app = make_app({**app_config, "SENDGRID_API_KEY": "SG.test",
                    "SENDGRID_API_HOST": fake_sendgrid.url, "SENDGRID_TIMEOUT": 0.5})
    fake_sendgrid.delay = 1.5  # SendGrid takes the email, but answers too late
    with app.app_context():
        lead = make_lead()
        sequence = make_sequence(email_step())
        enroll(lead.id, sequence.id, "test")
        work()
        (send,) = sends()
        assert send.status == "unknown"
        fake_sendgrid.delay = 0
        with time_machine.travel(utcnow() + timedelta(hours=2)):
            work()
        assert len(fake_sendgrid.mail_sends) == 1  # not re-sent
        from nurture import ledger

        ledger.reconcile(send.id, "delivered")  # the webhook settles it
        from app.db import db

        db.session.commit()
        assert sends()[0].status == "sent"
