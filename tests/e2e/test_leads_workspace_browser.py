"""The leads workspace in a real browser: find, edit, note and move a lead; import a CSV and
watch the progress bar finish; a sales rep accepts on the lead page and sees it in My leads."""

from __future__ import annotations

import threading
from typing import Any

import pytest

pytestmark = pytest.mark.e2e

PASSWORD = "kindling-demo"


def sign_in(page: Any, base: str, email: str) -> None:
    page.goto(f"{base}/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{base}/admin/")


@pytest.fixture
def people(db_app: Any) -> dict[str, int]:
    from app.auth.models import create_user
    from app.db import db
    from app.leads.service import change_stage, upsert_lead

    with db_app.app_context():
        create_user("marketer@example.com", PASSWORD, "marketer")
        create_user("sales@example.com", PASSWORD, "sales")
        dana = upsert_lead("dana@acme.example.com", {"first_name": "Dana", "last_name": "Okafor",
                                                     "company": "Acme"}).lead
        upsert_lead("lee@bright.example.com", {"first_name": "Lee", "company": "Bright"})
        mql = upsert_lead("mia@contoso.example.com", {"first_name": "Mia",
                                                      "company": "Contoso"}).lead
        db.session.flush()
        change_stage(dana, "mql", reason="score 60", actor="scoring")
        change = change_stage(mql, "mql", reason="score 70", actor="scoring")
        db.session.commit()
        from app.sales.jobs import on_stage_change

        on_stage_change(change.id)
        ids = {"dana": dana.id, "mia": mql.id}
        db.session.remove()
    return ids


def test_a_marketer_finds_edits_notes_and_moves_a_lead(live_server, page, people, db_app):
    base = live_server.url
    sign_in(page, base, "marketer@example.com")
    page.goto(f"{base}/admin/leads/")
    page.get_by_label("Search", exact=True).fill("dana")
    page.get_by_label("Stage", exact=True).select_option(["mql"])
    page.get_by_role("button", name="Show leads").click()
    page.wait_for_url("**stage=mql**")
    assert page.get_by_role("link", name="Lee").count() == 0
    page.get_by_role("link", name="Dana Okafor").click()
    page.get_by_text("Edit profile").click()
    page.get_by_role("textbox", name="Company").fill("Acme Industrial")
    page.get_by_role("button", name="Save profile").click()
    page.get_by_text("Profile saved (company).").wait_for()
    page.get_by_role("textbox", name="Note").fill("Wants a demo next week")
    page.get_by_role("button", name="Add note").click()
    page.get_by_text("Note added.").wait_for()
    page.get_by_label("Move to", exact=True).select_option("sql")
    page.locator("#stage-form").get_by_label("Reason").fill("Called her: budget approved")
    page.get_by_role("button", name="Change stage").click()
    page.get_by_text("Moved to SQL.").wait_for()
    timeline = page.locator("#timeline-h + ol").inner_text()
    assert "Stage MQL → SQL" in timeline and "Wants a demo next week" in timeline
    assert "company: Acme → Acme Industrial" in timeline
    with db_app.app_context():
        from app.db import db
        from app.leads.models import Lead

        lead = db.session.get(Lead, people["dana"])
        assert (lead.stage, lead.company) == ("sql", "Acme Industrial")
        db.session.remove()


def test_a_marketer_imports_a_csv_and_watches_the_progress_bar(live_server, page, people,
                                                               db_app, tmp_path):
    base = live_server.url
    rows = "".join(f"person{n}@example.com;Person {n};Co {n % 7}\r\n" for n in range(300))
    path = tmp_path / "trade-show.csv"
    path.write_bytes(("\ufeffEmail;First name;Company\r\n" + rows).encode("utf-8"))
    sign_in(page, base, "marketer@example.com")
    page.get_by_role("link", name="Import").click()
    page.get_by_label("CSV file").set_input_files(str(path))
    page.get_by_role("button", name="Upload and map columns").click()
    page.get_by_text("Map the columns of").wait_for()
    assert page.get_by_label("Field for column “Email”").input_value() == "email"
    assert "person0@example.com" in page.locator("table.import-preview").inner_text()
    page.get_by_role("textbox", name="Source").fill("Trade show 2026")
    page.get_by_role("button", name="Start the import").click()
    page.locator("progress").wait_for()
    import_id = int(page.url.rstrip("/").rsplit("/", 1)[1])

    def worker() -> None:  # what the RQ worker does with the outbox job
        with db_app.app_context():
            from app.db import db
            from app.leads.imports import run_import

            run_import(import_id)
            db.session.remove()

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join(60)
    page.get_by_text("Finished").wait_for(timeout=20_000)  # the page refreshes itself
    assert page.locator("progress").get_attribute("value") == "100"
    assert "300" in page.locator("dl.props").inner_text()


def test_a_sales_rep_accepts_on_the_lead_page_and_sees_it_in_my_leads(live_server, page,
                                                                        people):
    base = live_server.url
    sign_in(page, base, "sales@example.com")
    page.goto(f"{base}/admin/leads/{people['mia']}")
    page.get_by_role("button", name="Accept lead").click()
    page.get_by_text("Accepted: Mia is now SQL.").wait_for()
    page.get_by_role("link", name="My leads").click()
    assert page.get_by_role("link", name="Mia").count() == 1
