"""Enrolling leads from a CSV file a marketer uploads (the "CSV import" trigger).

The first row names the columns; `email` is required, the lead core's profile fields
(first_name, last_name, company, job_title, phone, country) fill the profile, and any other
column is kept in the lead's attributes (`timezone` sets the send-window zone). Each row upserts
its lead and enrolls it under the sequence's usual rules; rows that cannot be used are reported
with their line number, never half-imported. Nothing here commits: the caller owns the
transaction, then kicks the new enrollments.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field

from app.db import db
from app.leads.service import InvalidEmail, record_event, upsert_lead
from app.templating import plural
from nurture.enrollment import enroll, refusal
from nurture.models import Sequence

MAX_ROWS = 10_000
LEAD_SOURCE = "CSV import"


@dataclass
class ImportResult:
    enrolled: list[int] = field(default_factory=list)  # enrollment ids
    skipped: list[tuple[int, str]] = field(default_factory=list)  # (line, why)
    error: str | None = None  # the whole file was refused

    def summary(self) -> str:
        text = f"{plural(len(self.enrolled), 'lead')} enrolled"
        if self.skipped:
            text += f", {plural(len(self.skipped), 'row')} skipped"
        return text


def _text(raw: bytes) -> str:
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError:
            continue
    return raw.decode("latin-1")


def import_csv(sequence: Sequence, raw: bytes, source: str) -> ImportResult:
    result = ImportResult()
    if not sequence.is_active:
        result.error = "the sequence is not active: activate it before importing leads"
        return result
    reader = csv.DictReader(io.StringIO(_text(raw), newline=""))
    columns = {(name or "").strip().lower(): name for name in reader.fieldnames or []}
    if "email" not in columns:
        result.error = "the first row must name the columns, one of them 'email'"
        return result
    for row in reader:
        line = reader.line_num
        if len(result.enrolled) + len(result.skipped) >= MAX_ROWS:
            result.skipped.append((line, f"more than {MAX_ROWS} rows: the rest was not read"))
            break
        values = {key: (row.get(name) or "").strip() for key, name in columns.items()
                  if key and isinstance(row.get(name), str)}
        email = values.pop("email", "")
        if not email:
            result.skipped.append((line, "no email"))
            continue
        try:
            upsert = upsert_lead(email, values, source=LEAD_SOURCE)  # a short actor name
        except InvalidEmail:
            result.skipped.append((line, f"not an email address: {email[:80]}"))
            continue
        lead = upsert.lead
        if upsert.created or upsert.changes:
            record_event(lead, "lead_imported", data={"source": source,
                                                      "changes": upsert.changes})
        db.session.flush()
        why = refusal(lead, sequence)
        enrollment = enroll(lead.id, sequence.id, source) if why is None else None
        if enrollment is None:
            result.skipped.append((line, why or "not enrolled"))
            continue
        result.enrolled.append(enrollment.id)
    return result
