"""The local outbox in the admin: what would have been sent, exactly.

`/admin/outbox/<stem>` shows one message like a mail catcher does: the HTML part in a sandboxed
frame (served by `/<stem>/html` under its own Content-Security-Policy: no script, nothing
loaded from the network), the text part and every header. `/<stem>.eml` downloads the file.
"""

from __future__ import annotations

from flask import Blueprint, Response, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user

from app import mail, outbox
from app.auth.roles import marketer_required
from app.db import db
from app.mail.ledger import needing_attention, unique_key
from app.mail.local_outbox import LocalOutbox, StoredMessage

bp = Blueprint("mail", __name__, url_prefix="/admin/outbox")

# What each kind of email is, by the purpose its ledger key starts with.
PURPOSES = {"asset": "Asset link", "asset-resend": "Fresh asset link",
            "confirm": "Double opt-in confirmation", "alert": "Sales alert or digest",
            "test": "Test email", "step-test": "Sequence step test",
            "spam-notice": "Spam-rate notice", "password-reset": "Password reset link"}

# The HTML part runs in a sandbox (no scripts, no forms, an opaque origin) and loads nothing:
# a remote image would be the tracking pixel, and opening the outbox would count as an open.
HTML_PART_CSP = ("sandbox; default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
                 "frame-ancestors 'self'")


def _local() -> LocalOutbox | None:
    backend = mail.backend()
    return backend if isinstance(backend, LocalOutbox) else None


def _message(stem: str) -> StoredMessage:
    local = _local() or abort(404)
    return local.get(stem + ".eml") or abort(404)


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
    message = _message(name)
    parsed = message.parse()
    return render_template("mail/show.html", message=message, parsed=parsed,
                           headers=list(parsed.items()), html=message.body("html"),
                           text=message.body("plain"))


@bp.route("/<name>/html")
@marketer_required
def html(name: str):
    """The HTML part, for the sandboxed frame of the message page."""
    response = Response(_message(name).body("html"), mimetype="text/html")
    response.headers["Content-Security-Policy"] = HTML_PART_CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


@bp.route("/<name>.eml")
@marketer_required
def raw(name: str):
    message = _message(name)
    return Response(message.path.read_bytes(), mimetype="message/rfc822",
                    headers={"Content-Disposition": f'attachment; filename="{message.name}"',
                             "X-Content-Type-Options": "nosniff"})


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
