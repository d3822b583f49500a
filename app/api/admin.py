"""The API tokens page (`/admin/api-tokens`): make a token (shown once), see when each was
last used, revoke. Everyone on the staff manages their own tokens; admins see and revoke all."""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import SelectChoice, SelectField, StringField
from wtforms.validators import DataRequired, Length

from app.api import tokens
from app.api.models import ApiToken
from app.auth.models import Role
from app.auth.roles import staff_required
from app.db import db

bp = Blueprint("api_admin", __name__, url_prefix="/admin/api-tokens")


class TokenForm(FlaskForm):
    name = StringField("Name", validators=[DataRequired(), Length(max=100)],
                       description="What will use it, e.g. “Warehouse sync”.")
    scope = SelectField("Scope", choices=[
        SelectChoice("read", "Read: list and fetch"),
        SelectChoice("write", "Write: also create, update, change stages, send events")])


def _visible() -> list[ApiToken]:
    return tokens.tokens_of(None if current_user.has_role(Role.ADMIN) else current_user)


@bp.route("/", methods=["GET", "POST"])
@staff_required
def index():
    form = TokenForm()
    if form.validate_on_submit():
        try:
            row, token = tokens.issue(current_user, form.name.data or "", form.scope.data)
        except tokens.TokenError as exc:
            form.name.errors = [str(exc)]
        else:
            db.session.commit()
            # Rendered, not flashed: the token must not travel in the session cookie.
            return render_template("api/tokens.html", form=TokenForm(formdata=None),
                                   rows=_visible(), new_token=token, new_row=row)
    status = 400 if request.method == "POST" else 200
    return render_template("api/tokens.html", form=form, rows=_visible(), new_token=None,
                           new_row=None), status


@bp.route("/<int:token_id>/revoke", methods=["POST"])
@staff_required
def revoke(token_id: int):
    row = db.session.get(ApiToken, token_id) or abort(404)
    if row.user_id != current_user.id and not current_user.has_role(Role.ADMIN):
        abort(403)
    if tokens.revoke(row):
        db.session.commit()
        flash(f"Token “{row.name}” revoked: it no longer works.", "info")
    return redirect(url_for("api_admin.index"))
