"""Importing leads from a CSV file: upload → map columns (with a preview) → a background job
with progress → a report of rejected rows. `flask leads import FILE --map col=field` runs the
same import in the terminal.

- The file must be UTF-8 (a BOM is fine); another encoding is refused before anything runs,
  saying where the first bad byte is. Commas, semicolons or tabs are recognised; CRLF too.
  A quote that opens a cell and is not closed where it should be (it would take the next
  rows into that cell) is refused the same way, naming its line.
- Exactly one column maps to `email`; without one the import does not start.
- Rows dedupe by normalised email (within the file and against existing leads): a known lead
  is updated (blank cells never erase), a new one created, crediting the import's source.
- Suppressed leads (unsubscribed, bounced) stay suppressed: an import never clears that, and
  any sequence enrollment refuses them.
- Cells are kept as written (a formula-led cell is text here); they are escaped in pages and
  defused in every CSV Kindling writes, the error report included. A country may be a code or
  a name ("Germany" is DE); one that is neither stays in the attributes as written.
- The job commits each batch with its position in the file, so a redelivered job resumes.
"""

from __future__ import annotations

import codecs
import csv
import functools
import io
import os
import queue
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import IO, Any, cast

import pycountry
import sqlalchemy as sa
from flask import current_app
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.auth.models import User
from app.db import JSONType, Model, UTCDateTime, any_of, db, insert_rows, update_rows, utcnow
from app.jobs import job
from app.leads.csv_cut import cut_csv
from app.leads.models import Event, Lead, Stage, StageChange
from app.leads.service import PROFILE_FIELDS, PROFILE_LENGTHS, InvalidEmail, normalise_email
from app.privacy import erased

BATCH = 1000
MAX_BYTES = 50 * 1024 * 1024 + 1024 * 1024  # 50 MB of data and the form around it
PREVIEW_ROWS = 5
IGNORE = ""
FIELDS = ("email", *PROFILE_FIELDS)
CONSENT_BASES = ("consent", "legitimate interest", "contract", "not recorded")
csv.field_size_limit(1024 * 1024)


class ImportProblem(ValueError):
    """The file cannot be imported as it is; the message says why and what to do."""


class LeadImport(Model):
    __tablename__ = "lead_imports"

    id: Mapped[int] = mapped_column(primary_key=True)
    stored_name: Mapped[str] = mapped_column(sa.String(100))  # under <instance>/imports/
    original_name: Mapped[str] = mapped_column(sa.String(300), default="")
    delimiter: Mapped[str] = mapped_column(sa.String(1), default=",")
    columns: Mapped[list[str]] = mapped_column(JSONType, default=list)
    mapping: Mapped[dict[str, str]] = mapped_column(JSONType, default=dict)  # column → field
    source: Mapped[str] = mapped_column(sa.String(100), default="Import")
    consent_basis: Mapped[str] = mapped_column(sa.String(40), default="not recorded")
    consent_text: Mapped[str] = mapped_column(sa.Text, default="")
    sequence_id: Mapped[int | None] = mapped_column()  # nurture's, when one was chosen
    created_by_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    status: Mapped[str] = mapped_column(sa.String(10), default="draft")
    size: Mapped[int] = mapped_column(sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                                      default=0)
    rows_done: Mapped[int] = mapped_column(default=0)  # data rows read, for resuming
    byte_offset: Mapped[int] = mapped_column(sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                                             default=0)
    created: Mapped[int] = mapped_column(default=0)
    updated: Mapped[int] = mapped_column(default=0)
    unchanged: Mapped[int] = mapped_column(default=0)
    rejected: Mapped[int] = mapped_column(default=0)
    kept_suppressed: Mapped[int] = mapped_column(default=0)
    enrolled: Mapped[int] = mapped_column(default=0)
    error: Mapped[str | None] = mapped_column(sa.Text)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    created_by = relationship("User")

    @property
    def percent(self) -> int:
        """How far the job is through the file (by bytes read)."""
        if self.status == "done":
            return 100
        return min(99, int(100 * self.byte_offset / self.size)) if self.size else 0

    @property
    def label(self) -> str:
        return self.original_name or f"import {self.id}"


def folder() -> str:
    path = os.path.join(current_app.instance_path, "imports")
    os.makedirs(path, exist_ok=True)
    return path


def path_of(imp: LeadImport) -> str:
    return os.path.join(folder(), imp.stored_name)


def errors_path(imp: LeadImport) -> str:
    return os.path.join(folder(), f"{imp.stored_name}.errors.csv")


def check_encoding(path: str) -> None:
    """ImportProblem unless the whole file is UTF-8 (read in blocks: 50 MB stays cheap)."""
    incremental = codecs.getincrementaldecoder("utf-8")()
    offset = 0
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            try:
                incremental.decode(block)
            except UnicodeDecodeError as exc:
                where = offset + exc.start
                raise ImportProblem(
                    f"This file is not UTF-8 text (byte {where:,} cannot be read). Save it "
                    "from your spreadsheet as “CSV UTF-8” and upload it again.") from None
            offset += len(block)
        try:
            incremental.decode(b"", final=True)
        except UnicodeDecodeError:
            raise ImportProblem("This file ends in the middle of a character: it is not "
                                "UTF-8 text. Save it as “CSV UTF-8” and upload it again.") from None


def sniff(path: str) -> tuple[str, list[str]]:
    """The delimiter and the header row."""
    with open(path, encoding="utf-8-sig", newline="") as handle:
        sample = handle.read(64 * 1024)
    if not sample.strip():
        raise ImportProblem("The file is empty.")
    first = sample.splitlines()[0] if sample.splitlines() else sample
    counts = {d: first.count(d) for d in (",", ";", "\t")}
    delimiter = max(counts, key=lambda d: counts[d]) if any(counts.values()) else ","
    header = next(csv.reader(io.StringIO(sample, newline=""), delimiter=delimiter))
    header = [h.strip() for h in header]
    if not any(header):
        raise ImportProblem("The first row must name the columns.")
    return delimiter, header


def distinct_names(header: list[str]) -> list[str]:
    """The header's names, each once (the mapping is kept by name): a repeated name gets its
    count ("Phone (2)"), a blank one its place ("Column 4")."""
    names: list[str] = []
    for place, name in enumerate(header, start=1):
        base = name or f"Column {place}"
        unique, count = base, 1
        while unique in names:
            count += 1
            unique = f"{base} ({count})"
        names.append(unique)
    return names


def check_quotes(path: str, delimiter: str) -> None:
    """ImportProblem when a cell opens with a quote that is not closed where it should be:
    read leniently, it takes the following rows into itself (up to the end of the file or the
    next quote), and they would be neither imported nor rejected. A quote stray inside one
    line (`"Big" Corp`) stays readable and is not refused."""
    with open(path, encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle, delimiter=delimiter, strict=True)
        start = 1  # the line the record being read starts on
        while True:
            try:
                next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                if "unexpected end of data" in str(exc) or reader.line_num > start:
                    raise ImportProblem(
                        f"A quote opens a cell on line {start:,} that is not closed on that "
                        "line, so the rows after it would be read as part of that cell. Check "
                        f"the quotes on line {start:,}, save and upload again.") from None
            start = reader.line_num + 1


def guess(column: str) -> str:
    """The field a column's name suggests (the mapping page pre-selects it)."""
    name = column.strip().lower().replace("-", " ").replace("_", " ")
    aliases = {"email": ("email", "e mail", "email address", "mail"),
               "first_name": ("first name", "firstname", "given name", "first"),
               "last_name": ("last name", "lastname", "surname", "family name", "last"),
               "company": ("company", "organisation", "organization", "company name"),
               "job_title": ("job title", "title", "position", "role"),
               "phone": ("phone", "telephone", "phone number", "mobile"),
               "country": ("country", "country code")}
    for target, names in aliases.items():
        if name in names:
            return target
    return f"attr:{column.strip()}"[:60] if column.strip() else IGNORE


def create(upload: IO[bytes], filename: str, user: User | None) -> LeadImport:
    """Store the upload, check it, and make a draft import. ImportProblem says what is wrong
    (the stored file is removed then). Commits."""
    stored = f"{uuid.uuid4().hex}.csv"
    path = os.path.join(folder(), stored)
    size = 0
    with open(path, "wb") as out:
        while block := upload.read(1 << 20):
            size += len(block)
            out.write(block)
    try:
        check_encoding(path)
        delimiter, header = sniff(path)
        check_quotes(path, delimiter)
    except ImportProblem:
        os.remove(path)
        raise
    names = distinct_names(header)
    # A repeated name's later columns are attributes by default, a blank one's left out.
    mapping = {name: guess(name if written and name != written else written)
               for name, written in zip(names, header)}
    imp = LeadImport(stored_name=stored, original_name=(filename or "")[:300],
                     delimiter=delimiter, columns=names, mapping=mapping, size=size,
                     status="draft",
                     created_by_id=user.id if user else None, created_at=utcnow())
    db.session.add(imp)
    db.session.commit()
    return imp


def preview(imp: LeadImport, rows: int = PREVIEW_ROWS) -> list[list[str]]:
    with open(path_of(imp), encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle, delimiter=imp.delimiter)
        next(reader, None)
        return [row for _, row in zip(range(rows), reader)]


def check_mapping(mapping: dict[str, str]) -> None:
    targets = [t for t in mapping.values() if t and not t.startswith("attr:")]
    if "email" not in targets:
        raise ImportProblem("Choose the column that holds the email address: without one "
                            "nothing can be imported.")
    twice = sorted({t for t in targets if targets.count(t) > 1})
    if twice:
        raise ImportProblem(f"Each field can come from one column only: {', '.join(twice)} "
                            "is chosen more than once.")


@dataclass(frozen=True)
class _Reading:
    """What reading the file needs, copied off the import (the read-ahead thread must not
    touch the session's objects)."""

    path: str
    delimiter: str
    targets: tuple[str, ...]  # the field of each column, IGNORE for none
    skip: int  # records done already


def _rows(reading: _Reading) -> Iterator[tuple[int, list[str], int]]:
    """(record number, cells, bytes read so far) of each data record after the ones already
    done. Quoted cells may hold line breaks; CRLF and a BOM are fine."""
    with open(reading.path, "rb") as raw:
        text = io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")
        reader = csv.reader(text, delimiter=reading.delimiter)
        next(reader, None)  # the header
        for number, cells in enumerate(reader, start=1):
            if number <= reading.skip:
                continue
            yield number + 1, cells, raw.tell()  # +1: the header is line 1


def _values(targets: tuple[str, ...], cells: list[str]) -> dict[str, str]:
    """A record's mapped cells, trimmed. NUL characters are dropped: PostgreSQL text cannot
    hold them (one would fail the whole batch, and with it the import)."""
    values: dict[str, str] = {}
    for target, cell in zip(targets, cells):
        cell = cell.replace("\x00", "").strip()
        if target and cell:
            values[target] = cell
    return values


# A data record ready for `apply_batch`: (line, mapped cells, (identity, display) of its
# address or why it is not one).
Record = tuple[int, dict[str, str], tuple[str, str] | str]


def _batches(reading: _Reading) -> Iterator[tuple[list[Record], int, int | None]]:
    """The file's records read, mapped and their addresses normalised, BATCH records at a
    time: (records, records read, bytes read; None at the end). Blank lines are skipped."""
    batch: list[Record] = []
    read = 0
    for line, cells, position in _rows(reading):
        read += 1
        if any(c.strip() for c in cells):  # blank lines are skipped, not rejected
            values = _values(reading.targets, cells)
            try:
                address: tuple[str, str] | str = normalise_email(values.get("email", ""))
            except InvalidEmail as exc:
                address = str(exc)
            batch.append((line, values, address))
        if read >= BATCH:
            yield batch, read, position
            batch, read = [], 0
    yield batch, read, None


def _read_ahead(batches: Iterator[Any], depth: int = 2) -> Iterator[Any]:
    """`batches`, produced by a thread up to `depth` ahead: the file is read and the addresses
    checked (Python) while the database writes the batch before (the driver lets the other
    thread run while it waits). The thread's error is raised here; stopping early stops it."""
    ready: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: tuple[str, Any]) -> bool:
        while not stop.is_set():
            try:
                ready.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for batch in batches:
                if not put(("batch", batch)):
                    return
            put(("end", None))
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            put(("error", exc))

    thread = threading.Thread(target=produce, name="lead-import-read-ahead", daemon=True)
    thread.start()
    try:
        while True:
            kind, item = ready.get()
            if kind == "end":
                return
            if kind == "error":
                raise item
            yield item
    finally:
        stop.set()
        thread.join(timeout=5)


def _parse(imp: LeadImport, batch: list[Record],
           report: Any) -> dict[str, tuple[str, dict[str, Any]]]:
    """The batch's rows by normalised email (the same person twice: one, merged, later cells
    winning): identity → (address as typed, profile fields and "_attrs"). Rows without a valid
    address go to the error report."""
    from app.sales.export import defuse

    by_email: dict[str, tuple[str, dict[str, Any]]] = {}
    for line, values, address in batch:
        raw = values.pop("email", "")
        if isinstance(address, str):
            imp.rejected += 1
            report.writerow([line, defuse(raw), defuse(f"not an email address: {address}")])
            continue
        identity, display = address
        profile: dict[str, Any] = {}
        attributes: dict[str, Any] = {}
        for target, value in values.items():
            if target.startswith("attr:"):
                attributes[target[5:]] = value
            elif target == "country":
                code = country_code(value)
                if code:
                    profile["country"] = code
                else:  # not a country we know: kept as written, not cut to two letters
                    attributes["country"] = value
            else:
                profile[target] = value[:PROFILE_LENGTHS[target]]
        if identity in by_email:  # the same person twice in a batch: one lead, merged
            _, known = by_email[identity]
            known.update(profile)
            known.setdefault("_attrs", {}).update(attributes)
            continue
        by_email[identity] = (display, {**profile, "_attrs": attributes})
    return by_email


@functools.lru_cache(maxsize=1024)
def country_code(written: str) -> str:
    """The ISO 3166 two-letter code of a country as a file writes it: a code ("de", "DEU"),
    a name ("Germany", "united kingdom") or "UK"; "" for none of these."""
    text = written.strip()
    if text.upper() == "UK":  # the code people write for GB (reserved for it by ISO)
        return "GB"
    try:
        return str(pycountry.countries.lookup(text).alpha_2)
    except LookupError:
        return ""


_KNOWN = (Lead.id, Lead.email, *(getattr(Lead, name) for name in PROFILE_FIELDS),
          Lead.attributes, Lead.unsubscribed_at, Lead.bounced_at)


def apply_batch(imp: LeadImport, batch: list[Record], report: Any) -> list[int]:
    """Upsert one batch (dedupe by normalised email); returns the lead ids it touched.

    A fixed number of statements per batch, whatever its size: one look-up of the known
    leads, one UPDATE of those that changed, one INSERT each of new leads, their first stage
    changes and the import's events (`app.db.insert_rows` / `update_rows`)."""
    by_email = _parse(imp, batch, report)
    if not by_email:
        return []
    now = utcnow()
    existing = {row.email: row for row in db.session.execute(
        sa.select(*_KNOWN).where(any_of(Lead.email, list(by_email))))}
    touched: list[int] = []
    events: list[dict[str, Any]] = []
    updates: list[dict[str, Any]] = []
    data = {"import_id": imp.id, "source": imp.source, "consent_basis": imp.consent_basis,
            "consent_text": imp.consent_text}
    for identity, lead in existing.items():
        _, wanted = by_email[identity]
        attrs: dict[str, Any] = wanted.pop("_attrs")
        changes: dict[str, list[Any]] = {}
        update: dict[str, Any] = {"id": lead.id, **dict.fromkeys(PROFILE_FIELDS),
                                  "attributes": None, "updated_at": now}
        for name, value in wanted.items():
            old = getattr(lead, name) or ""
            if old != value:
                changes[name] = [old, value]
                update[name] = value
        current = lead.attributes or {}
        merged = {**current, **attrs}
        if merged != current:
            changes.update({k: [current.get(k), v] for k, v in attrs.items()
                            if current.get(k) != v})
            update["attributes"] = merged
        if lead.unsubscribed_at is not None or lead.bounced_at is not None:
            imp.kept_suppressed += 1
        if changes:
            imp.updated += 1
            updates.append(update)
            events.append(_event(lead.id, now, {**data, "changes": changes}))
        else:
            imp.unchanged += 1
        touched.append(lead.id)
    update_rows(cast(sa.Table, Lead.__table__), updates)
    new = {identity: entry for identity, entry in by_email.items() if identity not in existing}
    if new:
        # An address erased on request comes back suppressed, as upsert_lead makes it.
        gone = erased.among(list(new))
        rows = [{"email": identity, "email_display": display, "first_name": "",
                 "last_name": "", "company": "", "job_title": "", "phone": "", "country": "",
                 **{k: v for k, v in values.items() if k != "_attrs"},
                 "attributes": values["_attrs"], "stage": Stage.LEAD.value, "fit_score": 0,
                 "engagement_score": 0.0, "engagement_key": -1.0e9, "created_at": now,
                 "updated_at": now, "last_activity_at": now,
                 "unsubscribed_at": now if identity in gone else None}
                for identity, (display, values) in new.items()]
        leads = cast(sa.Table, Lead.__table__)
        ids = dict(insert_rows(leads, rows, (leads.c.email, leads.c.id)))
        created = [ids[identity] for identity in new]  # in the file's order
        insert_rows(cast(sa.Table, StageChange.__table__), [
            {"lead_id": lead_id, "from_stage": None, "to_stage": Stage.LEAD.value,
             "changed_at": now, "reason": f"Created by {imp.source}", "actor": "import",
             "actor_user_id": imp.created_by_id} for lead_id in created])
        events += [_event(lead_id, now, {**data, "new_lead": True}) for lead_id in created]
        events += [{**_event(ids[identity], now, erased.SUPPRESSED_DATA),
                    "type": erased.SUPPRESSED_EVENT} for identity in new if identity in gone]
        imp.kept_suppressed += len(gone)
        imp.created += len(created)
        touched += created
    insert_rows(cast(sa.Table, Event.__table__), events)
    return touched


def _event(lead_id: int, now: datetime, data: dict[str, Any]) -> dict[str, Any]:
    return {"lead_id": lead_id, "type": "lead_imported", "occurred_at": now, "data": data,
            "is_bot": False}


def run_import(import_id: int, progress: Any = None) -> str:
    """Run (or resume) the import. Idempotent: a finished import is left alone."""
    imp = db.session.get(LeadImport, import_id)
    if imp is None or imp.status in ("done", "failed", "draft"):
        return imp.status if imp else "missing"
    imp.status = "running"
    db.session.commit()
    enroll = _enroller(imp)
    if os.path.exists(errors_path(imp)):
        # A delivery killed before its commit reported rows this one reads again: keep the
        # report's rows of the committed records only (record n is line n + 1).
        cut_csv(errors_path(imp), lambda row: bool(row) and row[0].isdigit()
                and int(row[0]) <= imp.rows_done + 1)
    with open(errors_path(imp), "a", newline="", encoding="utf-8") as errors:
        report = csv.writer(errors)
        if errors.tell() == 0:
            report.writerow(["line", "email", "reason"])
        reading = _Reading(path_of(imp), imp.delimiter,
                           tuple(imp.mapping.get(column, IGNORE) for column in imp.columns),
                           imp.rows_done)
        for batch, read, position in _read_ahead(_batches(reading)):
            _commit(imp, batch, report, read, imp.size if position is None else position,
                    enroll, errors, progress)
    imp.status, imp.finished_at = "done", utcnow()
    db.session.commit()
    return imp.status


def _commit(imp: LeadImport, batch: list[Record], report: Any, read: int,
            position: int, enroll: Any, errors: IO[str], progress: Any) -> None:
    ids = apply_batch(imp, batch, report) if batch else []
    if enroll is not None and ids:
        imp.enrolled += enroll(ids)
    imp.byte_offset = min(position, imp.size)
    imp.rows_done += read
    errors.flush()
    db.session.commit()
    if progress is not None:
        progress(imp)


def _enroller(imp: LeadImport):
    """Enrollment in the chosen sequence, through the bulk action nurture registered."""
    if not imp.sequence_id:
        return None
    from app.leads.bulk import actions

    action = actions().get("enroll")
    user = db.session.get(User, imp.created_by_id) if imp.created_by_id else None
    if action is None:
        return None

    def enroll(ids: list[int]) -> int:
        who = user or User(email=f"import {imp.id}")
        return action.apply(ids, {"sequence_id": str(imp.sequence_id)}, who, None).done

    return enroll


@job
def run(import_id: int) -> str:
    """The outbox job of an import started on its page."""
    return run_import(import_id)
