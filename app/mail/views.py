"""The local outbox in the admin: what would have been sent, exactly."""

from __future__ import annotations

from flask import Blueprint, Response, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user

from app import mail, outbox
from app.auth.roles import marketer_required
from app.db import db
from app.mail.ledger import needing_attention, unique_key
from app.mail.local_outbox import LocalOutbox

bp = Blueprint("mail", __name__, url_prefix="/admin/outbox")

# What each kind of email is, by the purpose its ledger key starts with.
PURPOSES = {"asset": "Asset link", "asset-resend": "Fresh asset link",
            "confirm": "Double opt-in confirmation", "alert": "Sales alert or digest",
            "test": "Test email", "step-test": "Sequence step test",
            "spam-notice": "Spam-rate notice"}


def _local() -> LocalOutbox | None:
    backend = mail.backend()
    return backend if isinstance(backend, LocalOutbox) else None


@bp.route("/")
@marketer_required
def index():
    local = _local()
    messages = local.messages()[:200] if local else []
    return render_template("mail/index.html", local=local, messages=messages,
                           backend=mail.backend(), attention=needing_attention(),
                           purposes=PURPOSES)


@bp.route("/<name>")
@marketer_required
def show(name: str):
    local = _local() or abort(404)
    message = local.get(name) or abort(404)
    return render_template("mail/show.html", message=message, parsed=message.parse())


@bp.route("/<name>/html")
@marketer_required
def html(name: str):
    """The HTML part, sandboxed: the browser runs no script and loads nothing from it."""
    local = _local() or abort(404)
    message = local.get(name) or abort(404)
    response = Response(message.body("html"), mimetype="text/html")
    response.headers["Content-Security-Policy"] = "sandbox; default-src 'none'; img-src data:; style-src 'unsafe-inline'"
    return response


@bp.route("/<name>.eml")
@marketer_required
def raw(name: str):
    local = _local() or abort(404)
    message = local.get(name + ".eml") or abort(404)
    return Response(message.path.read_bytes(), mimetype="message/rfc822",
                    headers={"Content-Disposition": f"attachment; filename={message.name}"})


@bp.route("/test", methods=["POST"])
@marketer_required
def send_test():
    """Queue a test email to the signed-in user: proves web → queue → worker → mail backend."""
    to = (request.form.get("to") or current_user.email).strip()
    if to.lower() != current_user.email and not current_user.has_role("admin"):
        flash("Test emails go to your own address; only admins can send one elsewhere.", "error")
        return redirect(url_for("mail.index"))
    outbox.add("app.mail.jobs.send_test_email", current_user.id, to, unique_key("test"),
               queue_name="mail")
    db.session.commit()
    flash(f"A test email to {to} is queued; the worker sends it within seconds.", "info")
    return redirect(url_for("mail.index"))
