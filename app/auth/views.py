"""Login, logout and user management."""

from __future__ import annotations

from urllib.parse import urlsplit

import sqlalchemy as sa
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
from flask_login import current_user, login_user, logout_user

from app.auth.forms import LoginForm, UserEditForm, UserForm
from app.auth.models import (
    Role,
    User,
    create_user,
    find_user_by_email,
    user_from_cookie_id,
)
from app.auth.roles import admin_required
from app.db import db, utcnow
from app.extensions import csrf, limiter, login_manager

bp = Blueprint("auth", __name__)


@login_manager.user_loader
def load_user(user_id: str) -> User | None:
    max_age = current_app.config["REMEMBER_COOKIE_DURATION"].total_seconds()
    return user_from_cookie_id(user_id, max_age)


def _safe_next(target: str | None) -> str:
    """Only same-site relative paths: never an open redirect."""
    if target:
        parts = urlsplit(target)
        if not parts.scheme and not parts.netloc and target.startswith("/") \
                and not target.startswith("//") and "\\" not in target:
            return target
    return url_for("admin.dashboard")


def _account_key() -> str:
    """The rate-limit key of the account a sign-in tries, wherever the attempt comes from."""
    return "login-account:" + (request.form.get("email") or "").strip().lower()[:320]


@bp.route("/login", methods=["GET", "POST"])
@csrf.exempt  # the form checks its own CSRF token, after the rate limit has counted the try
@limiter.limit(lambda: current_app.config["LOGIN_RATE_LIMIT"], methods=["POST"])
@limiter.limit(lambda: current_app.config["LOGIN_ACCOUNT_RATE_LIMIT"], methods=["POST"],
               key_func=_account_key)
def login():
    if current_user.is_authenticated:
        return redirect(url_for("admin.dashboard"))
    form = LoginForm()
    if form.validate_on_submit():
        user = find_user_by_email(form.email.data or "")
        if user is None or not user.active or not user.check_password(form.password.data or ""):
            flash("That email and password do not match an active account.", "error")
            return render_template("auth/login.html", form=form), 401
        user.last_login_at = utcnow()
        db.session.commit()
        user.start_sign_in()
        login_user(user, remember=form.remember.data)
        return redirect(_safe_next(request.args.get("next")))
    if form.csrf_token.errors:
        flash("This sign-in form expired. Please try again.", "error")
    status = 400 if request.method == "POST" else 200
    return render_template("auth/login.html", form=form), status


@bp.route("/logout", methods=["POST"])
def logout():
    if current_user.is_authenticated:
        current_user.revoke_sessions()  # every copy of its cookies, on every device
        db.session.commit()
    logout_user()
    flash("You are signed out.", "info")
    return redirect(url_for("auth.login"))


@bp.route("/admin/users", methods=["GET", "POST"])
@admin_required
def users():
    form = UserForm()
    if form.validate_on_submit():
        if find_user_by_email(form.email.data or ""):
            form.email.errors.append("A user with this email exists.")
        else:
            create_user(form.email.data or "", form.password.data or "", form.role.data,
                        name=form.name.data or "")
            db.session.commit()
            flash(f"User {form.email.data} created.", "info")
            return redirect(url_for("auth.users"))
    rows = db.session.scalars(sa.select(User).order_by(User.email)).all()
    return render_template("auth/users.html", users=rows, form=form)


def _edit_problems(user: User, form: UserEditForm) -> None:
    """Add the errors a valid-looking edit can still have to `form`."""
    email = (form.email.data or "").strip().lower()
    other = find_user_by_email(email)
    if other is not None and other.id != user.id:
        form.email.errors.append("A user with this email exists.")
    if user.id == current_user.id:
        if not form.active.data:
            form.active.errors.append("You cannot deactivate your own account.")
        if form.role.data != Role.ADMIN.value:
            form.role.errors.append("You cannot take the admin role from your own account.")


@bp.route("/admin/users/<int:user_id>", methods=["GET", "POST"])
@admin_required
def edit_user(user_id: int):
    user = db.session.get(User, user_id) or abort(404)
    form = UserEditForm(obj=user if request.method == "GET" else None)
    if request.method == "GET":
        form.password.data = ""
    if form.validate_on_submit():
        _edit_problems(user, form)
        if not any(f.errors for f in form):
            user.email = (form.email.data or "").strip().lower()
            user.name = (form.name.data or "").strip()
            user.role = Role(form.role.data).value
            if form.password.data:
                user.set_password(form.password.data)  # ends the user's sessions
            if user.active and not form.active.data:
                user.deactivate()
            elif form.active.data:
                user.active = True
            db.session.commit()
            flash(f"User {user.email} saved.", "info")
            return redirect(url_for("auth.users"))
    status = 400 if request.method == "POST" else 200
    return render_template("auth/user.html", user=user, form=form), status
