"""Password reset by email: the emailed link is signed, expires and works once; opening it
shows a page (a mail scanner's GET changes nothing), the form on it sets the password; the
email goes through the ledger; nobody learns whether an address has an account."""

import re
from datetime import UTC, datetime, timedelta
from email import policy
from email.parser import BytesParser

import sqlalchemy as sa
import time_machine

from app import outbox
from app.auth.models import User
from app.db import db
from app.mail.ledger import MailDelivery
from app.outbox import OutboxJob
from tests.helpers import PASSWORD, AuthActions, csrf_from, make_user, outbox_files

NEW_PASSWORD = "a new and long password"


def run_outbox() -> None:
    db.session.expire_all()
    for row_id in db.session.scalars(sa.select(OutboxJob.id).where(OutboxJob.done_at.is_(None))
                                     .order_by(OutboxJob.id)).all():
        outbox.run(row_id)


def _ask(client, email: str):
    token = csrf_from(client.get("/password-reset").get_data(as_text=True))
    return client.post("/password-reset", data={"email": email, "csrf_token": token})


def _emails() -> list:
    messages = []
    for path in outbox_files():
        with path.open("rb") as fh:
            messages.append(BytesParser(policy=policy.default).parse(fh))
    return messages


def _link(message) -> str:
    text = message.get_body(("plain",)).get_content()
    (link,) = re.findall(r"http://kindling\.test(/password-reset/\S+)", text)
    return link


def _set(client, link: str, password: str = NEW_PASSWORD, confirm: str | None = None):
    token = csrf_from(client.get(link).get_data(as_text=True))
    return client.post(link, data={"password": password, "confirm": confirm or password,
                                   "csrf_token": token})


def _can_sign_in(app, email: str, password: str) -> bool:
    with app.app_context():
        return AuthActions(app.test_client()).login(email, password).status_code == 302


def test_the_sign_in_page_offers_a_reset(client):
    assert 'href="/password-reset"' in client.get("/login").get_data(as_text=True)


def test_a_user_resets_their_password_by_the_emailed_link(app, client):
    make_user("m@example.com")
    response = _ask(client, "M@example.com")
    assert response.status_code == 303
    assert _emails() == []  # the request does not wait on the mail provider: a job sends it
    run_outbox()
    (message,) = _emails()
    assert message["To"].addresses[0].addr_spec == "m@example.com"
    link = _link(message)
    assert "m@example.com" not in link  # the token names no address

    shown = client.get(link)
    assert shown.status_code == 200 and 'type="password"' in shown.get_data(as_text=True)
    assert shown.headers["Referrer-Policy"] == "no-referrer"
    assert _can_sign_in(app, "m@example.com", PASSWORD)  # a GET (a mail scanner) changes nothing

    done = _set(client, link)
    assert done.status_code == 303 and done.headers["Location"].endswith("/login")
    assert not _can_sign_in(app, "m@example.com", PASSWORD)
    assert _can_sign_in(app, "m@example.com", NEW_PASSWORD)


def test_the_link_works_once(app, client):
    make_user("m@example.com")
    _ask(client, "m@example.com")
    run_outbox()
    link = _link(_emails()[0])
    token = csrf_from(client.get(link).get_data(as_text=True))
    assert _set(client, link).status_code == 303
    again = client.get(link)
    assert again.status_code == 410 and "already been used" in again.get_data(as_text=True)
    replay = client.post(link, data={"password": "yet another password",
                                     "confirm": "yet another password", "csrf_token": token})
    assert replay.status_code == 410
    assert _can_sign_in(app, "m@example.com", NEW_PASSWORD)


def test_the_link_expires_after_an_hour(app, client):
    make_user("m@example.com")
    _ask(client, "m@example.com")
    run_outbox()
    link = _link(_emails()[0])
    with time_machine.travel(datetime.now(UTC) + timedelta(minutes=61)):
        response = client.get(link)
        assert response.status_code == 410 and "expired" in response.get_data(as_text=True)
    assert _can_sign_in(app, "m@example.com", PASSWORD)


def test_a_forged_or_cross_purpose_token_is_refused(app, client):
    from itsdangerous import URLSafeTimedSerializer

    user = make_user("m@example.com")
    _ask(client, "m@example.com")
    run_outbox()
    link = _link(_emails()[0])
    assert client.get(link[:-4] + "abcd").status_code == 404
    other_salt = URLSafeTimedSerializer(app.config["SECRET_KEY"], salt="unsubscribe")
    assert client.get("/password-reset/" + other_salt.dumps({"u": user.id})).status_code == 404


def test_an_unknown_or_inactive_address_gets_the_same_answer_and_no_email(app, client):
    gone = make_user("gone@example.com")
    gone.deactivate()
    db.session.commit()
    known = _ask(client, "nobody@example.com")
    inactive = _ask(client, "gone@example.com")
    assert known.status_code == inactive.status_code == 303
    run_outbox()
    assert _emails() == []
    flashed = client.get("/login").get_data(as_text=True)
    assert "If an account uses that address" in flashed


def test_the_email_has_a_ledger_row_and_goes_once(app, client):
    make_user("m@example.com")
    _ask(client, "m@example.com")
    run_outbox()
    job = db.session.scalar(sa.select(OutboxJob))
    outbox.run(job.id)  # delivered again by RQ (at least once): still one email
    assert len(_emails()) == 1
    (row,) = db.session.scalars(sa.select(MailDelivery)).all()
    assert row.key.startswith("password-reset:") and row.status == "sent"


def test_mismatched_or_short_passwords_are_refused_and_nothing_changes(app, client):
    make_user("m@example.com")
    _ask(client, "m@example.com")
    run_outbox()
    link = _link(_emails()[0])
    response = _set(client, link, NEW_PASSWORD, "something else entirely")
    assert response.status_code == 400 and "do not match" in response.get_data(as_text=True)
    assert _set(client, link, "short").status_code == 400
    assert _can_sign_in(app, "m@example.com", PASSWORD)
    assert _set(client, link).status_code == 303  # the link still works after a mistake


def test_a_reset_ends_the_users_other_sessions(app, client):
    user = make_user("m@example.com")
    version = user.session_version
    _ask(client, "m@example.com")
    run_outbox()
    _set(client, _link(_emails()[0]))
    db.session.expire_all()
    assert db.session.get(User, user.id).session_version > version
