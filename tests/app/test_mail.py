"""Both mail backends: the local outbox keeps exactly what would be sent; SendGrid gets it."""

from email import policy
from email.parser import BytesParser

import pytest

from app.mail import Email, MailError
from app.mail.local_outbox import LocalOutbox
from app.mail.sendgrid_backend import SendGridBackend
from tests.fakes.sendgrid_server import Reply


def _email(**kw) -> Email:
    values = {"to": "ann@example.com", "subject": "Your guide", "html": "<p>Hi <b>Ann</b></p>",
                  "text": "Hi Ann", "sender": "Kindling <hello@example.com>", "to_name": "Ann Smith",
                  "headers": {"List-Unsubscribe": "<https://k.example/u/abc>"},
                  "custom_args": {"send_id": "42"}}
    values.update(kw)
    return Email(**values)


def test_outbox_writes_a_complete_message(tmp_path):
    box = LocalOutbox(tmp_path / "outbox")
    message_id = box.send(_email())
    (stored,) = box.messages()
    parsed = stored.parse()
    assert parsed["Message-ID"] == message_id
    assert parsed["To"] == "Ann Smith <ann@example.com>"
    assert parsed["From"] == "Kindling <hello@example.com>"
    assert parsed["Subject"] == "Your guide"
    assert parsed["List-Unsubscribe"] == "<https://k.example/u/abc>"
    assert parsed["Date"]
    assert stored.body("plain").strip() == "Hi Ann"
    assert "<b>Ann</b>" in stored.body("html")


def test_line_breaks_in_a_name_never_make_a_header(tmp_path):
    box = LocalOutbox(tmp_path)
    box.send(_email(to_name="Bob\r\nBcc: x@evil.test", subject="Hi\r\nBcc: y@evil.test"))
    raw = box.messages()[0].path.read_bytes()
    parsed = BytesParser(policy=policy.default).parsebytes(raw)
    assert parsed["Bcc"] is None
    assert b"\r\nBcc:" not in raw
    assert [str(a.addr_spec) for a in parsed["To"].addresses] == ["ann@example.com"]


def test_outbox_reader_refuses_paths_outside_the_folder(tmp_path):
    box = LocalOutbox(tmp_path / "outbox")
    box.send(_email())
    (tmp_path / "secret.eml").write_text("x")
    assert box.get("../secret.eml") is None


def test_sendgrid_backend_posts_the_message(fake_sendgrid):
    backend = SendGridBackend("SG.test", host=fake_sendgrid.url, timeout=5)
    message_id = backend.send(_email(to_name="Bob\r\nBcc: x@evil.test"))
    assert message_id
    (request,) = fake_sendgrid.mail_sends
    assert request.headers["Authorization"] == "Bearer SG.test"
    body = request.json
    assert body["personalizations"][0]["to"] == [{"email": "ann@example.com",
                                                  "name": "Bob Bcc: x@evil.test"}]
    assert body["from"] == {"email": "hello@example.com", "name": "Kindling"}
    assert body["custom_args"] == {"send_id": "42"}
    assert body["headers"]["List-Unsubscribe"] == "<https://k.example/u/abc>"
    assert [c["type"] for c in body["content"]] == ["text/plain", "text/html"]


def test_sendgrid_rate_limit_is_retryable_with_a_wait(fake_sendgrid):
    import time

    fake_sendgrid.answer(Reply(429, {"X-RateLimit-Reset": str(int(time.time()) + 30)}))
    with pytest.raises(MailError) as caught:
        SendGridBackend("SG.test", host=fake_sendgrid.url).send(_email())
    assert not caught.value.permanent
    assert 20 <= caught.value.retry_after <= 31


@pytest.mark.parametrize("status,permanent", [(500, False), (503, False), (400, True), (401, True)])
def test_sendgrid_errors_are_classified(fake_sendgrid, status, permanent):
    fake_sendgrid.answer(Reply(status, body=b'{"errors":[{"message":"nope"}]}'))
    with pytest.raises(MailError) as caught:
        SendGridBackend("SG.test", host=fake_sendgrid.url).send(_email())
    assert caught.value.permanent is permanent
    assert caught.value.status == status


def test_sendgrid_unreachable_is_retryable():
    backend = SendGridBackend("SG.test", host="http://127.0.0.1:9", timeout=2)
    with pytest.raises(MailError) as caught:
        backend.send(_email())
    assert not caught.value.permanent


def test_backend_is_chosen_by_configuration(app_config, fake_sendgrid, make_app):
    assert make_app(app_config).extensions["mail"].name == "outbox"
    app_config.update(SENDGRID_API_KEY="SG.x", SENDGRID_API_HOST=fake_sendgrid.url)
    assert make_app(app_config).extensions["mail"].name == "sendgrid"


def test_no_answer_in_time_is_an_uncertain_outcome(fake_sendgrid):
    fake_sendgrid.delay = 2
    with pytest.raises(MailError) as caught:
        SendGridBackend("SG.test", host=fake_sendgrid.url, timeout=0.5).send(_email())
    assert caught.value.uncertain and not caught.value.permanent


def test_a_refused_connection_is_safe_to_retry():
    with pytest.raises(MailError) as caught:
        SendGridBackend("SG.test", host="http://127.0.0.1:9", timeout=2).send(_email())
    assert not caught.value.uncertain


@pytest.mark.parametrize("status,headers,low,high", [
    (429, {"Retry-After": "120"}, 119, 121),  # a proxy in front of the API: seconds
    (503, {"Retry-After": "45"}, 44, 46),  # an outage with a hint
    (429, "http-date-in-90s", 80, 91),  # or an HTTP date
    (429, {"X-RateLimit-Reset": "epoch+30", "Retry-After": "5"}, 20, 31),  # SendGrid's own
])
def test_the_providers_wait_is_honoured_in_every_form(fake_sendgrid, status, headers, low, high):
    import time
    from email.utils import formatdate

    if headers == "http-date-in-90s":
        headers = {"Retry-After": formatdate(time.time() + 90, usegmt=True)}
    elif headers.get("X-RateLimit-Reset") == "epoch+30":
        headers = {**headers, "X-RateLimit-Reset": str(int(time.time()) + 30)}
    fake_sendgrid.answer(Reply(status, headers))
    with pytest.raises(MailError) as caught:
        SendGridBackend("SG.test", host=fake_sendgrid.url).send(_email())
    assert not caught.value.permanent and not caught.value.uncertain
    assert caught.value.retry_after is not None and low <= caught.value.retry_after <= high


def test_sendgrids_own_click_open_and_subscription_tracking_are_off(fake_sendgrid):
    """Kindling tracks its own links and pixel; an account with SendGrid's tracking on would
    rewrite them and add a second pixel (every open and click counted twice)."""
    SendGridBackend("SG.test", host=fake_sendgrid.url).send(_email())
    (request,) = fake_sendgrid.mail_sends
    tracking = request.json["tracking_settings"]
    assert tracking["click_tracking"] == {"enable": False, "enable_text": False}
    assert tracking["open_tracking"] == {"enable": False}
    assert tracking["subscription_tracking"] == {"enable": False}


def test_the_outbox_writes_ascii_headers_as_they_are(tmp_path):
    """A long List-Unsubscribe must stay readable by mail clients: no RFC 2047 encoded words."""
    value = ("<mailto:unsubscribe@kindling.example.com?subject=unsubscribe-abcdefghijklmnopqr"
             "stuvwxyz0123456789>, <https://kindling.example.com/u/eyJhbGciOiJIUzI1NiJ9."
             "eyJzZW5kIjo0Mn0.abcdefghijklmnopqrstuvwxyz0123456789>")
    box = LocalOutbox(tmp_path)
    box.send(_email(headers={"List-Unsubscribe": value,
                             "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}))
    raw = box.messages()[0].path.read_bytes()
    assert b"=?utf-8?" not in raw.split(b"\r\n\r\n", 1)[0]
    header = raw.split(b"\r\nList-Unsubscribe: ", 1)[1].split(b"\r\nList-Unsubscribe-Post", 1)[0]
    assert header.replace(b"\r\n", b"").decode("ascii") == value  # unfolded: exactly the value
    assert all(len(line) <= 998 for line in raw.split(b"\r\n"))
    parsed = box.messages()[0].parse()
    assert parsed["List-Unsubscribe"] == value
    assert parsed["Subject"] == "Your guide"
