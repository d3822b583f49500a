"""Campaigns: campaigns, landing pages, gated assets and their downloads."""

from __future__ import annotations

from flask import Flask

from campaigns.assets import DEFAULT_MAX_BYTES


def init_app(app: Flask) -> None:
    """Register this package's blueprints, jobs and demo data with the app."""
    import campaigns.models  # this package's tables
    from app.body_limits import add_body_limit
    from app.mail.ledger import add_settled_listener
    from app.pickers import Picker, add_picker, named
    from app.schedule import add_periodic
    from app.seed import add_seeder
    from app.templating import add_nav
    from app.visitors import add_beacon_listener
    from campaigns import admin, downloads, fastpath, pages, reporting
    from campaigns.demo_history import seed_demo_history
    from campaigns.seed import seed_campaigns
    from forms.pipeline import add_submission_listener

    app.config.setdefault("ASSET_MAX_BYTES", DEFAULT_MAX_BYTES)
    app.config.setdefault("PAGE_VIEW_FLUSH_INTERVAL", 1)  # seconds; see campaigns.pageviews
    # How long a landing page may be served from a cache (this process's, nginx's, a CDN's):
    # a marketer's edit shows within it. 0: no cache. See campaigns.pagecache.
    app.config.setdefault("LANDING_PAGE_CACHE_SECONDS", 60)
    for bp in (admin.bp, pages.bp, downloads.bp):
        app.register_blueprint(bp)
    add_body_limit(app, "campaigns.assets_index", admin.upload_limit)
    # Views of live pages are answered from their render before Flask (campaigns.fastpath).
    fastpath.install(app)
    # Their views are counted by the page's script's beacon (`/t/v.gif?lp=<page id>`).
    add_beacon_listener(app, pages.record_beacon_view)
    add_nav(app, "campaigns.index", "Campaigns", "marketer")
    add_nav(app, "campaigns.assets_index", "Assets", "marketer")
    add_seeder(app, seed_campaigns)
    add_seeder(app, seed_demo_history)  # the reports' six weeks of history
    # Chosen by name wherever a campaign is picked (export filters, scoring rules).
    add_picker(app, Picker("campaign", "campaign",
                           *named(campaigns.models.Campaign, campaigns.models.Campaign.name)))
    # Landing-page views wait in Redis; this writes them as page_viewed events.
    add_periodic(app, "campaigns.jobs.flush_page_views",
                 int(app.config["PAGE_VIEW_FLUSH_INTERVAL"]), queue="tracking")
    # Each accepted (or released, or confirmed) submission: email its page's asset link. One
    # job per intake batch, on the mail queue: a worker takes enrollments (default) first.
    add_submission_listener(app, "campaigns.jobs.send_asset_emails", batch=True, queue="mail")
    # An asset email whose answer never came, settled by SendGrid's events: on the timeline.
    for purpose in ("asset", "asset-resend"):
        add_settled_listener(app, purpose, "campaigns.jobs.on_asset_email_settled")
    # `asset_link(asset_id)` in nurture email templates.
    app.extensions["nurture_asset_link"] = downloads.link_for_lead
    # The reports: campaign names, cost and dates; which campaign an embedded form credits.
    app.extensions["report_campaigns"] = reporting.campaign_infos
    app.extensions["report_credit"] = reporting.credit_factory
    from app.api.framework import register_resource
    from campaigns import rest_api

    register_resource(app, rest_api.blp)  # its /api/v1 resources
