"""Double opt-in: the signed link in the confirmation email, and the page it opens.

The token carries the submission id only (never the address), signed with its own salt and
valid for the form's `confirmation_expiry_hours`. GET shows a Confirm button and changes
nothing, because mail scanners fetch links; only the POST from that page confirms. Confirming
is what schedules the follow-up work (asset email, enrollment).
"""

from __future__ import annotations

import sqlalchemy as sa
from flask import Blueprint, current_app, render_template, request
from itsdangerous import BadSignature, URLSafeTimedSerializer

from app.db import db, rows_matched, utcnow
from app.leads.service import record_event
from forms import consents, pipeline
from forms.models import Submission, SubmissionStatus

SALT = "kindling.confirm"

bp = Blueprint("forms_confirm", __name__, template_folder="templates")


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=SALT)


def make_token(submission: Submission) -> str:
    return _serializer().dumps(submission.id)


def confirm_url(submission: Submission) -> str:
    return f"{current_app.config['BASE_URL']}/confirm/{make_token(submission)}"


class LinkProblem(Exception):
    def __init__(self, status: int, title: str, text: str):
        super().__init__(title)
        self.status, self.title, self.text = status, title, text


def _load(token: str) -> Submission:
    """The submission a valid, unexpired token names; LinkProblem otherwise."""
    try:
        submission_id, signed_at = _serializer().loads(token, return_timestamp=True)
    except BadSignature:
        raise LinkProblem(400, "This link is not valid",
                          "The confirmation link is incomplete or was changed. Please copy the "
                          "whole link from the email, or fill in the form again.") from None
    submission = db.session.get(Submission, submission_id) if isinstance(submission_id, int) \
        else None
    if submission is None:
        raise LinkProblem(404, "Nothing to confirm",
                          "We could not find this subscription. Please fill in the form again.")
    if submission.confirmed_at is not None:
        return submission
    hours = submission.form.confirmation_expiry_hours
    age = (utcnow() - signed_at).total_seconds()
    if submission.status == SubmissionStatus.EXPIRED.value or age > hours * 3600:
        raise LinkProblem(410, "This link has expired",
                          f"Confirmation links work for {hours} hours. Please fill in the form "
                          "again and we will send you a new one.")
    return submission


def confirm(submission: Submission) -> bool:
    """Confirm once: status, time, an event, and now the follow-up work. False if done before."""
    if submission.confirmed_at is not None:
        return False
    # Compare-and-set: of two clicks racing, exactly one confirms; the other says "already".
    won = rows_matched(
        sa.update(Submission).where(Submission.id == submission.id,
                                    Submission.confirmed_at.is_(None))
        .values(confirmed_at=utcnow()).execution_options(synchronize_session="fetch")
    )
    if not won:
        db.session.rollback()
        return False
    if submission.status == SubmissionStatus.PENDING.value:
        submission.status = SubmissionStatus.ACCEPTED.value
    submission.lead.awaiting_confirmation = False
    consents.opt_in_confirmed(submission.form, submission.lead, submission.consent_given)
    record_event(submission.lead, "subscription_confirmed",
                 campaign_id=submission.campaign_id,
                 data={"form_id": submission.form_id, "submission_id": submission.id},
                 dedupe_key=f"subscription_confirmed:{submission.id}")
    pipeline.schedule_follow_up(submission)
    db.session.commit()
    return True


@bp.route("/confirm/<token>", methods=["GET", "POST"])
def confirm_page(token: str):
    try:
        submission = _load(token)
    except LinkProblem as problem:
        return render_template("forms/confirm.html", state="problem", problem=problem), \
            problem.status
    if request.method == "POST":
        state = "confirmed" if confirm(submission) else "already"
    else:
        state = "already" if submission.confirmed_at else "ask"
    return render_template("forms/confirm.html", state=state, submission=submission)
