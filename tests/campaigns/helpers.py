"""Story helpers for campaign tests: a form, a campaign with its landing page, an asset, and a
visitor who fills the page in like a browser would (every hidden field posted back)."""

from __future__ import annotations

import re
from decimal import Decimal
from email import policy
from email.parser import BytesParser
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import parse_qsl

from app.db import db
from campaigns import assets
from campaigns.models import Asset, Campaign, LandingPage
from campaigns.seed import demo_pdf
from forms.models import FieldType, Form, FormField
from tests.helpers import outbox_files

PDF = demo_pdf("Test guide")
LINK = re.compile(r"http://kindling\.test(/d/[A-Za-z0-9._-]+)")


def flush_page_views() -> int:
    """Run the page-view writer (the periodic `campaigns.jobs.flush_page_views`) now: landing
    page views wait on Redis until it writes them."""
    from campaigns import pageviews

    written = pageviews.flush()
    db.session.expire_all()
    return written


def make_form(name: str = "Guide form") -> Form:
    form = Form(name=name, min_submit_seconds=0, submit_label="Get the guide")
    for position, (field, label, kind, required) in enumerate([
        ("email", "Work email", FieldType.EMAIL, True),
        ("first_name", "First name", FieldType.TEXT, False),
        ("company", "Company", FieldType.TEXT, False),
    ]):
        form.fields.append(FormField(name=field, label=label, type=kind.value,
                                     required=required, position=position))
    db.session.add(form)
    db.session.commit()
    return form


def make_file_asset(data: bytes = PDF, filename: str = "Guide 2026.pdf", ttl: int = 72) -> Asset:
    asset = Asset(name="The guide", link_ttl_hours=ttl, **assets.store_bytes(data, filename))
    db.session.add(asset)
    db.session.commit()
    return asset


def make_page(slug: str = "guide", status: str = "live", *, form: Form | None = None,
              asset: Asset | None = None, body: str = "Read **this**.",
              cost: str = "0", campaign_slug: str | None = None) -> LandingPage:
    campaign = Campaign(name=f"Campaign {slug}", slug=campaign_slug or slug, status=status,
                        channel="paid", utm_source="newsletter", utm_medium="email",
                        utm_campaign="spring", cost=Decimal(cost))
    page = LandingPage(campaign=campaign, slug=slug, headline="Get the guide",
                       body_markdown=body, form=form, asset=asset,
                       thank_you_headline="Thanks, it is yours",
                       thank_you_markdown="Enjoy *the guide*.")
    db.session.add(page)
    db.session.commit()
    return page


class _Inputs(HTMLParser):
    """Collects what a browser would post: inputs (checked boxes only) and selected options."""

    def __init__(self):
        super().__init__()
        self.values: dict[str, str] = {}
        self._select: str | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "input" and a.get("name"):
            if a.get("type") in ("checkbox", "radio") and "checked" not in a:
                return
            self.values[a["name"]] = a.get("value") or ("y" if a.get("type") == "checkbox" else "")
        elif tag == "textarea" and a.get("name"):
            self.values[a["name"]] = ""
        elif tag == "select":
            self._select = a.get("name")
            self.values.setdefault(self._select, "")
        elif tag == "option" and self._select and "selected" in a:
            self.values[self._select] = a.get("value", "")

    def handle_endtag(self, tag):
        if tag == "select":
            self._select = None


def form_values(html: str) -> dict[str, str]:
    parser = _Inputs()
    parser.feed(html)
    return parser.values


_PAGE_ID = re.compile(r'<script src="/t/v.js" data-page="(\d+)"')


def view_page(client, slug: str, query: str = "", environ_base=None, **headers):
    """What a browser does on a landing page: GET it, then its script's beacon reports the view
    (`/t/v.gif?lp=<page id>`), which also gives the browser its visitor cookie."""
    environ_base = environ_base or {}
    response = client.get(f"/p/{slug}{query}", headers=headers, environ_base=environ_base)
    match = _PAGE_ID.search(response.get_data(as_text=True))
    if response.status_code == 200 and match:
        client.get("/t/v.gif", query_string={"u": f"http://localhost/p/{slug}{query}",
                                             "lp": match.group(1)}, headers=headers,
                   environ_base=environ_base)
    return response


def script_values(html: str, query: str = "", slug: str = "", **known: str) -> dict[str, str]:
    """The form's fields after the page's script ran: hidden fields filled from the query
    string, the landing address and the time zone."""
    data = form_values(html)
    params = dict(parse_qsl(query.lstrip("?")))
    known.setdefault("landing_url", f"http://localhost/p/{slug}{query}")
    for name, value in list(data.items()):
        if value == "" and name in known:
            data[name] = known[name]
        elif value == "" and name in params:
            data[name] = params[name]
    return data


def fill_and_submit(client, slug: str, query: str = "", **values):
    """View the landing page in a browser, then POST its form back with `values` typed in
    (same origin, as the browser says)."""
    page = view_page(client, slug, query)
    assert page.status_code == 200, page.status_code
    data = script_values(page.get_data(as_text=True), query, slug)
    data.update(values)
    return client.post(f"/p/{slug}", data=data, headers={"Sec-Fetch-Site": "same-origin"})


def asset_emails() -> list[Path]:
    return [p for p in outbox_files() if "Subject: Your download" in p.read_text()]


def parse(path: Path):
    with path.open("rb") as fh:
        return BytesParser(policy=policy.default).parse(fh)


def link_in(path: Path) -> str:
    """The download path in an asset email (checked to be the same in both parts)."""
    message = parse(path)
    text = message.get_body(preferencelist=("plain",)).get_content()
    html = message.get_body(preferencelist=("html",)).get_content()
    (link,) = set(LINK.findall(text))
    assert link in html
    return link
