"""Leads → Import: upload, map with a preview, a job with progress, dedupe by email,
suppressed stay suppressed, rejected rows in a report; BOM, semicolons, CRLF, formula-led
cells, multi-line cells; wrong encoding and no email column said before anything runs; the
CLI does the same."""

from __future__ import annotations

import csv
import io
import re

import pytest
import sqlalchemy as sa
from werkzeug.datastructures import FileStorage, MultiDict
from werkzeug.test import encode_multipart

from app.db import db, utcnow
from app.leads.imports import LeadImport, run_import
from app.leads.models import Event, Lead, StageChange
from app.leads.service import upsert_lead
from tests.helpers import csrf_from


def _upload(client, data: bytes, name="leads.csv"):
    token = csrf_from(client.get("/admin/leads/import").get_data(as_text=True))
    # Encoded here, in memory: the test client would spool a body over 500 kB to a temporary
    # file it never closes (a ResourceWarning at garbage collection, outside any request).
    boundary, body = encode_multipart(MultiDict({
        "csrf_token": token, "file": FileStorage(io.BytesIO(data), name)}))
    return client.post("/admin/leads/import", data=body,
                       content_type=f"multipart/form-data; boundary={boundary}")


def test_an_import_maps_previews_runs_and_reports(app, client, auth):
    auth.login_as("marketer")
    known = upsert_lead("Known@Example.com", {"first_name": "Kay", "company": "Old"}).lead
    gone = upsert_lead("gone@example.com", {"first_name": "Gone"}).lead
    gone.unsubscribed_at = utcnow()
    db.session.commit()
    body = ("\ufeffE-mail;First name;Company;Team size\r\n"
            "ann@example.com;Ann;=HYPERLINK(\"http://x\");11-50\r\n"
            "KNOWN@example.com ;;New Co;\r\n"
            "not-an-email;Bob;;\r\n"
            "gone@example.com;Gone;Back Again;\r\n"
            "ann@EXAMPLE.com;Annie;;\r\n"
            "multi@example.com;\"Line one\r\nline two\";Multi;\r\n").encode("utf-8")
    response = _upload(client, body)
    assert response.status_code == 302
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Map the columns" in page and "=HYPERLINK(&#34;http://x&#34;)" in page  # escaped
    (imp,) = db.session.scalars(sa.select(LeadImport)).all()
    assert imp.delimiter == ";" and imp.columns[0] == "E-mail"
    assert imp.mapping["E-mail"] == "email" and imp.mapping["Team size"] == "attr:Team size"
    token = csrf_from(page)
    started = client.post(response.headers["Location"], data={
        "csrf_token": token, "map-0": "email", "map-1": "first_name", "map-2": "company",
        "map-3": "attr", "source": "Trade show", "consent_basis": "consent",
        "consent_text": "Yes, email me"})
    assert started.status_code == 302
    status = client.get(started.headers["Location"]).get_data(as_text=True)
    assert "<progress" in status and '<meta http-equiv="refresh"' in status
    db.session.expire_all()
    assert imp.status == "queued"
    assert run_import(imp.id) == "done"
    assert run_import(imp.id) == "done"  # redelivered: nothing twice
    db.session.expire_all()
    assert (imp.created, imp.updated, imp.rejected, imp.kept_suppressed) == (2, 2, 1, 1)
    ann = db.session.scalar(sa.select(Lead).where(Lead.email == "ann@example.com"))
    assert ann.first_name == "Annie"  # one lead per normalised email; the later row wins
    assert ann.company == '=HYPERLINK("http://x")' and ann.attributes == {"Team size": "11-50"}
    db.session.refresh(known)
    assert (known.first_name, known.company) == ("Kay", "New Co")  # blanks erase nothing
    db.session.refresh(gone)
    assert gone.unsubscribed_at is not None and gone.company == "Back Again"
    multi = db.session.scalar(sa.select(Lead).where(Lead.email == "multi@example.com"))
    assert multi.first_name == "Line one\r\nline two"[:100]
    change = db.session.scalar(sa.select(StageChange).where(StageChange.lead_id == ann.id))
    assert change.reason == "Created by Trade show"
    event = db.session.scalar(sa.select(Event).where(Event.lead_id == ann.id,
                                                      Event.type == "lead_imported"))
    assert event.data["consent_text"] == "Yes, email me"
    done = client.get(started.headers["Location"]).get_data(as_text=True)
    assert "Finished" in done and 'value="100"' in done
    link = re.search(r'href="(/admin/leads/import/\d+/errors.csv)"', done).group(1)
    rejected = list(csv.reader(io.StringIO(client.get(link).get_data(as_text=True))))
    assert rejected[0] == ["line", "email", "reason"]
    assert rejected[1][:2] == ["4", "not-an-email"] and "not an email address" in rejected[1][2]


def test_wrong_encoding_is_refused_before_anything_runs(app, client, auth):
    auth.login_as("marketer")
    response = _upload(client, "email,name\nann@example.com,Zoë\n".encode("cp1252"))
    assert response.status_code == 400
    assert "This file is not UTF-8 text (byte 29 cannot be read)" in response.get_data(
        as_text=True)
    assert db.session.scalar(sa.select(sa.func.count()).select_from(LeadImport)) == 0


def test_no_email_column_is_refused_before_anything_runs(app, client, auth):
    auth.login_as("marketer")
    response = _upload(client, b"name,company\nAnn,Acme\n")
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    started = client.post(response.headers["Location"], data={
        "csrf_token": csrf_from(page), "map-0": "first_name", "map-1": "company"})
    assert started.status_code == 400
    assert "Choose the column that holds the email address" in started.get_data(as_text=True)
    (imp,) = db.session.scalars(sa.select(LeadImport)).all()
    assert imp.status == "draft"
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Lead)) == 0


def test_the_cli_imports_with_a_mapping(app, runner, tmp_path):
    path = tmp_path / "people.csv"
    path.write_text("Mail,Org\nann@example.com,Acme\nbad,Nope\n", encoding="utf-8")
    result = runner.invoke(args=["leads", "import", str(path), "--map", "Mail=email",
                                 "--map", "Org=company", "--source", "CRM dump"])
    assert result.exit_code == 0, result.output
    assert "1 new lead, 0 updated, 0 unchanged, 1 rejected" in result.output
    assert db.session.scalar(sa.select(Lead.company)) == "Acme"
    missing = runner.invoke(args=["leads", "import", str(path), "--map", "Mail=ignore"])
    assert missing.exit_code != 0 and "Choose the column that holds the email" in missing.output


def _fifty_megabytes() -> tuple[bytes, int]:
    """A 50 MB export as CRMs write them: a wide notes column the import leaves out."""
    notes = "Met at the booth; wants a demo of the nurture builder. " * 47  # ~2.6 kB
    rows = ["email,name,notes"]
    size, count = 0, 0
    while size < 50 * 1024 * 1024 - 4096:
        line = f"person{count}@example.com,Person {count},\"{notes}\""
        rows.append(line)
        size += len(line) + 2
        count += 1
    return ("\r\n".join(rows) + "\r\n").encode("utf-8"), count


def test_a_50_mb_file_uploads_previews_and_imports_every_row(app, client, auth):
    auth.login_as("marketer")
    body, count = _fifty_megabytes()
    assert 49 * 1024 * 1024 < len(body) <= 50 * 1024 * 1024
    response = _upload(client, body, "crm-export.csv")
    assert response.status_code == 302
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "person0@example.com" in page
    started = client.post(response.headers["Location"], data={
        "csrf_token": csrf_from(page), "map-0": "email", "map-1": "first_name", "map-2": "",
        "source": "CRM export", "consent_basis": "consent", "consent_text": "Yes"})
    assert started.status_code == 302
    (imp,) = db.session.scalars(sa.select(LeadImport)).all()
    assert run_import(imp.id) == "done"
    db.session.expire_all()
    assert (imp.created, imp.rejected) == (count, 0)
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Lead)) == count
    done = client.get(started.headers["Location"]).get_data(as_text=True)
    assert "Finished" in done and 'value="100"' in done


def test_a_file_over_50_mb_is_refused_with_a_clear_page_and_nothing_kept(app, client, auth):
    auth.login_as("marketer")
    body = b"email\r\n" + b"x" * (52 * 1024 * 1024)
    response = _upload(client, body)
    assert response.status_code == 413
    assert "larger than we accept" in response.get_data(as_text=True)
    assert db.session.scalar(sa.select(sa.func.count()).select_from(LeadImport)) == 0


def _run_file(runner, tmp_path, text: str, name: str = "people.csv") -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    result = runner.invoke(args=["leads", "import", str(path), "--map", "Mail=email"])
    assert result.exit_code == 0, result.output  # other columns by their names
    return result.output


def test_an_erased_address_imported_again_comes_back_suppressed(app, runner, tmp_path):
    from app.privacy import erased

    erased.remember("gone@example.com")
    db.session.commit()
    output = _run_file(runner, tmp_path, "Mail,Org\nGone@Example.com,Acme\nann@example.com,B\n")
    assert "2 new leads" in output
    gone = db.session.scalar(sa.select(Lead).where(Lead.email == "gone@example.com"))
    ann = db.session.scalar(sa.select(Lead).where(Lead.email == "ann@example.com"))
    assert gone.unsubscribed_at is not None and not gone.can_be_emailed  # as upsert_lead does
    assert ann.unsubscribed_at is None
    kinds = set(db.session.scalars(sa.select(Event.type).where(Event.lead_id == gone.id)))
    assert kinds == {"lead_imported", "suppressed_after_erasure"}
    assert db.session.scalar(sa.select(LeadImport.kept_suppressed)) == 1


def test_a_batch_is_a_fixed_number_of_statements_whatever_its_rows(app, runner, tmp_path):
    """No statement per row: known leads that change different fields are one UPDATE."""
    people = [upsert_lead(f"p{n}@example.com", {"first_name": f"P{n}", "company": "Old"}).lead
              for n in range(40)]
    people[0].attributes = {"Plan": "free", "Seats": "3"}
    db.session.commit()
    statements: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany):
        statements.append(" ".join(statement.split()[:3]).upper())

    def run(text: str, name: str) -> list[str]:
        statements.clear()
        sa.event.listen(db.engine, "before_cursor_execute", record)
        try:
            _run_file(runner, tmp_path, text, name)
        finally:
            sa.event.remove(db.engine, "before_cursor_execute", record)
        return list(statements)

    small = run("Mail,First name,Company,Plan\np0@example.com,,New,pro\nnew0@example.com,N,,\n",
                "small.csv")
    rows = ["Mail,First name,Company,Plan"]
    for n in range(1, 40):  # each known lead changes another mix of fields
        rows.append(f"p{n}@example.com,{'Q' if n % 2 else ''}{n},{'New' if n % 3 else ''},"
                    f"{'pro' if n % 5 else ''}")
        rows.append(f"new{n}@example.com,N{n},C{n},")
    big = run("\n".join(rows) + "\n", "big.csv")
    assert sorted(big) == sorted(small)
    db.session.expire_all()
    first = db.session.get(Lead, people[0].id)
    assert (first.first_name, first.company) == ("P0", "New")  # a blank cell erases nothing
    assert first.attributes == {"Plan": "pro", "Seats": "3"}  # merged, not replaced
    third = db.session.get(Lead, people[3].id)
    assert (third.first_name, third.company, third.attributes) == ("Q3", "Old", {"Plan": "pro"})
    sixth = db.session.get(Lead, people[6].id)
    assert (sixth.first_name, sixth.company) == ("6", "Old")
    changed = db.session.scalar(sa.select(Event).where(Event.lead_id == people[3].id,
                                                        Event.type == "lead_imported"))
    assert changed.data["changes"] == {"first_name": ["P3", "Q3"], "Plan": [None, "pro"]}
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Lead)) == 80


def test_a_nul_character_in_a_cell_is_dropped_not_fatal(app, runner, tmp_path):
    output = _run_file(runner, tmp_path, "Mail,First name,Plan\nnul@example.com,A\x00B,p\x00ro\n"
                                         "ok@example.com,Ok,\n")
    assert "2 new leads" in output
    lead = db.session.scalar(sa.select(Lead).where(Lead.email == "nul@example.com"))
    assert (lead.first_name, lead.attributes) == ("AB", {"Plan": "pro"})


def _queued(path, text: str) -> LeadImport:
    """An import of `text` (written to `path`), mapped and queued as its page leaves it."""
    from app.leads import imports

    path.write_text(text, encoding="utf-8")
    with open(path, "rb") as handle:
        imp = imports.create(handle, path.name, None)
    imp.status = "queued"
    db.session.commit()
    return imp


def test_an_import_stopped_by_an_error_resumes_where_it_stopped(app, runner, tmp_path,
                                                                 monkeypatch):
    """Batches are read ahead in a thread: an error in either side stops the run, and the
    redelivered job carries on after the last committed batch, nothing twice."""
    from app.leads import imports

    monkeypatch.setattr(imports, "BATCH", 3)
    path = tmp_path / "people.csv"
    imp = _queued(path, "email\n" + "".join(f"p{n}@example.com\n" for n in range(10)) + "bad\n")
    real = imports.apply_batch
    calls = []

    def failing(imp, batch, report):
        calls.append(len(batch))
        if len(calls) == 2:
            raise RuntimeError("database went away")
        return real(imp, batch, report)

    monkeypatch.setattr(imports, "apply_batch", failing)
    with pytest.raises(RuntimeError, match="database went away"):
        run_import(imp.id)
    db.session.rollback()
    db.session.expire_all()
    assert (imp.rows_done, imp.created) == (3, 3)
    monkeypatch.setattr(imports, "apply_batch", real)
    assert run_import(imp.id) == "done"
    db.session.expire_all()
    assert (imp.rows_done, imp.created, imp.rejected) == (11, 10, 1)
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Lead)) == 10
    # An error while reading (a cell over the csv module's limit) stops the job with it.
    path.write_text("email,notes\nq@example.com," + "x" * (1024 * 1024 + 1) + "\n",
                    encoding="utf-8")
    with open(path, "rb") as handle:
        huge = imports.create(handle, "huge.csv", None)
    huge.status = "queued"
    db.session.commit()
    with pytest.raises(csv.Error):
        run_import(huge.id)


def test_an_import_killed_before_a_commit_reports_each_rejected_row_once(app, client, auth,
                                                                         tmp_path, monkeypatch):
    """A batch's rejected rows reach the report file before its commit: a worker killed in
    between, redelivered, rejected them again, and the downloadable report listed them twice
    (more rows than the page's count of rejected ones)."""
    from app.leads import imports

    auth.login_as("marketer")
    monkeypatch.setattr(imports, "BATCH", 3)
    imp = _queued(tmp_path / "people.csv", "email\na@example.com\nbad-one\nb@example.com\n"
                  "bad-two\nc@example.com\nd@example.com\n")
    real = imports.apply_batch
    calls = []

    def killed_after_the_second(imp, batch, report):
        touched = real(imp, batch, report)
        calls.append(len(batch))
        if len(calls) == 2:
            raise RuntimeError("worker killed")
        return touched

    monkeypatch.setattr(imports, "apply_batch", killed_after_the_second)
    with pytest.raises(RuntimeError, match="worker killed"):
        run_import(imp.id)
    db.session.rollback()
    assert run_import(imp.id) == "done"
    db.session.expire_all()
    assert imp.rejected == 2
    report = client.get(f"/admin/leads/import/{imp.id}/errors.csv").get_data(as_text=True)
    rows = list(csv.reader(io.StringIO(report)))
    assert [(row[0], row[1]) for row in rows] == [("line", "email"), ("3", "bad-one"),
                                                  ("5", "bad-two")]


@pytest.mark.parametrize("rest", [
    "carl@example.com,Carl\n",  # no other quote: the cell runs to the end of the file
    "carl@example.com,Carl\ndee@example.com,\"Dee, Jr\"\n",  # it runs to the next quote
])
def test_a_stray_quote_that_would_swallow_the_next_rows_is_refused_before_anything_runs(
        app, client, auth, rest):
    """A cell that opens with a quote and never closes it on its line read every row after
    it into that one cell: Bob's first name became the text of the rows below, and those
    people were neither imported nor rejected. The upload now says where, and nothing runs."""
    auth.login_as("marketer")
    body = ("email,first_name\nann@example.com,Ann\nbob@example.com,\"Bob\n" + rest).encode()
    response = _upload(client, body)
    assert response.status_code == 400
    text = response.get_data(as_text=True)
    assert "line 3" in text and "quote" in text
    assert db.session.scalar(sa.select(sa.func.count()).select_from(LeadImport)) == 0


def test_a_quoted_cell_over_several_lines_and_quotes_inside_a_line_still_import(
        app, runner, tmp_path):
    output = _run_file(runner, tmp_path, "Mail,First name,Company\n"
                                         "ml@example.com,\"Line one\nline two\",Multi\n"
                                         "big@example.com,Bo,\"Big\" Corp\n")
    assert "2 new leads" in output and "0 rejected" in output


def test_two_columns_of_the_same_name_are_mapped_each_on_its_own(app, client, auth):
    """The mapping was kept by column name: of two columns both named "Phone" (a CRM's work
    and mobile numbers) the second's choice replaced the first's, so choosing "Phone" for the
    first and "Leave out" for the second imported no phone at all, and said nothing."""
    auth.login_as("marketer")
    response = _upload(client, b"Email,Phone,Phone,,\nann@example.com,+1 555 0100,+1 555 0199"
                               b",Acme,x\n")
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Phone (2)" in page and "Column 4" in page  # each column named once on the page
    started = client.post(response.headers["Location"], data={
        "csrf_token": csrf_from(page), "map-0": "email", "map-1": "phone", "map-2": "attr",
        "map-3": "company", "map-4": ""})
    assert started.status_code == 302
    (imp,) = db.session.scalars(sa.select(LeadImport)).all()
    assert run_import(imp.id) == "done"
    ann = db.session.scalar(sa.select(Lead).where(Lead.email == "ann@example.com"))
    assert (ann.phone, ann.company) == ("+1 555 0100", "Acme")
    assert list(ann.attributes.values()) == ["+1 555 0199"]


def test_a_country_written_as_a_name_imports_as_its_code_not_its_first_two_letters(
        app, runner, tmp_path):
    """A CRM export writes "Germany", "Netherlands", "United Kingdom": the import kept the
    first two letters, so a German lead became Georgia (GE) and a Dutch one Niger (NE), and
    territory assignment and send windows followed the wrong country, silently."""
    output = _run_file(runner, tmp_path, "Mail,Country\nde@example.com,Germany\n"
                                         "nl@example.com,Netherlands\nuk@example.com,UK\n"
                                         "gb@example.com,united kingdom\nus@example.com,us\n"
                                         "d3@example.com,DEU\nzz@example.com,Atlantis\n")
    assert "7 new leads" in output
    found = {lead.email.split("@")[0]: (lead.country, lead.attributes)
             for lead in db.session.scalars(sa.select(Lead))}
    assert {k: v[0] for k, v in found.items()} == {
        "de": "DE", "nl": "NL", "uk": "GB", "gb": "GB", "us": "US", "d3": "DE", "zz": ""}
    assert found["zz"][1] == {"country": "Atlantis"}  # not a country code: kept as written
