"""Rendering: safe templates, complete emails, and validation a marketer can act on."""

from email import policy
from email.parser import BytesParser

from app.mail.local_outbox import LocalOutbox
from nurture.models import Step
from nurture.render import build_email, html_to_text, validate
from tests.nurture.factories import email_step, make_lead, make_sequence


def _step(**values) -> Step:
    sequence = make_sequence(email_step(**values), active=False)
    return sequence.steps[0]


def test_markdown_is_rendered_with_lead_data_escaped(app):
    lead = make_lead(first_name="<script>alert(1)</script>", company="[x](https://evil.test)")
    step = _step(subject="For {{ lead.company }}",
                 body="Hi **{{ lead.first_name }}** from {{ lead.company }}\n\n"
                      "<script>bad()</script>")
    email = build_email(step, lead, send_id=7, enrollment_id=3)
    assert "<strong>&lt;script&gt;alert(1)&lt;/script&gt;</strong>" in email.html
    assert "<script" not in email.html  # neither the lead's nor the marketer's
    assert 'href="https://evil.test"' not in email.html  # lead data is never read as Markdown
    assert email.subject == "For [x](https://evil.test)"
    assert "Hi <script>alert(1)</script> from" in email.text


def test_every_email_carries_postal_address_unsubscribe_and_ids_only(app):
    lead = make_lead()
    email = build_email(_step(), lead, send_id=7, enrollment_id=3)
    assert "Kindling Test Co., 1 Test Street, Testville" in email.html
    assert "Kindling Test Co., 1 Test Street, Testville" in email.text
    url, mailto = [part.strip(" <>") for part in email.headers["List-Unsubscribe"].split(",")]
    assert url.startswith("http://kindling.test/u/") and url in email.html and url in email.text
    assert mailto.startswith("mailto:hello@example.com?subject=unsubscribe")
    assert email.headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert email.custom_args == {"send_id": "7", "enrollment_id": "3"}
    assert "ann@example.com" not in url + str(email.custom_args)
    assert 'style="' in email.html  # CSS inlined
    assert "read this (https://example.com/guide)" in email.text


def test_a_crlf_in_the_name_adds_no_header_or_recipient(app, tmp_path):
    lead = make_lead(first_name="Bob\r\nBcc: x@evil.test")
    step = _step(subject="Hi {{ lead.first_name }}\r\nBcc: y@evil.test")
    email = build_email(step, lead, send_id=1, enrollment_id=1)
    box = LocalOutbox(tmp_path)
    box.send(email)
    raw = box.messages()[0].path.read_bytes()
    parsed = BytesParser(policy=policy.default).parsebytes(raw)
    headers = raw.split(b"\r\n\r\n", 1)[0]
    assert parsed["Bcc"] is None and b"\r\nBcc:" not in headers
    assert [a.addr_spec for a in parsed["To"].addresses] == ["ann@example.com"]


def test_the_tracking_hook_rewrites_body_links_and_adds_its_pixel(app):
    class Tracker:
        def __init__(self, send_id, unsubscribe_url):
            self.send_id = send_id

        def rewrite(self, url):
            return f"https://t.example/{self.send_id}?u={url}"

        def pixel_url(self):
            return f"https://t.example/{self.send_id}.gif"

    app.extensions["nurture_tracker"] = Tracker
    email = build_email(_step(), make_lead(), send_id=9, enrollment_id=1)
    assert 'href="https://t.example/9?u=https://example.com/guide"' in email.html
    assert 'href="http://kindling.test/u/' in email.html  # the unsubscribe link is ours
    assert 'src="https://t.example/9.gif"' in email.html
    preview = build_email(_step(), make_lead(), send_id=None, enrollment_id=None, preview=True)
    assert "t.example" not in preview.html


def test_template_errors_are_reported_by_validate(app):
    assert validate(_step(body="Hi {{ lead.first_name ")) == [
        "Body: line 1: unexpected end of template, expected 'end of print statement'."]
    (error,) = validate(_step(body="{{ ''.__class__ }}"))
    assert error.startswith("Body: not allowed:") and "__class__" in error
    (error,) = validate(_step(subject="{{ lead.__init__.__globals__ }}"))
    assert error.startswith("Subject: not allowed:")
    assert validate(_step(subject="", body="")) == ["The subject is empty.", "The body is empty."]
    assert validate(_step()) == []


def test_html_to_text_keeps_words_apart():
    html = "<p>Hi <b>Ann</b>, see <a href='https://x.example'>this</a></p><ul><li>a</li></ul>"
    assert html_to_text(html) \
        == "Hi Ann, see this (https://x.example)\n\n- a"


def test_no_pixel_and_no_tracked_links_without_tracking_consent(app):
    from app.db import db
    from nurture import ledger
    from nurture.enrollment import enroll

    sequence = make_sequence()
    step = sequence.steps[0]
    html = {}
    for email, consent in (("yes@example.com", True), ("no@example.com", False)):
        lead = make_lead(email, tracking_consent=consent)
        enrollment = enroll(lead.id, sequence.id, "test")
        db.session.commit()
        send = ledger.claim(enrollment, step).send
        html[consent] = build_email(step, lead, send_id=send.id,
                                    enrollment_id=enrollment.id).html
    assert "/t/o/" in html[True] and "/t/c/" in html[True]  # the tracking hook is installed
    assert "/t/o/" not in html[False] and "/t/c/" not in html[False]
    assert 'href="https://example.com/guide"' in html[False]


def test_templates_cannot_exhaust_the_worker(app):
    (error,) = validate(_step(body="{{ 'x' * 1000000000 }}"))
    assert error == ("Body: not allowed: that would make a text too long for an email "
                     "(over 1,000,000 characters)")
    (error,) = validate(_step(subject="{{ 2 ** 1000 }}"))
    assert error.startswith("Subject: not allowed: exponents")
    (error,) = validate(_step(body="{% for i in range(100000) %}{{ 'abcdefghijk' }}{% endfor %}"))
    assert error == "Body: the email is longer than 1,000,000 characters"
    assert validate(_step(body="{{ 'ab' * 3 }} {{ 2 ** 10 }}")) == []
