"""`GET /f/<key>/embed.js`: the script a marketer pastes on another site.

It renders the form into `div[data-kindling-form="<key>"]` from the JSON API's definition and
posts to the API (see `forms.api` for why that path needs no CSRF cookie). Cacheable: the script
only names the key and our address; the token comes fresh from the API on every page view.
"""

from __future__ import annotations

import sqlalchemy as sa
from flask import Blueprint, abort, current_app, make_response, render_template, request

from app.db import db
from forms.models import Form

CACHE_SECONDS = 300

bp = Blueprint("forms_embed", __name__, template_folder="templates")


@bp.route("/f/<key>/embed.js")
def script(key: str):
    form = db.session.scalar(sa.select(Form).where(Form.key == key))
    if form is None:
        abort(404)
    base = current_app.config["BASE_URL"]
    body = render_template("forms/embed.js", key=form.key, base=base,
                           api=f"{base}/api/forms/{form.key}")
    response = make_response(body)
    response.mimetype = "text/javascript"
    response.headers["Cache-Control"] = f"public, max-age={CACHE_SECONDS}"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.add_etag()
    return response.make_conditional(request)
