"""Accept or reject a handoff right on the lead page (sales), besides the alert's links.

The same decision as the links (`handoff.decide_assignment`): the owner (or anyone, when the
workspace allows it) accepts (→ SQL, owned by them) or rejects with a reason (→ recycled or
disqualified). POST only; the panel shows the buttons while the lead waits as an MQL.
"""

from __future__ import annotations

from flask import abort, flash, redirect, url_for
from flask_login import current_user

from app.auth.models import User
from app.auth.roles import sales_required
from app.db import db
from app.leads.models import Lead, Stage
from app.sales.forms import AcceptForm, RejectForm
from app.sales.handoff import DecisionRefused, current_assignment, decide_assignment, may_decide
from app.sales.models import Assignment, SalesSettings
from app.sales.web import bp

WORDS = {"accepted": "Accepted", "recycled": "Rejected (recycled)",
         "disqualified": "Rejected (disqualified)"}


def open_assignment(lead: Lead) -> Assignment | None:
    """The handoff still waiting for an answer, if the lead is an MQL with one."""
    assignment = current_assignment(lead)
    if assignment is None or assignment.outcome is not None or lead.stage != Stage.MQL.value:
        return None
    return assignment


def keep_decision_to_owner(lead: Lead, user: User, target: Stage) -> str | None:
    """A stage move guard (`app.leads.lifecycle.add_move_guard`): a sales user who may not
    accept or reject the lead's waiting handoff may not move it out of MQL another way
    (the lead page's or the list's "Change stage"). Marketers and admins may."""
    if user.has_role("marketer"):
        return None
    assignment = open_assignment(lead)
    if assignment is None or may_decide(user, assignment, SalesSettings.load()):
        return None
    owner = assignment.user.email if assignment.user else "the team"
    return (f"This lead waits for {owner}'s answer: only its owner may accept or reject it "
            "(the sales settings say so).")


def decision_forms(lead: Lead) -> dict | None:
    """What the lead page's handoff panel needs to offer a decision, or None."""
    assignment = open_assignment(lead)
    if assignment is None or not current_user.has_role("sales"):
        return None
    return {"assignment": assignment, "accept_form": AcceptForm(formdata=None),
            "reject_form": RejectForm(formdata=None, prefix="reject"),
            "may": may_decide(current_user, assignment, SalesSettings.load())}


@bp.route("/leads/<int:lead_id>/<verb>", methods=["POST"])
@sales_required
def decide_on_page(lead_id: int, verb: str):
    lead = db.session.get(Lead, lead_id) or abort(404)
    if verb not in ("accept", "reject"):
        abort(404)
    back = url_for("leads.show", lead_id=lead.id, _anchor="handoff-h")
    assignment = open_assignment(lead)
    if assignment is None:
        flash(f"Nothing to decide: this lead is {lead.stage_label} and not waiting for sales.",
              "error")
        return redirect(back)
    form = AcceptForm() if verb == "accept" else RejectForm(prefix="reject")
    if not form.validate_on_submit():
        flash("Not rejected: choose what happens to the lead and give a reason.", "error")
        return redirect(back)
    outcome = "accepted" if verb == "accept" else form.outcome.data
    reason = (form.reason.data or "").strip() if verb == "reject" else ""
    try:
        did = decide_assignment(assignment, current_user, outcome, reason)
    except DecisionRefused:
        owner = assignment.user.email if assignment.user else "the team"
        flash(f"This lead belongs to {owner}; only its owner may decide. Your attempt was "
              "logged.", "error")
        return redirect(back)
    db.session.refresh(lead)
    if did:
        flash(f"{WORDS[outcome]}: {lead.display_name} is now {lead.stage_label}.", "info")
    else:
        flash("Someone decided on this lead a moment before you.", "error")
    return redirect(back)
