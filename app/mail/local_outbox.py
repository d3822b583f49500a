"""The local outbox: every message written as a complete .eml file instead of being sent.

Used when no SendGrid key is set, so development and demos show exactly what would go out.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import make_msgid
from pathlib import Path

from app.mail.message import Email


class LocalOutbox:
    name = "outbox"

    def __init__(self, directory: str | os.PathLike[str]):
        self.directory = Path(directory)

    def send(self, email: Email) -> str:
        self.directory.mkdir(parents=True, exist_ok=True)
        message_id = make_msgid(domain="kindling.local")
        data = email.to_bytes(message_id=message_id)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        token = message_id.strip("<>").split("@")[0]
        final = self.directory / f"{stamp}-{token}.eml"
        # Write then rename: a reader never sees half a message.
        fd, tmp = tempfile.mkstemp(dir=self.directory, suffix=".part")
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, final)
        return message_id

    def check(self) -> str:
        self.directory.mkdir(parents=True, exist_ok=True)
        if not os.access(self.directory, os.W_OK):
            raise OSError(f"{self.directory} is not writable")
        return f"local outbox at {self.directory} (no SENDGRID_API_KEY set: nothing leaves)"

    # Reading, for the admin page and tests
    def messages(self) -> list[StoredMessage]:
        if not self.directory.exists():
            return []
        files = sorted(self.directory.glob("*.eml"), reverse=True)
        return [StoredMessage(path) for path in files]

    def get(self, name: str) -> StoredMessage | None:
        path = (self.directory / name).resolve()
        if path.parent != self.directory.resolve() or path.suffix != ".eml" or not path.exists():
            return None
        return StoredMessage(path)


@dataclass
class StoredMessage:
    path: Path

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def stem(self) -> str:
        """The name without ".eml": the message's address in the admin (`/admin/outbox/<stem>`;
        `<stem>.eml` downloads it)."""
        return self.path.stem

    def parse(self) -> EmailMessage:
        with self.path.open("rb") as fh:
            return BytesParser(policy=policy.default).parse(fh)

    def body(self, subtype: str) -> str:
        part = self.parse().get_body(preferencelist=(subtype,))
        return part.get_content() if part is not None else ""
