"""Build a WTForms class from a marketer's form definition, cached until the definition changes."""

from __future__ import annotations

import re
import threading
from typing import Any, Mapping

import pycountry
from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    EmailField,
    Field,
    HiddenField,
    SelectChoice,
    SelectField,
    StringField,
    TelField,
    TextAreaField,
)
from werkzeug.datastructures import MultiDict
from wtforms.validators import DataRequired, InputRequired, Length, Optional, Regexp, ValidationError

from app.leads.service import InvalidEmail, normalise_email
from forms.models import FieldType, Form, FormField

# Captured on every form, filled by the page (query string, referrer) rather than the visitor.
TRACKING_FIELDS = ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content",
                   "gclid", "referrer", "landing_url")
HONEYPOT = "website"  # a field no human sees; bots fill it
TIMESTAMP = "ts"  # signed render time: a submit faster than a person can type is a bot
CONSENT = "consent"
EMBED_TOKEN = "token"  # the JSON API's name for the signed form token

# A field name becomes an HTML name, a WTForms attribute and a lead attribute key.
NAME_PATTERN = re.compile(r"[a-z][a-z0-9_]{0,59}")
RESERVED_NAMES = frozenset({"csrf_token", HONEYPOT, TIMESTAMP, CONSENT, EMBED_TOKEN, "field_order",
                            "meta", "form_errors", "extra_validators",
                            *TRACKING_FIELDS})

_cache: dict[tuple[int, str, int], type[FlaskForm]] = {}
_lock = threading.Lock()


def name_problem(name: str) -> str | None:
    """Why `name` cannot be a field name, or None when it can."""
    if not NAME_PATTERN.fullmatch(name or ""):
        return ("Use 1 to 60 lower-case letters, digits or underscores, starting with a letter "
                "(for example job_title).")
    if name in RESERVED_NAMES or name.startswith("utm_") or hasattr(FlaskForm, name):
        return f"“{name}” is reserved by Kindling; choose another name."
    return None


def valid_email(form: Any, field: Field) -> None:
    try:
        normalise_email(field.data or "")
    except InvalidEmail as exc:
        raise ValidationError(f"Enter a valid email address ({exc}).") from None


def countries() -> list[SelectChoice]:
    items = sorted(pycountry.countries, key=lambda c: c.name)
    return [SelectChoice("", "Choose a country")] + [SelectChoice(c.alpha_2, c.name) for c in items]


def _field(spec: FormField) -> Field:
    required = [DataRequired(message="This field is required.")] if spec.required else [Optional()]
    length = Length(max=spec.max_length,
                    message=f"Use at most {spec.max_length} characters.")
    kwargs: dict[str, Any] = {"label": spec.label, "description": spec.help_text}
    kind = FieldType(spec.type)
    if kind is FieldType.EMAIL:
        return EmailField(validators=[DataRequired(message="Enter your email address."),
                                      Length(max=320, message="That address is too long."),
                                      valid_email],
                          render_kw={"autocomplete": "email", "maxlength": 320}, **kwargs)
    if kind is FieldType.TEXTAREA:
        return TextAreaField(validators=required + [length],
                             render_kw={"maxlength": spec.max_length}, **kwargs)
    if kind is FieldType.SELECT:
        choices = [SelectChoice("", "Choose…")] + [SelectChoice(c, c) for c in spec.choices]
        return SelectField(choices=choices, validators=required, validate_choice=True, **kwargs)
    if kind is FieldType.COUNTRY:
        return SelectField(choices=countries(), validators=required,
                           render_kw={"autocomplete": "country"}, **kwargs)
    if kind is FieldType.CHECKBOX:
        validators = [InputRequired(message="Please tick this box.")] if spec.required else []
        return BooleanField(validators=validators, **kwargs)
    if kind is FieldType.PHONE:
        phone = Regexp(r"^[0-9+()./\s-]{5,30}$", message="Enter a phone number, digits only.")
        return TelField(validators=required + [length, phone],
                        render_kw={"autocomplete": "tel", "maxlength": spec.max_length}, **kwargs)
    if kind is FieldType.HIDDEN:
        return HiddenField(validators=[length], **kwargs)
    autocomplete = {"first_name": "given-name", "last_name": "family-name",
                    "company": "organization", "job_title": "organization-title"}
    render_kw = {"maxlength": spec.max_length}
    if spec.name in autocomplete:
        render_kw["autocomplete"] = autocomplete[spec.name]
    return StringField(validators=required + [length], render_kw=render_kw, **kwargs)


def _build(form: Form) -> type[FlaskForm]:
    attrs: dict[str, Any] = {}
    for spec in form.fields:
        attrs[spec.name] = _field(spec)
    if form.consent_enabled:
        validators = [InputRequired(message="Please give your consent to continue.")] \
            if form.consent_required else []
        attrs[CONSENT] = BooleanField(label=form.consent_text, validators=validators)
    for name in TRACKING_FIELDS:
        attrs[name] = HiddenField(validators=[Length(max=2000)])
    attrs[HONEYPOT] = StringField("Leave this field empty",
                                  render_kw={"tabindex": "-1", "autocomplete": "off"})
    attrs[TIMESTAMP] = HiddenField()
    attrs["field_order"] = [spec.name for spec in form.fields]
    return type(f"Form{form.id}v{form.version}", (FlaskForm,), attrs)


def bind(form: Form, data: Mapping[str, Any]) -> FlaskForm:
    """An instance fed from `data` rather than the request, without CSRF (API, release)."""
    formdata = data if isinstance(data, MultiDict) else MultiDict(data)
    return form_class(form)(formdata=formdata, meta={"csrf": False})


def form_class(form: Form) -> type[FlaskForm]:
    """The WTForms class for `form`'s current definition (built once per version)."""
    # The random key too: ids and versions repeat across databases (tests, several apps).
    key = (form.id, form.key, form.version)
    cls = _cache.get(key)
    if cls is None:
        with _lock:
            cls = _cache.get(key) or _build(form)
            # Drop older versions of the same form.
            for stale in [k for k in _cache if k[0] == form.id and k != key]:
                del _cache[stale]
            _cache[key] = cls
    return cls
