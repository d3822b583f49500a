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
from app.privacy import consent
from app.privacy.models import ConsentPurpose
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


BASES = ("consent", "legitimate_interest", "contract")


def import_csv(sequence: Sequence, raw: bytes, source: str, *, basis: str) -> ImportResult:
    """`basis`: why these people may be emailed (one of BASES), recorded with each lead; with
    "consent" and a sequence that needs a purpose, a grant of that purpose (source "import")."""
    result = ImportResult()
    if basis not in BASES:
        result.error = "say why these people may be emailed (the legal basis)"
        return result
    purpose = (db.session.get(ConsentPurpose, sequence.required_purpose_id)
               if sequence.required_purpose_id is not None else None)
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
        record_event(lead, "lead_imported", data={"source": source, "basis": basis,
                                                  "changes": upsert.changes})
        if purpose is not None and basis == "consent":
            consent.grant(lead, purpose, source="import", detail=f"basis: consent; {source}")
        db.session.flush()
        why = refusal(lead, sequence)
        enrollment = enroll(lead.id, sequence.id, source) if why is None else None
        if enrollment is None:
            result.skipped.append((line, why or "not enrolled"))
            continue
        result.enrolled.append(enrollment.id)
    return result
