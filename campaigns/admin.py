"""Marketer screens: campaigns (with leads and cost per lead), landing pages, assets."""

from __future__ import annotations

from decimal import Decimal

import sqlalchemy as sa
from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user
from wtforms import SelectChoice

from app.auth.models import Role, User
from app.auth.roles import marketer_required
from app.db import db
from campaigns import assets
from campaigns.admin_forms import AssetForm, CampaignForm, LandingPageForm, free_slug
from campaigns.models import Asset, Campaign, LandingPage
from campaigns.stats import campaign_rows
from forms.models import Form

bp = Blueprint("campaigns", __name__, url_prefix="/admin/campaigns", template_folder="templates")

UPLOAD_OVERHEAD = 1024 * 1024  # form fields and multipart framing around the file


def upload_limit() -> int:
    """The asset upload's request size limit (app.body_limits raises it for that page)."""
    return assets.max_bytes() + UPLOAD_OVERHEAD


def _taken(model, slug: str, own_id: int | None) -> bool:
    query = sa.select(model.id).where(model.slug == slug)
    if own_id is not None:
        query = query.where(model.id != own_id)
    return db.session.scalar(query) is not None


def _saved(slug_field, taken_message: str) -> bool:
    """Commit; a slug taken by a concurrent save becomes a field error instead of a 500."""
    try:
        db.session.commit()
    except sa.exc.IntegrityError:
        db.session.rollback()
        slug_field.errors.append(taken_message)
        return False
    return True


# Campaigns ----------------------------------------------------------------------------------

@bp.route("/")
@marketer_required
def index():
    return render_template("campaigns/admin/index.html", rows=campaign_rows())


@bp.route("/new", methods=["GET", "POST"])
@bp.route("/<int:campaign_id>", methods=["GET", "POST"])
@marketer_required
def edit(campaign_id: int | None = None):
    campaign = db.session.get(Campaign, campaign_id) if campaign_id else None
    if campaign_id and campaign is None:
        abort(404)
    form = CampaignForm(obj=campaign, taken_slug=lambda s: _taken(Campaign, s, campaign_id))
    owners = db.session.scalars(
        sa.select(User).where(User.role.in_([Role.MARKETER.value, Role.ADMIN.value]))
        .order_by(User.email)).all()
    form.owner_id.choices = [SelectChoice(0, "Nobody")] + [SelectChoice(u.id, u.email)
                                                           for u in owners]
    if request.method == "GET":
        form.owner_id.data = (campaign.owner_id or 0) if campaign else current_user.id
    if campaign is None:  # the slug follows the name as it is typed (static/admin.js)
        form.slug.render_kw = {"data-slug-from": form.name.id}
    if form.validate_on_submit():
        if campaign is None:
            campaign = Campaign()
            db.session.add(campaign)
        for name in ("name", "slug", "status", "channel", "utm_source", "utm_medium",
                     "utm_campaign", "currency", "timezone"):
            setattr(campaign, name, getattr(form, name).data or "")
        campaign.starts_on = form.starts_on.data
        campaign.ends_on = form.ends_on.data
        campaign.cost = form.cost.data if form.cost.data is not None else Decimal(0)
        campaign.owner_id = form.owner_id.data or None
        if _saved(form.slug, "Another campaign already uses this slug."):
            flash(f"Campaign “{campaign.name}” saved.", "info")
            return redirect(url_for(".edit", campaign_id=campaign.id))
        campaign = db.session.get(Campaign, campaign_id) if campaign_id else None
    status = 422 if form.errors else 200
    return render_template("campaigns/admin/edit.html", form=form, campaign=campaign), status


# Landing pages ------------------------------------------------------------------------------

@bp.route("/<int:campaign_id>/pages/new", methods=["GET", "POST"])
@bp.route("/pages/<int:page_id>", methods=["GET", "POST"])
@marketer_required
def page(campaign_id: int | None = None, page_id: int | None = None):
    landing = db.session.get(LandingPage, page_id) if page_id else None
    if page_id and landing is None:
        abort(404)
    campaign = landing.campaign if landing else db.session.get(Campaign, campaign_id)
    if campaign is None:
        abort(404)
    form = LandingPageForm(obj=landing, taken_slug=lambda s: _taken(LandingPage, s, page_id))
    forms = db.session.scalars(sa.select(Form).order_by(Form.name)).all()
    asset_list = db.session.scalars(sa.select(Asset).order_by(Asset.name)).all()
    form.form_id.choices = [SelectChoice(0, "No form")] + [SelectChoice(f.id, f.name)
                                                           for f in forms]
    form.asset_id.choices = [SelectChoice(0, "No asset")] + [SelectChoice(a.id, a.name)
                                                             for a in asset_list]
    if request.method == "GET" and landing is not None:
        form.form_id.data = landing.form_id or 0
        form.asset_id.data = landing.asset_id or 0
    if landing is None:
        # A free address to start from (the campaign's, or the next free "-2" …); it follows
        # the headline as it is typed, until the marketer edits it (static/admin.js).
        form.slug.render_kw = {"data-slug-from": form.headline.id, "data-slug-auto": "true"}
        if request.method == "GET":
            form.slug.data = free_slug(campaign.slug, lambda s: _taken(LandingPage, s, None))
    if form.validate_on_submit():
        if landing is None:
            landing = LandingPage(campaign=campaign)
            db.session.add(landing)
        for name in ("slug", "headline", "thank_you_headline"):
            setattr(landing, name, getattr(form, name).data)
        landing.body_markdown = form.body_markdown.data or ""
        landing.thank_you_markdown = form.thank_you_markdown.data or ""
        landing.form_id = form.form_id.data or None
        landing.asset_id = form.asset_id.data or None
        if _saved(form.slug, "Another landing page already uses this address."):
            flash("Landing page saved.", "info")
            return redirect(url_for(".page", page_id=landing.id))
        landing = db.session.get(LandingPage, page_id) if page_id else None
    status = 422 if form.errors else 200
    return render_template("campaigns/admin/page.html", form=form, campaign=campaign,
                           landing=landing), status


# Assets -------------------------------------------------------------------------------------

@bp.route("/assets", methods=["GET", "POST"])
@marketer_required
def assets_index():
    form = AssetForm()
    upload_error = None
    if form.validate_on_submit():
        asset = Asset(name=form.name.data.strip(), link_ttl_hours=form.link_ttl_hours.data)
        upload = form.file.data
        try:
            if upload and upload.filename:
                for key, value in assets.store_upload(upload.stream, upload.filename).items():
                    setattr(asset, key, value)
            else:
                asset.external_url = form.external_url.data.strip()
        except assets.UploadRejected as exc:
            upload_error = str(exc)
            form.file.errors.append(upload_error)
        else:
            db.session.add(asset)
            db.session.commit()
            flash(f"Asset “{asset.name}” added.", "info")
            return redirect(url_for(".assets_index"))
    asset_list = db.session.scalars(sa.select(Asset).order_by(Asset.created_at.desc())).all()
    status = 422 if (form.errors or upload_error) else 200
    return render_template("campaigns/admin/assets.html", form=form, assets=asset_list,
                           max_mb=current_app.config["ASSET_MAX_BYTES"] / 1024 / 1024), status
