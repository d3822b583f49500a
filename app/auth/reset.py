"""Password reset by email.

`GET|POST /password-reset` asks for a link: the same answer whether or not the address has an
account, and the email is sent by a job (`app.auth.jobs.send_password_reset`, through
`app.mail.deliver`), so the request never waits on Redis or the provider. The link
`/password-reset/<token>` is signed (its own salt), expires (`PASSWORD_RESET_MAX_AGE`) and works
once: the token carries a fingerprint of the password hash it was made for, which the new
password changes. GET shows the form (a mail scanner's fetch changes nothing); POST acts.
"""

from __future__ import annotations

import hashlib

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from app import outbox
from app.auth.forms import NewPasswordForm, ResetRequestForm
from app.auth.models import User, find_user_by_email
from app.db import db
from app.extensions import limiter
from app.mail.ledger import unique_key

bp = Blueprint("password_reset", __name__)

SALT = "password-reset"
SENT = ("If an account uses that address, we have sent it a link to choose a new password. "
        "The link works for {minutes} minutes.")


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=SALT)


def _fingerprint(user: User) -> str:
    return hashlib.sha256(user.password_hash.encode("utf-8")).hexdigest()[:16]


def make_token(user: User) -> str:
    return _serializer().dumps({"u": user.id, "p": _fingerprint(user)})


def read_token(token: str) -> tuple[str, User | None]:
    """("ok", user), or why not: "invalid" (forged, another purpose), "expired", "used"."""
    try:
        data = _serializer().loads(token, max_age=current_app.config["PASSWORD_RESET_MAX_AGE"])
    except SignatureExpired:
        return "expired", None
    except BadSignature:
        return "invalid", None
    if not isinstance(data, dict) or not isinstance(data.get("u"), int):
        return "invalid", None
    user = db.session.get(User, data["u"])
    if user is None or not user.active:
        return "invalid", None
    if data.get("p") != _fingerprint(user):
        return "used", None
    return "ok", user


def _minutes() -> int:
    return int(current_app.config["PASSWORD_RESET_MAX_AGE"]) // 60


def _account_key() -> str:
    return "password-reset:" + (request.form.get("email") or "").strip().lower()[:320]


@bp.route("/password-reset", methods=["GET", "POST"])
@limiter.limit(lambda: current_app.config["PASSWORD_RESET_RATE_LIMIT"], methods=["POST"])
@limiter.limit(lambda: current_app.config["PASSWORD_RESET_RATE_LIMIT"], methods=["POST"],
               key_func=_account_key)
def request_link():
    form = ResetRequestForm()
    if form.validate_on_submit():
        user = find_user_by_email(form.email.data or "")
        if user is not None and user.active:
            outbox.add("app.auth.jobs.send_password_reset", user.id,
                       unique_key("password-reset"), queue_name="mail")
            db.session.commit()
        flash(SENT.format(minutes=_minutes()), "info")
        return redirect(url_for("auth.login"), code=303)
    status = 400 if request.method == "POST" else 200
    return render_template("auth/reset_request.html", form=form), status


@bp.route("/password-reset/<token>", methods=["GET", "POST"])
def choose_password(token: str):
    verdict, user = read_token(token)
    if verdict == "invalid":
        abort(404)
    if user is None:
        response = current_app.make_response(
            (render_template("auth/reset_gone.html", verdict=verdict), 410))
    else:
        form = NewPasswordForm()
        if form.validate_on_submit():
            user.set_password(form.password.data or "")  # the token is now used; sessions end
            db.session.commit()
            flash("Your password is changed. Sign in with the new one.", "info")
            return redirect(url_for("auth.login"), code=303)
        status = 400 if request.method == "POST" else 200
        response = current_app.make_response(
            (render_template("auth/reset_form.html", form=form, user=user), status))
    response.headers["Referrer-Policy"] = "no-referrer"  # the token is in this page's address
    return response
