"""Mail scanners fetch every emailed link: their fetches are stored as machines, never as a
person's page view or download."""

import re

import sqlalchemy as sa

from app.db import db
from app.leads.models import Event
from app.worker import run_worker
from tests.campaigns.helpers import (
    fill_and_submit,
    flush_page_views,
    make_file_asset,
    make_form,
    make_page,
    view_page,
)

SAFE_LINKS = {"User-Agent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/124.0 Safari/537.36"}
SAFE_LINKS_IP = {"REMOTE_ADDR": "104.47.58.33"}
BROWSER = {"User-Agent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) Safari/605.1.15"}


def _events(type_):
    db.session.expire_all()
    return db.session.scalars(sa.select(Event).where(Event.type == type_).order_by(Event.id)).all()


def test_a_scanner_fetching_the_landing_page_is_not_a_visitor(app, client):
    """Views are counted by the page's script: a scanner that only fetches the page counts
    nothing; one that runs the script is stored as a machine, never as a person's view."""
    make_page(form=make_form())
    client.get("/p/guide", headers=SAFE_LINKS, environ_base=SAFE_LINKS_IP)
    client.head("/p/guide", headers=BROWSER)
    assert flush_page_views() == 0
    view_page(client, "guide", environ_base=SAFE_LINKS_IP, **SAFE_LINKS)
    view_page(client, "guide", **BROWSER)
    flush_page_views()
    views = _events("page_viewed")
    assert [(v.is_bot, v.bot_reason) for v in views] == [
        (True, "link scanner: Microsoft Safe Links"), (False, None)]
    assert views[0].visitor_id is None  # a scanner's views never join a lead


def test_a_scanner_opening_the_download_link_is_not_a_download(app, client):
    make_page(form=make_form(), asset=make_file_asset())
    client.get("/p/guide")
    fill_and_submit(client, "guide", email="ann@example.com")
    db.session.commit()
    with app.app_context():
        run_worker(burst=True)
    from tests.campaigns.helpers import asset_emails, link_in

    link = link_in(asset_emails()[0])
    path = re.sub(r"^https?://[^/]+", "", link)
    for headers, environ in ((SAFE_LINKS, SAFE_LINKS_IP), (BROWSER, {})):
        response = client.get(path, headers=headers, environ_base=environ)
        assert response.status_code == 200
        response.close()
    downloads = _events("asset_downloaded")
    assert [d.is_bot for d in downloads] == [True, False]
