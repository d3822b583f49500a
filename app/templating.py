"""Template filters and globals shared by every page, and the admin navigation registry."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, NamedTuple

from flask import Flask, current_app, request, url_for
from flask_login import current_user

EVENT_LABELS = {
    "form_submitted": "Submitted a form",
    "subscription_confirmed": "Confirmed their subscription",
    "subscription_expired": "Never confirmed their subscription",
    "asset_downloaded": "Downloaded an asset",
    "asset_email_sent": "Was sent the asset link",
    "asset_email_failed": "Asset email could not be sent",
    "nurture_enrolled": "Entered a nurture sequence",
    "nurture_finished": "Finished a nurture sequence",
    "nurture_exited": "Left a nurture sequence early",
    "email_sent": "Was sent an email",
    "email_delivered": "Email delivered",
    "email_opened": "Opened an email",
    "email_clicked": "Clicked a link in an email",
    "email_dropped": "Email dropped by the provider",
    "email_blocked": "Email blocked by the receiving server",
    "page_viewed": "Viewed a page",
    "pricing_viewed": "Viewed the pricing page",
    "demo_viewed": "Viewed the demo page",
    "site_returned": "Came back to the site",
    "unsubscribed": "Unsubscribed",
    "bounced": "Email bounced",
    "spam_reported": "Reported an email as spam",
    "owner_assigned": "Owner assigned",
    "handoff_decided": "Sales decided on the lead",
    "handoff_refused": "A handoff decision was refused",
    "engagement_reset": "Engagement reset",
    "outcome_recorded": "Outcome recorded (deal)",
    "profile_edited": "Profile edited",
    "subscription_changed": "Subscription changed by hand",
    "lead_imported": "Imported from a file",
}


def add_nav(app: Flask, endpoint: str, label: str, *roles: str) -> None:
    """Put a link in the admin navigation, shown to users with one of `roles`."""
    app.extensions.setdefault("admin_nav", []).append((endpoint, label, roles))


class NavLink(NamedTuple):
    url: str
    label: str
    current: bool


def nav_links() -> list[NavLink]:
    """The admin navigation for the signed-in user. One link is current: the one whose
    address is the longest prefix of this page's (so /admin/leads/import marks "Import", not
    "Leads" as well; a lead's page marks "Leads")."""
    links = [(url_for(endpoint), label) for endpoint, label, roles
             in current_app.extensions.get("admin_nav", []) if current_user.has_role(*roles)]
    path = request.path.rstrip("/")
    under = [url for url, _ in links
             if path == url.rstrip("/") or path.startswith(url.rstrip("/") + "/")]
    current = max(under, key=len, default=None)
    return [NavLink(url, label, url == current) for url, label in links]


def add_lead_panel(app: Flask, render: Callable[[Any], Any]) -> None:
    """Add a section to the lead page: `render(lead)` returns HTML (Markup), e.g. the score
    breakdown. Lets feature packages show their part of a lead's story without the core
    importing them."""
    app.extensions.setdefault("lead_panels", []).append(render)


def format_datetime(value: datetime | None) -> str:
    if value is None:
        return "—"
    return value.strftime("%Y-%m-%d %H:%M UTC")


def plural(count: int | None, one: str, many: str | None = None, *,
           number: bool = True) -> str:
    """"1 lead", "2 leads", "1,204 leads"; `many` for irregular nouns ("person", "people");
    `number=False` gives only the noun, for when the number is shown on its own."""
    count = count or 0
    noun = one if count == 1 else (many or one + "s")
    return f"{count:,} {noun}" if number else noun


def event_label(event_type: str) -> str:
    if event_type.startswith("custom."):  # sent through the API (app.api.events)
        return "Custom event: " + event_type[len("custom."):].replace("_", " ")
    return EVENT_LABELS.get(event_type, event_type.replace("_", " ").capitalize())


def init_app(app: Flask) -> None:
    app.add_template_filter(format_datetime, "datetime")
    app.add_template_filter(event_label, "event_label")
    app.add_template_filter(plural, "plural")
    app.add_template_global(nav_links, "nav_links")
    app.add_template_global(lambda: current_app.extensions.get("admin_nav", []), "admin_nav")
    app.add_template_global(lambda: current_app.extensions.get("lead_panels", []), "lead_panels")
    add_nav(app, "admin.dashboard", "Dashboard", "marketer", "sales")
    add_nav(app, "leads.index", "Leads", "marketer", "sales")
    add_nav(app, "leads.import_upload", "Import", "marketer")
    add_nav(app, "mail.index", "Outbox", "marketer")
    add_nav(app, "auth.users", "Users", "admin")
