"""One outgoing email, whatever backend sends it, and its exact MIME form."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr
from functools import lru_cache

_LINE_BREAKS = re.compile(r"[\r\n\u2028\u2029\x00]+")


@lru_cache(maxsize=256)  # the sender is the same on nearly every message
def parse_address(value: str) -> tuple[str, str]:
    """`email.utils.parseaddr`: (display name, address) of "Name <address>"."""
    return parseaddr(value)


def header_safe(value: str) -> str:
    """Fold anything that could end a header line into a space: no header injection."""
    return _LINE_BREAKS.sub(" ", value or "").strip()


@dataclass
class Attachment:
    filename: str
    content: bytes
    mimetype: str = "application/octet-stream"


@dataclass
class Email:
    to: str
    subject: str
    html: str
    text: str
    sender: str  # "Name <address>" as in MAIL_FROM
    to_name: str = ""
    reply_to: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    # Opaque ids only (never an address): SendGrid echoes them on webhook events.
    custom_args: dict[str, str] = field(default_factory=dict)
    categories: list[str] = field(default_factory=list)
    attachments: list[Attachment] = field(default_factory=list)

    def sender_parts(self) -> tuple[str, str]:
        name, addr = parse_address(self.sender)
        return header_safe(name), addr

    def to_mime(self, message_id: str | None = None) -> EmailMessage:
        """The complete message: every header, a text and an HTML part, attachments."""
        msg = EmailMessage()
        from_name, from_addr = self.sender_parts()
        msg["From"] = Address(display_name=from_name, addr_spec=from_addr)
        msg["To"] = Address(display_name=header_safe(self.to_name), addr_spec=self.to)
        if self.reply_to:
            msg["Reply-To"] = header_safe(self.reply_to)
        msg["Subject"] = header_safe(self.subject)
        msg["Date"] = formatdate(localtime=False, usegmt=True)
        msg["Message-ID"] = message_id or make_msgid(domain=from_addr.rpartition("@")[2] or None)
        for name, value in self.headers.items():
            msg[header_safe(name)] = header_safe(value)
        for key, value in self.custom_args.items():
            msg[f"X-Kindling-{header_safe(key)}"] = header_safe(str(value))
        msg.set_content(self.text)
        msg.add_alternative(self.html, subtype="html")
        for att in self.attachments:
            maintype, _, subtype = att.mimetype.partition("/")
            msg.add_attachment(att.content, maintype=maintype, subtype=subtype or "octet-stream",
                               filename=header_safe(att.filename))
        return msg
