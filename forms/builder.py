"""Build a WTForms class from a marketer's form definition, cached until the definition changes."""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import pycountry
from flask_wtf import FlaskForm
from markupsafe import Markup
from werkzeug.datastructures import MultiDict
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
from wtforms.fields.choices import Choice
from wtforms.validators import (
    DataRequired,
    InputRequired,
    Length,
    Optional,
    Regexp,
    ValidationError,
)
from wtforms.widgets import Select, html_params

from app.leads.service import InvalidEmail, normalise_email
from forms.models import FieldType, Form, FormField

# Captured on every form, filled by the page (query string, referrer) rather than the visitor.
TRACKING_FIELDS = ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content",
                   "gclid", "referrer", "landing_url")
HONEYPOT = "website"  # a field no human sees; bots fill it
TIMESTAMP = "ts"  # signed render time: a submit faster than a person can type is a bot
CONSENT = "consent"
EMBED_TOKEN = "token"  # the JSON API's name for the signed form token
# The browser's IANA time zone (Intl.DateTimeFormat().resolvedOptions().timeZone), filled by the
# page's script: the lead's `timezone` attribute, which nurture send windows use.
TIME_ZONE = "tz"

# A field name becomes an HTML name, a WTForms attribute and a lead attribute key.
NAME_PATTERN = re.compile(r"[a-z][a-z0-9_]{0,59}")
RESERVED_NAMES = frozenset({"csrf_token", HONEYPOT, TIMESTAMP, CONSENT, EMBED_TOKEN, TIME_ZONE,
                            "field_order",
                            "query_fields", "consent_purposes",
                            "meta", "form_errors", "extra_validators",
                            *TRACKING_FIELDS})

_cache: dict[tuple[int, str, int], type[FlaskForm]] = {}
_lock = threading.Lock()


def name_problem(name: str) -> str | None:
    """Why `name` cannot be a field name, or None when it can."""
    if not NAME_PATTERN.fullmatch(name or ""):
        return ("Use 1 to 60 lower-case letters, digits or underscores, starting with a letter "
                "(for example job_title).")
    if name in RESERVED_NAMES or name.startswith(("utm_", "consent_")) or hasattr(FlaskForm, name):
        return f"“{name}” is reserved by Kindling; choose another name."
    return None


@lru_cache(maxsize=4096)
def normalised_email(raw: str) -> tuple[str, str]:
    """`normalise_email`, remembered: one submit asks about the same address several times
    (field validation, spam checks, the fingerprint). Invalid addresses raise every time."""
    return normalise_email(raw)


def valid_email(form: Any, field: Field) -> None:
    try:
        normalised_email(field.data or "")
    except InvalidEmail as exc:
        raise ValidationError(f"Enter a valid email address ({exc}).") from None


def countries() -> list[SelectChoice]:
    items = sorted(pycountry.countries, key=lambda c: c.name)
    return [SelectChoice("", "Choose a country")] + [SelectChoice(c.alpha_2, c.name) for c in items]


class CachedSelect(Select):
    """A `<select>` whose option markup is rendered once per field definition.

    The country list alone is ~250 options; rendering them (html_params and Markup per option)
    on every page view was half the landing page's time. Each option is rendered once, both
    unselected and selected, by WTForms' own `render_option` (so the markup is identical); a
    render then only picks the selected one. Anything unusual (option groups, a coerce other
    than `str`, choices changed since the first render) takes WTForms' normal path.
    """

    def __init__(self) -> None:
        super().__init__(multiple=False)
        self._source: list[Any] | None = None  # the SelectChoice objects the cache was built from
        self._shared: tuple[Any, ...] | None = None  # those choices, when they are a tuple
        self._plain: tuple[str, ...] = ()
        self._selected: tuple[str, ...] = ()
        self._index: dict[str, list[int]] = {}
        self._lock = threading.Lock()

    def _options(self, field: SelectField) -> bool:
        """Make sure the cache matches `field.choices`. False when it cannot serve this field."""
        choices = field.choices
        if choices is self._shared:  # the definition's own tuple (`ChoiceField`): cannot change
            return True
        if field.coerce is not str or not isinstance(choices, (list, tuple)):
            return False
        source = self._source
        if source is not None and len(source) == len(choices) and \
                all(a is b for a, b in zip(source, choices)):
            if isinstance(choices, tuple):
                self._shared = choices
            return True
        if any(not isinstance(c, SelectChoice) or c.optgroup is not None for c in choices):
            return False
        render = type(self)._dispatch_render_option()
        plain: list[Any] = []
        selected: list[Any] = []
        index: dict[str, list[int]] = {}
        for position, c in enumerate(choices):
            plain.append(str(render(Choice(c.value, c.label, False, c.render_kw))))
            selected.append(str(render(Choice(c.value, c.label, True, c.render_kw))))
            index.setdefault(str(c.value), []).append(position)
        with self._lock:
            self._plain, self._selected, self._index = tuple(plain), tuple(selected), index
            self._source = list(choices)
            self._shared = choices if isinstance(choices, tuple) else None
        return True

    def __call__(self, field: SelectField, **kwargs: Any) -> Markup:
        if not self._options(field):
            return super().__call__(field, **kwargs)
        with self._lock:
            plain, selected, index = self._plain, self._selected, self._index
        kwargs.setdefault("id", field.id)
        flags = getattr(field, "flags", {})
        for k in dir(flags):
            if k in self.validation_attrs and k not in kwargs:
                kwargs[k] = getattr(flags, k)
        options: list[str] | tuple[str, ...] = plain
        data = field.data
        if isinstance(data, str) and data in index:  # coerce is str: selected = str(value) == data
            options = list(plain)
            for position in index[data]:
                options[position] = selected[position]
        elif data is not None and not isinstance(data, str):
            return super().__call__(field, **kwargs)
        return Markup(f"<select {html_params(name=field.name, **kwargs)}>"
                      + "".join(options) + "</select>")


class ChoiceField(SelectField):
    """A SelectField whose choice check uses its CachedSelect's index of values instead of
    building a Choice per option (~250 for countries) on every submit. Same outcome and
    message as SelectField's check; anything the widget cannot serve takes SelectField's.

    Its choices are one tuple shared by every instance of the form class: SelectField would
    check and copy the ~250 countries for each instance (each submit), and the widget would
    compare them one by one with its cache; an immutable tuple is the same choices by
    identity. Setting `field.choices` on an instance works as for any SelectField."""

    def __init__(self, *args: Any, choices: Any = None, **kwargs: Any) -> None:
        if not isinstance(choices, tuple):
            super().__init__(*args, choices=choices, **kwargs)
            return
        super().__init__(*args, **kwargs)
        self.choices = choices  # as it is: no check, no copy

    def pre_validate(self, form: Any) -> None:
        widget = self.widget
        if (self.process_errors or not self.validate_choice or self.choices is None
                or not isinstance(widget, CachedSelect) or not widget._options(self)):
            return super().pre_validate(form)
        with widget._lock:
            known = self.data in widget._index if isinstance(self.data, str) else None
        if known is None:
            return super().pre_validate(form)
        if not known:
            raise ValidationError(self.invalid_choice_message or self.gettext("Not a valid choice."))


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
        choices = (SelectChoice("", "Choose…"), *[SelectChoice(c, c) for c in spec.choices])
        return ChoiceField(choices=choices, validators=required, validate_choice=True,
                           widget=CachedSelect(), **kwargs)
    if kind is FieldType.COUNTRY:
        return ChoiceField(choices=tuple(countries()), validators=required, widget=CachedSelect(),
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
    render_kw: dict[str, Any] = {"maxlength": spec.max_length}
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
    # One checkbox per consent purpose, labelled with the purpose's current text; the class
    # remembers which text version it showed, so the ledger records exactly that one.
    shown: list[tuple[str, int, int | None]] = []
    for consent in form.consents:
        text = consent.purpose.current_text
        if text is None:
            continue
        validators = [InputRequired(message="Please tick this box to continue.")] \
            if consent.required else []
        attrs[consent.field_name] = BooleanField(label=text.text, validators=validators)
        shown.append((consent.field_name, consent.purpose_id, text.id))
    attrs["consent_purposes"] = shown
    for name in TRACKING_FIELDS:
        attrs[name] = HiddenField(validators=[Length(max=2000)])
    attrs[HONEYPOT] = StringField("Leave this field empty",
                                  render_kw={"tabindex": "-1", "autocomplete": "off"})
    attrs[TIMESTAMP] = HiddenField()
    attrs[TIME_ZONE] = HiddenField()  # never an error: an unknown zone is dropped
    attrs["field_order"] = [spec.name for spec in form.fields]
    # Marketer-defined hidden fields (name, max length): filled from the query string on GET.
    attrs["query_fields"] = [(spec.name, spec.max_length) for spec in form.fields
                             if spec.type == FieldType.HIDDEN.value]
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
