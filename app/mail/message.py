"""One outgoing email, whatever backend sends it, and its exact MIME form."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr
from functools import lru_cache

_LINE_BREAKS = re.compile(r"[\r\n\u2028\u2029\x00]+")

# How a message is written out (`to_bytes`): SMTP line ends, and header values stored as they
# are (`_set_header`) written as they are. The default would refold a long value into RFC 2047
# encoded words (`=?utf-8?q?=3Cmailto...`), and mail clients then no longer read it as, say,
# a List-Unsubscribe header.
WIRE_POLICY = policy.SMTP.clone(refold_source="none")
FOLD_AT = 78  # RFC 5322: lines SHOULD stay within 78 characters...
MAX_LINE = 998  # ...and MUST stay within 998


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
            _set_header(msg, header_safe(name), header_safe(value))
        for key, value in self.custom_args.items():
            _set_header(msg, f"X-Kindling-{header_safe(key)}", header_safe(str(value)))
        msg.set_content(self.text)
        msg.add_alternative(self.html, subtype="html")
        for att in self.attachments:
            maintype, _, subtype = att.mimetype.partition("/")
            msg.add_attachment(att.content, maintype=maintype, subtype=subtype or "octet-stream",
                               filename=header_safe(att.filename))
        return msg

    def to_bytes(self, message_id: str | None = None) -> bytes:
        """The message as it would travel (CRLF line ends)."""
        return self.to_mime(message_id).as_bytes(policy=WIRE_POLICY)


def _set_header(msg: EmailMessage, name: str, value: str) -> None:
    """An ASCII value is stored as it is, folded only at its own spaces (unfolding gives the
    value back exactly); anything else goes through the email package, which encodes it."""
    lines = _fold(f"{name}: ", value)
    if value.isascii() and all(len(line) <= MAX_LINE for line in lines):
        msg.set_raw(name, "\n".join(lines)[len(name) + 2:])
    else:
        msg[name] = value


def _fold(prefix: str, value: str) -> list[str]:
    """`prefix + value` in lines of at most FOLD_AT characters where spaces allow (never
    between the prefix and the value's first word); a line that continues the one before
    starts with the space it was folded at."""
    lines: list[str] = []
    first, *rest = value.split(" ")
    line = prefix + first
    for word in rest:
        if len(line) + 1 + len(word) > FOLD_AT and line.strip():
            lines.append(line)
            line = " " + word
        else:
            line += " " + word
    return [*lines, line]
