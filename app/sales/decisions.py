"""Accept / reject pages behind the alert's signed links.

Mail scanners fetch every link, so GET only shows the lead and a button; POST acts, for a
signed-in sales user. The token names the alert and the lead, never an address.
"""

from __future__ import annotations

from flask import abort, render_template
from flask_login import current_user

from app.auth.roles import sales_required
from app.db import db
from app.leads.models import Stage
from app.sales import links
from app.sales.forms import AcceptForm, RejectForm
from app.sales.handoff import DecisionRefused, decide, may_decide
from app.sales.models import Alert, SalesSettings
from app.sales.web import bp

DONE_WORDS = {"accepted": "accepted", "recycled": "rejected (recycled)",
              "disqualified": "rejected (disqualified)", "closed": "closed"}


def _target(purpose: str, token: str) -> Alert:
    target = links.read_token(purpose, token)
    alert = db.session.get(Alert, target.alert_id) if target else None
    if target is None or alert is None or alert.lead_id != target.lead_id \
            or alert.assignment is None:
        abort(404)  # tampered, expired or unknown: the error page says the link is not valid
    return alert


def _page(purpose: str, token: str, form, outcome_of):
    alert = _target(purpose, token)
    assignment, lead = alert.assignment, alert.assignment.lead
    settings = SalesSettings.load()
    context = {"purpose": purpose, "alert": alert, "assignment": assignment, "lead": lead,
               "form": form, "words": DONE_WORDS}
    if assignment.outcome is not None:
        return render_template("sales/decide.html", state="done", **context)
    if lead.stage != Stage.MQL.value:
        return render_template("sales/decide.html", state="moved", **context)
    if not may_decide(current_user, assignment, settings):
        if form.is_submitted():
            try:
                decide(alert, current_user, outcome_of(form), "")
            except DecisionRefused:
                pass
        return render_template("sales/decide.html", state="not_owner",
                               attempted=form.is_submitted(), **context), 403
    if form.validate_on_submit():
        outcome = outcome_of(form)
        reason = (getattr(form, "reason", None) and form.reason.data or "").strip()
        try:
            did = decide(alert, current_user, outcome, reason)
        except DecisionRefused:
            return render_template("sales/decide.html", state="not_owner", attempted=True,
                                   **context), 403
        db.session.refresh(assignment)
        return render_template("sales/decide.html", state="decided" if did else "done",
                               **context)
    status = 400 if form.is_submitted() else 200
    return render_template("sales/decide.html", state="ask", **context), status


@bp.route("/a/<token>", methods=["GET", "POST"])
@sales_required
def accept(token: str):
    return _page("accept", token, AcceptForm(), lambda form: "accepted")


@bp.route("/r/<token>", methods=["GET", "POST"])
@sales_required
def reject(token: str):
    return _page("reject", token, RejectForm(), _rejection)


def _rejection(form: RejectForm) -> str:
    """The outcome chosen, when it is one of the form's (a refused non-owner's attempt is
    logged before any validation: never with what was typed in its place)."""
    chosen = form.outcome.data
    return chosen if chosen in {c.value for c in form.outcome.choices} else "rejected"
