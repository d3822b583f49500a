"""Sending through SendGrid's v3 Mail Send API with the official `sendgrid` library."""

from __future__ import annotations

import base64
import logging
import urllib.error

from python_http_client import exceptions as http_errors
from sendgrid import SendGridAPIClient
from sendgrid.helpers.mail import (
    Attachment,
    Category,
    CustomArg,
    Disposition,
    FileContent,
    FileName,
    FileType,
    From,
    Header,
    Mail,
    ReplyTo,
    To,
)

from app.mail.errors import MailError
from app.mail.message import Email, header_safe

# The library logs the Authorization header at DEBUG: never let that reach a log file.
logging.getLogger("python_http_client").setLevel(logging.WARNING)
logging.getLogger("sendgrid").setLevel(logging.WARNING)


class SendGridBackend:
    name = "sendgrid"

    def __init__(self, api_key: str, host: str | None = None, timeout: float = 10):
        self.client = SendGridAPIClient(api_key, host=host or "https://api.sendgrid.com")
        self.client.client.timeout = timeout
        # python_http_client adds Content-Type to a header dict its clients share on the first
        # request; set it now so threads sending at once never see that dict change.
        self.client.client.request_headers.setdefault("Content-Type", "application/json")
        self.host = host or "https://api.sendgrid.com"

    def build(self, email: Email) -> Mail:
        from_name, from_addr = email.sender_parts()
        mail = Mail(
            from_email=From(from_addr, from_name or None),
            to_emails=To(email.to, header_safe(email.to_name) or None),
            subject=header_safe(email.subject),
            plain_text_content=email.text,
            html_content=email.html,
        )
        if email.reply_to:
            mail.reply_to = ReplyTo(header_safe(email.reply_to))
        for name, value in email.headers.items():
            mail.header = Header(header_safe(name), header_safe(value))
        for key, value in email.custom_args.items():
            mail.custom_arg = CustomArg(key, str(value))
        for category in email.categories:
            mail.category = Category(category)
        for att in email.attachments:
            mail.attachment = Attachment(
                FileContent(base64.b64encode(att.content).decode("ascii")),
                FileName(header_safe(att.filename)),
                FileType(att.mimetype),
                Disposition("attachment"),
            )
        return mail

    def send(self, email: Email) -> str:
        try:
            response = self.client.send(self.build(email))
        except http_errors.HTTPError as exc:
            raise _mail_error(exc) from None
        except urllib.error.URLError as exc:  # refused, DNS: the request never left
            raise MailError(f"SendGrid unreachable: {exc.reason}", permanent=False) from None
        except OSError as exc:  # a timeout or a reset while waiting: it may have been accepted
            raise MailError(f"no answer from SendGrid ({type(exc).__name__}: {exc}); the email "
                            "may have been accepted", permanent=False, uncertain=True) from None
        headers = {k.lower(): v for k, v in dict(response.headers or {}).items()}
        return headers.get("x-message-id", "")

    def check(self) -> str:
        return f"SendGrid at {self.host}"


def _mail_error(exc: http_errors.HTTPError) -> MailError:
    status = int(getattr(exc, "status_code", 0) or 0)
    headers = {k.lower(): v for k, v in dict(getattr(exc, "headers", None) or {}).items()}
    body = getattr(exc, "body", b"")
    detail = body.decode("utf-8", "replace")[:500] if isinstance(body, bytes) else str(body)[:500]
    if status == 429:
        retry_after = None
        reset = headers.get("x-ratelimit-reset")
        if reset:
            import time

            try:
                retry_after = max(1.0, float(reset) - time.time())
            except ValueError:
                retry_after = None
        return MailError(f"SendGrid rate limit (429): {detail}", permanent=False,
                         retry_after=retry_after, status=status)
    if status >= 500 or status in (408,):
        return MailError(f"SendGrid error {status}: {detail}", permanent=False, status=status)
    return MailError(f"SendGrid refused the message ({status}): {detail}", permanent=True,
                     status=status)
