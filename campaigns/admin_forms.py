"""The marketer's forms: campaign, landing page, asset."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from decimal import Decimal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from wtforms import (
    DateField,
    DecimalField,
    IntegerField,
    SelectChoice,
    SelectField,
    StringField,
    TextAreaField,
    ValidationError,
)
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange, Optional, Regexp

from campaigns.assets import ALLOWED_LABEL, external_url_problem
from campaigns.models import CampaignStatus, Channel

SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,79}\Z")  # \Z: no trailing newline slips through
SLUG_HINT = "Lower-case letters, digits and hyphens, starting with a letter or digit (max 80)."
MAX_COST = Decimal("9999999999.99")


def slugify(text: str) -> str:
    """"Spring Launch – Café" → "spring-launch-cafe" (static/admin.js does the same as the
    marketer types the name)."""
    plain = unicodedata.normalize("NFKD", text or "").encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", plain.lower()).strip("-")[:80].rstrip("-")


def free_slug(wanted: str, taken: Callable[[str], bool]) -> str:
    """`wanted` made a slug, or, when something already uses it, the first free "-2", "-3" …"""
    base = slugify(wanted) or "page"
    if not taken(base):
        return base
    number = 2
    while True:
        suffix = f"-{number}"
        candidate = base[:80 - len(suffix)].rstrip("-") + suffix
        if not taken(candidate):
            return candidate
        number += 1


def _taken_message(thing: str, field, taken: Callable[[str], bool]) -> str:
    return (f"Another {thing} already uses this {('slug' if thing == 'campaign' else 'address')}"
            f". “{free_slug(field.data, taken)}” is free.")


def _strip(value):
    return value.strip() if isinstance(value, str) else value


def _slug_field(label: str) -> StringField:
    return StringField(label, description=SLUG_HINT, filters=[_strip], validators=[
        DataRequired(message="Enter a slug."),
        Regexp(SLUG, message=SLUG_HINT)])


class CampaignForm(FlaskForm):
    name = StringField("Name", validators=[DataRequired(message="Enter a name."), Length(max=200)],
                       filters=[_strip])
    slug = _slug_field("Slug")
    status = SelectField("Status", choices=[SelectChoice(s.value, s.value.capitalize())
                                            for s in CampaignStatus])
    channel = SelectField("Channel", choices=[SelectChoice(c.value, c.value.capitalize())
                                              for c in Channel])
    utm_source = StringField("Default utm_source", validators=[Length(max=100)],
                             filters=[_strip])
    utm_medium = StringField("Default utm_medium", validators=[Length(max=100)],
                             filters=[_strip])
    utm_campaign = StringField("Default utm_campaign", validators=[Length(max=100)],
                               filters=[_strip])
    cost = DecimalField("Cost", places=2, default=Decimal(0),
                        description="Total spend, for cost per lead. 0 when there is none.",
                        validators=[InputRequired(message="Enter a cost (0 when there is none)."),
                                    NumberRange(min=0, max=MAX_COST,
                                                message="Cost must be 0 or more.")])
    currency = StringField("Currency", default="USD", validators=[
        Regexp(r"^[A-Z]{3}$", message="Use a three-letter currency code, like USD.")])
    timezone = StringField(
        "Default time zone", validators=[Length(max=64)], filters=[_strip],
        description="For send windows, when a lead gave neither a time zone nor a country, "
                    "e.g. Europe/London. Empty: the sequence's time zone.")
    starts_on = DateField("Start date", validators=[Optional()])
    ends_on = DateField("End date", validators=[Optional()])
    owner_id = SelectField("Owner", coerce=int, choices=[])

    def validate_timezone(self, field) -> None:
        if not field.data:
            return
        try:
            ZoneInfo(field.data)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValidationError("Unknown time zone: use a name like Europe/London.") from None

    def __init__(self, *args, taken_slug=None, **kwargs):
        super().__init__(*args, **kwargs)
        self._taken_slug = taken_slug  # callable: slug -> bool (used by another campaign)

    def validate_slug(self, field):
        if self._taken_slug and self._taken_slug(field.data):
            raise ValidationError(_taken_message("campaign", field, self._taken_slug))

    def validate_ends_on(self, field):
        if field.data and self.starts_on.data and field.data < self.starts_on.data:
            raise ValidationError("The end date cannot be before the start date.")


class LandingPageForm(FlaskForm):
    slug = _slug_field("Address (/p/…)")
    headline = StringField("Headline", validators=[DataRequired(message="Enter a headline."),
                                                   Length(max=200)])
    body_markdown = TextAreaField("Body (Markdown)", render_kw={"rows": 12},
                                  validators=[Length(max=50_000)])
    form_id = SelectField("Form", coerce=int, choices=[])
    asset_id = SelectField("Gated asset", coerce=int, choices=[])
    thank_you_headline = StringField("Thank-you headline", default="Thank you!",
                                     validators=[DataRequired(message="Enter a headline."),
                                                 Length(max=200)])
    thank_you_markdown = TextAreaField("Thank-you text (Markdown)", render_kw={"rows": 5},
                                       validators=[Length(max=20_000)])

    def __init__(self, *args, taken_slug=None, **kwargs):
        super().__init__(*args, **kwargs)
        self._taken_slug = taken_slug

    def validate_slug(self, field):
        if self._taken_slug and self._taken_slug(field.data):
            raise ValidationError(_taken_message("landing page", field, self._taken_slug))


class AssetForm(FlaskForm):
    name = StringField("Name", validators=[DataRequired(message="Enter a name."), Length(max=200)])
    file = FileField("File", description=f"{ALLOWED_LABEL}.")
    external_url = StringField("…or an external link", validators=[Length(max=2000)],
                               description="https:// address of the asset, used instead of a file.")
    link_ttl_hours = IntegerField("Download links work for (hours)", default=72, validators=[
        InputRequired(message="Enter a number of hours."),
        NumberRange(min=1, max=24 * 365, message="Between 1 hour and a year.")])

    def validate_external_url(self, field):
        url = (field.data or "").strip()
        has_file = bool(self.file.data and getattr(self.file.data, "filename", ""))
        if has_file and url:
            raise ValidationError("Upload a file or give a link, not both.")
        if not has_file and not url:
            raise ValidationError("Upload a file or give a link.")
        if url:
            problem = external_url_problem(url)
            if problem:
                raise ValidationError(problem)
