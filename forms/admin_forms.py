"""The WTForms classes of the marketer's builder screens (not to be confused with lead forms)."""

from __future__ import annotations

import re
from typing import Any

from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    IntegerField,
    SelectChoice,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.validators import DataRequired, Length, NumberRange, Optional, ValidationError

from forms.builder import name_problem
from forms.models import FieldType

TYPE_LABELS = {
    FieldType.TEXT: "Text", FieldType.TEXTAREA: "Paragraph", FieldType.SELECT: "Drop-down",
    FieldType.CHECKBOX: "Checkbox", FieldType.PHONE: "Phone", FieldType.COUNTRY: "Country",
    FieldType.HIDDEN: "Hidden (from the page's query string)",
}
_ORIGIN = re.compile(r"https?://[a-z0-9.-]+(:[0-9]{1,5})?")
_DOMAIN = re.compile(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+")


def lines(text: str | None) -> list[str]:
    """Non-empty, trimmed lines, duplicates dropped, order kept."""
    seen: dict[str, None] = {}
    for line in (text or "").splitlines():
        if line.strip():
            seen.setdefault(line.strip(), None)
    return list(seen)


def origins_of(text: str | None) -> list[str]:
    return [line.rstrip("/").lower() for line in lines(text)]


def domains_of(text: str | None) -> list[str]:
    return [line.lower().lstrip("@") for line in lines(text)]


class NewFormForm(FlaskForm):
    name = StringField("Form name", validators=[DataRequired(message="Give the form a name."),
                                                Length(max=200)])


class SettingsForm(FlaskForm):
    name = StringField("Form name", validators=[DataRequired(message="Give the form a name."),
                                                Length(max=200)])
    submit_label = StringField("Button text", validators=[DataRequired(), Length(max=100)])
    success_message = TextAreaField("Success message", validators=[DataRequired(),
                                                                   Length(max=2000)])
    consent_enabled = BooleanField("Ask for consent")
    consent_required = BooleanField("Consent is required to submit")
    consent_text = TextAreaField("Consent text", validators=[Length(max=2000)],
                                 description="Stored word for word with every submission.")
    consent_version = StringField("Consent version", validators=[Length(max=40)],
                                  description="Change it whenever you change the text.")
    double_opt_in = BooleanField("Double opt-in (email a confirmation link)")
    confirmation_expiry_hours = IntegerField(
        "Confirmation link expires after (hours)",
        validators=[DataRequired(), NumberRange(min=1, max=720)])
    min_submit_seconds = IntegerField(
        "Minimum seconds before a submit counts as human",
        validators=[Optional(), NumberRange(min=0, max=60)])
    blocked_domains = TextAreaField("Blocked email domains", validators=[Length(max=5000)],
                                    description="One per line, e.g. mailinator.com.")
    allowed_origins = TextAreaField("Sites allowed to embed this form",
                                    validators=[Length(max=5000)],
                                    description="One origin per line, e.g. https://www.acme.com")

    def validate_consent_text(self, field: Any) -> None:
        if self.consent_enabled.data and not (field.data or "").strip():
            raise ValidationError("Write the consent text people agree to.")

    def validate_consent_version(self, field: Any) -> None:
        if self.consent_enabled.data and not (field.data or "").strip():
            raise ValidationError("Give the consent text a version.")

    def validate_allowed_origins(self, field: Any) -> None:
        bad = [o for o in origins_of(field.data) if not _ORIGIN.fullmatch(o)]
        if bad:
            raise ValidationError(f"Not an origin (scheme://host[:port], no path): {bad[0]}")

    def validate_blocked_domains(self, field: Any) -> None:
        bad = [d for d in domains_of(field.data) if not _DOMAIN.fullmatch(d)]
        if bad:
            raise ValidationError(f"Not a domain: {bad[0]}")


class FieldBasicsForm(FlaskForm):
    """What may change on the email field: its wording."""

    label = StringField("Label", validators=[DataRequired(message="Give the field a label."),
                                             Length(max=200)])
    help_text = StringField("Help text", validators=[Length(max=500)])


class FieldForm(FieldBasicsForm):
    name = StringField("Name", validators=[DataRequired(message="Give the field a name.")],
                       description="Stored under this key: first_name, last_name, company, "
                                   "job_title, phone and country fill the lead's profile.")
    type = SelectField("Type", choices=[SelectChoice(t.value, label)
                                        for t, label in TYPE_LABELS.items()])
    required = BooleanField("Required")
    max_length = IntegerField("Maximum length", default=200,
                              validators=[DataRequired(), NumberRange(min=1, max=5000)])
    choices = TextAreaField("Choices (drop-down)", validators=[Length(max=5000)],
                            description="One per line.")

    def validate_name(self, field: Any) -> None:
        problem = name_problem(field.data or "")
        if problem:
            raise ValidationError(problem)

    def validate_choices(self, field: Any) -> None:
        if self.type.data == FieldType.SELECT.value and not lines(field.data):
            raise ValidationError("A drop-down needs at least one choice.")
        if any(len(choice) > 200 for choice in lines(field.data)):
            raise ValidationError("Keep each choice under 200 characters.")
