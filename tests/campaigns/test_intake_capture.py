"""A landing-page submit before the intake processor has run, and while the database refuses
the intake row: the visitor gets the thank-you page and the download either way."""

import os

import pytest
import sqlalchemy as sa
from flask.testing import FlaskClient

from app.db import db
from app.leads.models import Event, Lead
from forms import spill
from forms.models import Intake, Submission
from tests.campaigns.helpers import (
    form_values,
    make_file_asset,
    make_form,
    make_page,
)
from tests.helpers import database_refusing, statements_sent

SAME_ORIGIN = {"Sec-Fetch-Site": "same-origin"}


def _count(model) -> int:
    db.session.expire_all()
    return db.session.scalar(sa.select(sa.func.count()).select_from(model))


def _submit(browser, email="ann@example.com"):
    data = form_values(browser.get("/p/guide").get_data(as_text=True))
    return browser.post("/p/guide", data={**data, "email": email}, headers=SAME_ORIGIN)


def test_the_thank_you_page_and_its_download_work_before_the_worker_runs(app):
    make_page(form=make_form(), asset=make_file_asset())
    browser = FlaskClient(app)  # no worker behind it
    answer = _submit(browser)
    assert answer.status_code == 303
    assert _count(Lead) == 0 and _count(Intake) == 1  # only the intake row so far
    thanks = browser.get(answer.headers["Location"])
    html = thanks.get_data(as_text=True)
    assert thanks.status_code == 200 and "Download The guide" in html
    link = html.split('href="/d/', 1)[1].split('"', 1)[0]
    download = browser.get(f"/d/{link}")
    assert download.status_code == 200 and download.data.startswith(b"%PDF")
    download.close()
    # The visitor was faster than the worker: the download made the lead on the same path.
    (lead,) = db.session.scalars(sa.select(Lead)).all()
    assert lead.email == "ann@example.com"
    types = [e.type for e in db.session.scalars(sa.select(Event).where(Event.lead_id == lead.id))]
    assert types.count("form_submitted") == 1 and types.count("asset_downloaded") == 1
    assert db.session.scalar(sa.select(Intake.status)) == "done"


def test_the_submit_is_one_insert_and_no_transaction_of_its_own(app):
    """The visitor waits for one statement: the intake INSERT, in autocommit (no BEGIN and
    COMMIT round trips around it), durable when the database answers."""
    make_page(form=make_form())
    browser = FlaskClient(app)
    data = form_values(browser.get("/p/guide").get_data(as_text=True))
    with statements_sent() as statements:
        answer = browser.post("/p/guide", data={**data, "email": "ann@example.com"},
                              headers=SAME_ORIGIN)
    assert answer.status_code == 303
    assert statements == [("INSERT INTO intake", True)]
    with db.engine.connect() as other:  # committed: another connection sees it
        assert other.scalar(sa.select(sa.func.count()).select_from(Intake)) == 1


def test_the_same_post_again_gets_the_first_row_on_the_submit_path(app):
    """The same values again within the duplicate window: the unique key answers with the
    first row's id, and nothing is spilled (the submit's own insert, on either database)."""
    from forms import intake, pipeline

    form = make_form()
    values = intake.row_values(form, {"email": "ann@example.com"}, {}, pipeline.Context(), None)
    again = {**values, "id": "f" * 32}
    assert intake.insert(values) == (values["id"], False)
    assert intake.insert(again) == (values["id"], True)
    assert not spill.waiting() and _count(Intake) == 1
    clash = {**values, "dedupe_key": "another"}  # the same id, not the same post: an error
    with pytest.raises(intake.REFUSED):
        intake.insert(clash)
    assert intake.insert({**values, "id": "e" * 32, "dedupe_key": "another"})[1] is False


@pytest.mark.parametrize("page_copy_old", [False, True])
def test_a_pool_with_no_free_connection_loses_no_submit(app_config, make_app, monkeypatch,
                                                        page_copy_old):
    """Every pooled connection busy past the pool's timeout: the submit goes to the spill
    journal and the visitor gets the thank-you page, not a 503. A page whose cached copy is
    past its max-age is served from that copy, as when the database is down."""
    import time
    from types import SimpleNamespace

    from campaigns import pagecache

    options = {"pool_size": 1, "max_overflow": 0, "pool_timeout": 0.2}
    app = make_app({**app_config, "SQLALCHEMY_ENGINE_OPTIONS": options})
    with app.app_context():
        make_page(form=make_form())
        browser = FlaskClient(app)
        data = form_values(browser.get("/p/guide").get_data(as_text=True))
        db.session.remove()
        if page_copy_old:
            later = time.monotonic() + 3600
            monkeypatch.setattr(pagecache, "time", SimpleNamespace(monotonic=lambda: later))
        with db.engine.connect():  # the pool's only connection, held
            answer = browser.post("/p/guide", data={**data, "email": "ann@example.com"},
                                  headers=SAME_ORIGIN)
            assert answer.status_code == 303
            assert spill.waiting()
            thanks = browser.get(answer.headers["Location"])
            assert thanks.status_code == 200, thanks.status_code
            assert "Thanks, it is yours" in thanks.get_data(as_text=True)
        db.session.remove()
        from forms.jobs import process_intake

        assert process_intake() == 1 and not spill.waiting()
        assert _count(Lead) == 1


def test_a_spilled_submit_is_replayed_at_the_next_submit_without_listing_the_folder_each_time(
        app, monkeypatch):
    import time

    make_page(form=make_form())
    browser = FlaskClient(app)
    data = form_values(browser.get("/p/guide").get_data(as_text=True))
    with database_refusing():
        assert browser.post("/p/guide", data={**data, "email": "ann@example.com"},
                            headers=SAME_ORIGIN).status_code == 303
    listed = spill.waiting
    assert listed()
    looks: list[int] = []
    monkeypatch.setattr(spill, "waiting", lambda: looks.append(1) or listed())
    for n in range(3):
        assert browser.post("/p/guide", data={**data, "email": f"v{n}@example.com"},
                            headers=SAME_ORIGIN).status_code == 303
    deadline = time.monotonic() + 20
    while listed() and time.monotonic() < deadline:  # replayed in the background
        time.sleep(0.05)
    assert not listed() and _count(Intake) == 4
    assert len(looks) == 1  # after this process's spill; not at every submit


def test_the_same_post_on_a_second_page_of_the_form_gets_that_pages_thank_you(app):
    """One form on two pages: the same values posted on the second page within the duplicate
    window are the first intake row, and the second page's thank-you page and download still
    show (not a 404 right after the visitor's submit)."""
    form = make_form()
    make_page(form=form)
    make_page("ebook", form=form, asset=make_file_asset())
    browser = FlaskClient(app)
    assert _submit(browser).status_code == 303
    data = form_values(browser.get("/p/ebook").get_data(as_text=True))
    answer = browser.post("/p/ebook", data={**data, "email": "ann@example.com"},
                          headers=SAME_ORIGIN)
    assert answer.status_code == 303 and _count(Intake) == 1  # the first row
    thanks = browser.get(answer.headers["Location"])
    assert thanks.status_code == 200, thanks.status_code
    html = thanks.get_data(as_text=True)
    assert "Download The guide" in html
    link = html.split('href="/d/', 1)[1].split('"', 1)[0]
    download = browser.get(f"/d/{link}")
    assert download.status_code == 200 and download.data.startswith(b"%PDF")
    download.close()


def test_a_tampered_thank_you_address_is_404(app, client):
    make_page(form=make_form())
    answer = _submit(client)
    token = answer.headers["Location"].rsplit("/", 1)[1]
    assert client.get(f"/p/guide/thanks/{token[:-2]}xx").status_code == 404


def test_a_refusing_database_loses_no_submit(app, client):
    """The database turns read-only: the submit goes to the spill journal, the visitor gets the
    thank-you page, and the next processor run replays it into a lead."""
    make_page(form=make_form())
    browser = FlaskClient(app)
    data = form_values(browser.get("/p/guide").get_data(as_text=True))  # the page is cached

    def read_only(dbapi_connection, _record):
        dbapi_connection.execute("PRAGMA query_only = ON")

    sa.event.listen(db.engine, "connect", read_only)
    db.session.remove()
    db.engine.dispose()
    try:
        answer = browser.post("/p/guide", data={**data, "email": "ann@example.com"},
                              headers=SAME_ORIGIN)
        assert answer.status_code == 303
        assert spill.waiting() and len(os.listdir(spill.folder())) >= 1
        thanks = browser.get(answer.headers["Location"])
        assert thanks.status_code == 200 and "Thanks, it is yours" in thanks.get_data(
            as_text=True)
    finally:
        sa.event.remove(db.engine, "connect", read_only)
        db.session.remove()
        db.engine.dispose()
    assert _count(Intake) == 0

    from forms.jobs import process_intake

    assert process_intake() == 1  # the sweep replays the journal, then processes the row
    assert not spill.waiting()
    assert _count(Lead) == 1 and _count(Submission) == 1
    (row,) = db.session.scalars(sa.select(Intake)).all()
    assert row.status == "done"
    assert process_intake() == 0  # replayed once


def test_a_thank_you_page_opened_after_the_database_went_away_still_shows(app):
    """The submit was stored; the database refuses before the visitor's browser follows the
    303: the thank-you page, not a 404 (its signed address proves the submit was taken)."""
    make_page(form=make_form())
    browser = FlaskClient(app)
    answer = _submit(browser)
    assert answer.status_code == 303 and _count(Intake) == 1

    with database_refusing():
        thanks = browser.get(answer.headers["Location"])
        assert thanks.status_code == 200, thanks.status_code
        assert "Thanks, it is yours" in thanks.get_data(as_text=True)
        forged = browser.get(answer.headers["Location"][:-3] + "xyz")
        assert forged.status_code == 404


def test_a_double_click_while_the_database_refuses_keeps_both_thank_you_pages(app):
    """Both posts go to the spill journal; at replay the second is the same post within the
    duplicate window and becomes no row of its own. The browser shows the second post's
    thank-you page, and reloading it after the replay still thanks the visitor."""
    from forms.jobs import process_intake

    make_page(form=make_form(), asset=make_file_asset())
    browser = FlaskClient(app)
    data = form_values(browser.get("/p/guide").get_data(as_text=True))
    with database_refusing():
        first, second = (browser.post("/p/guide", data={**data, "email": "ann@example.com"},
                                      headers=SAME_ORIGIN) for _ in range(2))
    assert first.status_code == second.status_code == 303
    db.session.remove()
    assert process_intake() == 1 and not spill.waiting()
    assert _count(Lead) == 1 and _count(Intake) == 1
    for answer in (first, second):
        thanks = browser.get(answer.headers["Location"])
        assert thanks.status_code == 200, thanks.status_code
        assert "Thanks, it is yours" in thanks.get_data(as_text=True)
