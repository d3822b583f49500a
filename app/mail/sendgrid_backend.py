"""Sending through SendGrid's v3 Mail Send API: messages built with the official `sendgrid`
library's helpers, posted over urllib3's kept-alive connection pool (the library's own urllib
path when a proxy is configured)."""

from __future__ import annotations

import base64
import json
import logging
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import UTC
from email.utils import parsedate_to_datetime

import urllib3
from python_http_client import exceptions as http_errors
from sendgrid import SendGridAPIClient
from sendgrid.helpers.mail import (
    Attachment,
    Category,
    ClickTracking,
    CustomArg,
    Disposition,
    FileContent,
    FileName,
    FileType,
    From,
    Ganalytics,
    Header,
    Mail,
    OpenTracking,
    ReplyTo,
    SubscriptionTracking,
    To,
    TrackingSettings,
)

from app.mail.errors import MailError
from app.mail.message import Email, header_safe

# The library logs the Authorization header at DEBUG: never let that reach a log file.
logging.getLogger("python_http_client").setLevel(logging.WARNING)
logging.getLogger("sendgrid").setLevel(logging.WARNING)


MAIL_SEND_PATH = "/v3/mail/send"  # what the library's client.mail.send.post() calls


class _Pool:
    """Kept-alive connections to the API shared by the sending threads (urllib3's thread-safe
    pool), instead of a new connection, opener and proxy lookup per email as
    `python_http_client` does. urllib3 never retries here: the engine decides. A connection
    that could not be opened means the request never left (safe to retry); a failure after it
    was written may mean the provider has it (uncertain). A forked work-horse builds its own
    pool rather than share the parent's sockets."""

    def __init__(self, base_url: str, timeout: float):
        self.base = base_url.rstrip("/")
        self.timeout = urllib3.Timeout(connect=min(timeout, 5.0), read=timeout)
        self._pid = -1
        self._manager: urllib3.PoolManager | None = None

    def _pool(self) -> urllib3.PoolManager:
        if self._manager is None or self._pid != os.getpid():
            self._manager = urllib3.PoolManager(maxsize=32, retries=False, timeout=self.timeout)
            self._pid = os.getpid()
        return self._manager

    def post(self, path: str, body: bytes, headers: dict[str, str]):
        try:
            return self._pool().request("POST", self.base + path, body=body, headers=headers)
        except urllib3.exceptions.ConnectTimeoutError as exc:  # incl. refused and DNS
            raise MailError(f"SendGrid unreachable: {exc}", permanent=False) from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise MailError(f"no answer from SendGrid ({type(exc).__name__}: {exc}); the email "
                            "may have been accepted", permanent=False, uncertain=True) from None


class SendGridBackend:
    name = "sendgrid"

    def __init__(self, api_key: str, host: str | None = None, timeout: float = 10):
        self.client = SendGridAPIClient(api_key, host=host or "https://api.sendgrid.com")
        self.client.client.timeout = timeout
        # python_http_client adds Content-Type to a header dict its clients share on the first
        # request; set it now so threads sending at once never see that dict change.
        self.client.client.request_headers.setdefault("Content-Type", "application/json")
        self.host = host or "https://api.sendgrid.com"
        # With a proxy configured, the library's urllib path (which honours it) is used.
        scheme = urllib.parse.urlsplit(self.host).scheme
        proxied = bool(urllib.request.getproxies().get(scheme)) \
            and not urllib.request.proxy_bypass(urllib.parse.urlsplit(self.host).hostname or "")
        self._transport = None if proxied else _Pool(self.host, timeout)

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
        # Kindling tracks its own links and pixel and writes its own unsubscribe link and
        # headers: SendGrid's tracking, on in many accounts, would rewrite the one and add a
        # second of the other (every open and click counted twice, via the webhook too).
        mail.tracking_settings = TrackingSettings(
            click_tracking=ClickTracking(False, False), open_tracking=OpenTracking(False),
            subscription_tracking=SubscriptionTracking(False), ganalytics=Ganalytics(False))
        return mail

    def send(self, email: Email) -> str:
        if self._transport is not None:
            return self._send_kept_alive(email)
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

    def _send_kept_alive(self, email: Email) -> str:
        body = json.dumps(self.build(email).get()).encode("utf-8")
        headers = dict(self.client.client.request_headers)
        headers["Content-Type"] = "application/json"
        assert self._transport is not None  # only called when kept-alive sending is on
        answer = self._transport.post(MAIL_SEND_PATH, body, headers)
        answer_headers = {k.lower(): v for k, v in answer.headers.items()}
        if answer.status >= 300:
            raise _classify(answer.status, answer_headers, answer.data)
        return answer_headers.get("x-message-id", "")

    def check(self) -> str:
        """One authenticated, read-only call (`GET /v3/scopes`): the key works and may send
        mail. Raises with what is wrong."""
        try:
            response = self.client.client.scopes.get()
        except http_errors.HTTPError as exc:
            status = int(getattr(exc, "status_code", 0) or 0)
            if status in (401, 403):
                raise RuntimeError(f"SendGrid at {self.host} refused SENDGRID_API_KEY ({status}):"
                                   " check the key in SendGrid, Settings → API Keys") from None
            raise RuntimeError(f"SendGrid at {self.host} answered {status} to a read-only "
                               "call: try again later") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise RuntimeError(f"cannot reach SendGrid at {self.host}: {reason}") from None
        try:
            scopes = json.loads(response.body or b"{}").get("scopes") or []
        except (ValueError, AttributeError):
            scopes = []
        if "mail.send" not in scopes:
            raise RuntimeError("SENDGRID_API_KEY works but lacks the mail.send permission: give "
                               "the key Mail Send access in SendGrid")
        return f"SendGrid at {self.host}: the API key works and may send mail"


def _mail_error(exc: http_errors.HTTPError) -> MailError:
    status = int(getattr(exc, "status_code", 0) or 0)
    headers = {k.lower(): v for k, v in dict(getattr(exc, "headers", None) or {}).items()}
    return _classify(status, headers, getattr(exc, "body", b""))


def _classify(status: int, headers: dict[str, str], body: object) -> MailError:
    """An HTTP error answer as a MailError: 429 waits for the reset, 5xx/408 retry, the rest
    is permanent. `headers` have lower-case names."""
    detail = body.decode("utf-8", "replace")[:500] if isinstance(body, bytes) else str(body)[:500]
    if status == 429:
        return MailError(f"SendGrid rate limit (429): {detail}", permanent=False,
                         retry_after=wait_asked(headers), status=status)
    if status >= 500 or status in (408,):
        return MailError(f"SendGrid error {status}: {detail}", permanent=False, status=status,
                         retry_after=wait_asked(headers))
    return MailError(f"SendGrid refused the message ({status}): {detail}", permanent=True,
                     status=status)


def wait_asked(headers: dict[str, str], now: float | None = None) -> float | None:
    """Seconds the provider asked us to wait, or None: SendGrid's `X-RateLimit-Reset` (the
    epoch second its limit resets), else `Retry-After` (RFC 9110: seconds, or an HTTP date),
    which proxies in front of the API send. `headers` have lower-case names."""
    now = time.time() if now is None else now
    reset = headers.get("x-ratelimit-reset", "").strip()
    if reset:
        try:
            return max(1.0, float(reset) - now)
        except ValueError:
            pass  # unreadable: see whether Retry-After says more
    value = headers.get("retry-after", "").strip()
    if not value:
        return None
    if value.isdigit():
        return max(1.0, float(value))
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # "-0000": RFC 9110 dates are GMT anyway
        when = when.replace(tzinfo=UTC)
    return max(1.0, when.timestamp() - now)
