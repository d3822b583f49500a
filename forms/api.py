"""The JSON API behind embedded forms: the definition, and submissions from other sites.

    GET  /api/forms/<key>              the fields, labels, consent text and a signed form token
    POST /api/forms/<key>/submissions  JSON or form-encoded; 202 {id} / 422 / 429 / 404 / 403

Why no CSRF token here: these routes are called from pages on other sites, where our session
cookie does not exist (and the script never sends credentials), so there is no ambient authority
for a cross-site request to abuse; a CSRF token would protect nothing. What they get instead:

- a form token signed with its own salt (`kindling.embed`) carrying the form id and the time it
  was handed out. It proves the poster fetched this form's definition first and doubles as the
  minimum-time check. A missing, forged, foreign or stale token is *quarantined* like any other
  suspect (202, no lead, kept for review) rather than refused, so bots learn nothing;
- an `Origin` check: a browser request from a site not in the form's `allowed_origins` is
  refused (403), and CORS headers name only allowed origins (never `*`, always `Vary: Origin`).
  Non-browser clients send no Origin; they meet the token, the honeypot and the rate limit.

The trade-off: anyone can post to a public form with a fresh token, exactly as anyone can fill
it in by hand. That is the nature of a public form; quarantine and the per-IP rate limit
(`forms.hosted.submit_limit`) are the defence, not the token.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, abort, current_app, jsonify, request, url_for
from werkzeug.datastructures import MultiDict
from werkzeug.exceptions import HTTPException

from app.extensions import csrf
from forms import formcopy, intake, pipeline, spam
from forms import origin as cross_site
from forms.builder import CONSENT, EMBED_TOKEN, HONEYPOT, TIMESTAMP, bind
from forms.hosted import client_ip, submit_limit
from forms.models import FieldType, Form

MAX_BODY = 64 * 1024  # bytes: no real form is bigger
PREFLIGHT_MAX_AGE = 600

bp = Blueprint("forms_api", __name__, url_prefix="/api/forms")
csrf.exempt(bp)


def allowed_origins(form: Form) -> set[str]:
    """Origins that may call this form's API: the form's list and our own site."""
    own = current_app.config["BASE_URL"]
    return {cross_site.normalise(o) for o in [*(form.allowed_origins or []), own] if o}


def _form_or_404(key: str) -> Form:
    """This process's copy of the form (`forms.formcopy`): an outage does not take the
    embedded form off the partner's page, nor its submits (they go to the spill journal)."""
    form = formcopy.form_by_key(key)
    if form is None:
        abort(404)
    return form


def _check_origin(form: Form) -> str | None:
    """The request's Origin when allowed, None when absent; 403 when present and not allowed."""
    origin = request.headers.get("Origin")
    if origin is None:
        return None
    if cross_site.normalise(origin) not in allowed_origins(form):
        abort(403)
    return origin


def _cors(response: Response, origin: str | None) -> Response:
    response.vary.add("Origin")
    if origin:
        response.headers["Access-Control-Allow-Origin"] = origin
    return response


def _preflight(origin: str | None) -> Response:
    response = Response(status=204)
    response.headers["Access-Control-Allow-Methods"] = "GET, POST, OPTIONS"
    response.headers["Access-Control-Allow-Headers"] = "Content-Type"
    response.headers["Access-Control-Max-Age"] = str(PREFLIGHT_MAX_AGE)
    return _cors(response, origin)


ERRORS = {400: "The request could not be understood.", 403: "This site may not use this form.",
          404: "There is no such form.", 405: "Method not allowed.",
          413: "What you sent is larger than we accept.",
          429: "Too many submissions. Please wait a minute and try again."}


def _json_error(exc: HTTPException):
    """RFC 9457 problems for the script (the app's handlers by status code would answer HTML),
    with the message also as `error`, which embed.js shows."""
    from app.errors import SLUGS
    from app.problems import problem

    status = exc.code or 500
    message = ERRORS.get(status, exc.description or "")
    response = problem(status, SLUGS.get(status, "error"), exc.name, message, error=message)
    return _cors(response, _allowed_origin_quietly())


for _code in ERRORS:
    bp.register_error_handler(_code, _json_error)


def _allowed_origin_quietly() -> str | None:
    """For error responses: the Origin when this form allows it, so the script can read them.
    While the database refuses, from this process's copy of the form, if it has one."""
    origin = request.headers.get("Origin")
    key = (request.view_args or {}).get("key")
    if not origin or not key:
        return None
    try:
        form = formcopy.form_by_key(key)
    except intake.REFUSED:
        return None
    return origin if form and cross_site.normalise(origin) in allowed_origins(form) else None


def _field_json(field: Any, spec: Any) -> dict[str, Any]:
    item = {"name": spec.name, "label": spec.label, "type": spec.type,
            "help_text": spec.help_text, "required": bool(field.flags.required),
            "max_length": 320 if spec.type == FieldType.EMAIL.value else spec.max_length}
    if spec.type in (FieldType.SELECT.value, FieldType.COUNTRY.value):
        item["choices"] = [{"value": c.value, "label": c.label} for c in field.choices]
    autocomplete = (field.render_kw or {}).get("autocomplete")
    if autocomplete:
        item["autocomplete"] = autocomplete
    return item


@bp.route("/<key>", methods=["GET", "OPTIONS"])
def definition(key: str):
    form = _form_or_404(key)
    origin = _check_origin(form)
    if request.method == "OPTIONS":
        return _preflight(origin)
    instance = bind(form, {})
    body = {
        "key": form.key,
        "fields": [_field_json(instance[spec.name], spec) for spec in form.fields],
        "consent": ({"text": form.consent_text, "version": form.consent_version,
                     "required": form.consent_required, "name": CONSENT}
                    if form.consent_enabled else None),
        # Consent per purpose: one checkbox each, posted as its `name` (true when ticked).
        "consents": _consents_json(form, instance),
        "submit_label": form.submit_label,
        "token": spam.embed_token(form),
        "token_field": EMBED_TOKEN,
        "honeypot": HONEYPOT,
        "action": url_for("forms_api.submit", key=form.key, _external=False),
    }
    response = jsonify(body)
    response.headers["Cache-Control"] = "no-store"  # the token carries the render time
    return _cors(response, origin)


def _consents_json(form: Form, instance: Any) -> list[dict[str, Any]]:
    """The consent checkboxes the built class has: name, purpose key, text, version, required."""
    asked = {c.purpose_id: c for c in form.consents}
    items = []
    for name, purpose_id, text_id in instance.consent_purposes:
        consent = asked.get(purpose_id)
        text = next((t for t in consent.purpose.texts if t.id == text_id), None) \
            if consent else None
        if consent is None or text is None:
            continue
        items.append({"name": name, "purpose": consent.purpose.key, "text": text.text,
                      "version": text.version, "required": consent.required})
    return items


def _posted() -> MultiDict:
    """JSON or form-encoded body as a MultiDict of strings (checkboxes: true → "y")."""
    if request.content_length is not None and request.content_length > MAX_BODY:
        abort(413)
    if request.is_json:
        payload = request.get_json(silent=True)
        if not isinstance(payload, dict):
            abort(400)
        items: list[tuple[str, str]] = []
        for name, value in payload.items():
            for one in value if isinstance(value, list) else [value]:
                if one is None or one is False:
                    continue
                items.append((str(name), "y" if one is True else str(one)))
        return MultiDict(items)
    return MultiDict(request.form)


@bp.route("/<key>/submissions", methods=["POST", "OPTIONS"])
@submit_limit()
def submit(key: str):
    form = _form_or_404(key)
    origin = _check_origin(form)
    if request.method == "OPTIONS":
        return _preflight(origin)
    if cross_site.refusal(form.allowed_origins or []):  # e.g. Sec-Fetch-Site without Origin
        abort(403)
    posted = _posted()
    instance = bind(form, posted)
    if not instance.validate():
        errors = {name: list(messages) for name, messages in instance.errors.items()}
        return _cors(_json({"errors": errors}, 422), origin)
    data = dict(instance.data)
    data[TIMESTAMP] = posted.get(EMBED_TOKEN, "")
    reason = spam.suspicion(form, data, spam.email_domain(str(data.get("email") or "")),
                            salt=spam.EMBED_SALT)
    ctx = pipeline.Context(ip=client_ip(), user_agent=request.headers.get("User-Agent", ""),
                           channel="embed")
    # Read before the intake row's commit expires the form: no read after it (the database
    # may be gone by then, and the submit is already taken).
    pending, success_message = form.double_opt_in, form.success_message
    receipt = intake.receive(form, data, posted.to_dict(flat=True), ctx, reason)
    # A quarantined post answers exactly like a real one would: bots learn nothing.
    body = {"id": receipt.intake_id,
            "status": "pending_confirmation" if pending else "accepted",
            "message": ("Thank you! Please check your inbox and confirm your email address."
                        if pending else success_message)}
    # 202: received; the lead is made by the intake processor a moment later.
    return _cors(_json(body, 202), origin)


def _json(body: dict[str, Any], status: int) -> Response:
    response = jsonify(body)
    response.status_code = status
    return response
