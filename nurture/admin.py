"""The marketer's screens: sequences, the step editor, activation, preview and test sends,
per-step numbers, and the leads enrolled (pause, resume, remove, enroll by hand)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from flask import Blueprint, Response, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy.exc import IntegrityError
from wtforms import SelectChoice

from app import outbox, pickers
from app.auth.roles import marketer_required
from app.db import db
from app.leads.models import Lead
from app.leads.service import InvalidEmail, normalise_email
from app.mail.ledger import unique_key
from app.privacy import consent
from app.templating import plural
from nurture import engine
from nurture import enrollment as enrollments
from nurture.admin_forms import (
    AddStepForm,
    CsvImportForm,
    ManualEnrollForm,
    NewSequenceForm,
    PreviewForm,
    SequenceForm,
    StepForm,
)
from nurture.csv_import import import_csv
from nurture.models import (
    LIVE_STATUSES,
    Enrollment,
    EnrollmentStatus,
    Send,
    SendStatus,
    Sequence,
    SequenceStatus,
    Step,
    StepKind,
)
from nurture.render import (
    TemplateProblem,
    preview_campaign,
    render_step,
    sample_lead,
    validate,
)
from nurture.stats import COLUMNS, step_stats
from nurture.steps import activate, add_step, move_step, remove_step

bp = Blueprint("nurture", __name__, url_prefix="/admin/nurture", template_folder="templates")

SETTINGS = ("name", "window_days", "window_start_hour", "window_end_hour", "timezone",
            "frequency_cap_hours", "reenroll", "on_permanent_failure", "exit_stages",
            "trigger_stage")


def _sequence(sequence_id: int) -> Sequence:
    return db.session.get(Sequence, sequence_id) or abort(404)


def _step(sequence: Sequence, step_id: int) -> Step:
    step = db.session.get(Step, step_id)
    if step is None or step.sequence_id != sequence.id:
        abort(404)
    return step


def _purpose_choices() -> list[SelectChoice]:
    return [SelectChoice(0, "— none: any lead that can be emailed —")] + [
        SelectChoice(p.id, p.name) for p in consent.purposes()]


def _form_choices() -> list[SelectChoice]:
    from forms.models import Form  # a model, not a view

    forms = db.session.scalars(sa.select(Form).order_by(Form.name)).all()
    return [SelectChoice(0, "— no form —")] + [SelectChoice(f.id, f.name) for f in forms]


@bp.route("/", methods=["GET", "POST"])
@marketer_required
def index():
    new = NewSequenceForm()
    if new.validate_on_submit():
        sequence = Sequence(name=new.name.data.strip())
        db.session.add(sequence)
        db.session.commit()
        flash(f"Sequence “{sequence.name}” created. Add its steps below.", "info")
        return redirect(url_for("nurture.edit", sequence_id=sequence.id))
    sequences = db.session.scalars(sa.select(Sequence).order_by(Sequence.name)).all()
    live = dict(db.session.execute(
        sa.select(Enrollment.sequence_id, sa.func.count())
        .where(Enrollment.status.in_(LIVE_STATUSES)).group_by(Enrollment.sequence_id)).all())
    return render_template("nurture/admin/index.html", sequences=sequences, live=live,
                           new=new), 400 if new.errors else 200


@bp.route("/<int:sequence_id>", methods=["GET", "POST"])
@marketer_required
def edit(sequence_id: int):
    sequence = _sequence(sequence_id)
    settings = SequenceForm(obj=sequence) if request.method == "GET" else SequenceForm()
    settings.trigger_form_id.choices = _form_choices()
    settings.required_purpose_id.choices = _purpose_choices()
    if request.method == "GET":
        settings.trigger_form_id.data = sequence.trigger_form_id or 0
        settings.required_purpose_id.data = sequence.required_purpose_id or 0
    if settings.validate_on_submit():
        for name in SETTINGS:
            setattr(sequence, name, getattr(settings, name).data)
        sequence.trigger_form_id = settings.trigger_form_id.data or None
        needed = sequence.required_purpose_id
        sequence.required_purpose_id = settings.required_purpose_id.data or None
        # A purpose needed from now on: the leads in the sequence who never agreed leave it.
        ended = enrollments.end_without_purpose(sequence) \
            if sequence.required_purpose_id not in (None, needed) else 0
        db.session.commit()
        who = "lead who had" if ended == 1 else "leads who had"
        flash("Settings saved." + (f" {ended} {who} not agreed to the purpose left the "
                                   "sequence." if ended else ""), "info")
        return redirect(url_for("nurture.edit", sequence_id=sequence.id))
    return _editor(sequence, settings), 400 if settings.errors else 200


TROUBLE = (SendStatus.FAILED.value, SendStatus.RETRY.value, SendStatus.UNKNOWN.value)


def _troubled_sends(sequence: Sequence, limit: int = 20) -> list[tuple[Any, ...]]:
    """The latest failed, retrying or unsettled emails of this sequence, with their reason."""
    step_ids = [step.id for step in sequence.steps]
    if not step_ids:
        return []
    return [tuple(row) for row in db.session.execute(
        sa.select(Send, Lead).join(Lead, Lead.id == Send.lead_id)
        .where(Send.step_id.in_(step_ids), Send.status.in_(TROUBLE))
        .order_by(Send.updated_at.desc(), Send.id.desc()).limit(limit)).all()]


def _editor(sequence: Sequence, settings: SequenceForm, errors: list[str] | None = None) -> str:
    problems = {step.id: validate(step) for step in sequence.steps}
    return render_template("nurture/admin/edit.html", sequence=sequence, settings=settings,
                           add=AddStepForm(formdata=None), problems=problems,
                           stats=step_stats(sequence), columns=COLUMNS,
                           activation_errors=errors or [], troubled=_troubled_sends(sequence),
                           step_labels={step.id: step.label for step in sequence.steps})


@bp.route("/<int:sequence_id>/activate", methods=["POST"])
@marketer_required
def activate_sequence(sequence_id: int):
    sequence = _sequence(sequence_id)
    errors = activate(sequence)
    if errors:
        db.session.rollback()
        settings = SequenceForm(formdata=None, obj=sequence)
        settings.trigger_form_id.choices = _form_choices()
        settings.required_purpose_id.choices = _purpose_choices()
        return _editor(sequence, settings, errors), 400
    db.session.commit()
    flash("The sequence is active.", "info")
    return redirect(url_for("nurture.edit", sequence_id=sequence.id))


@bp.route("/<int:sequence_id>/pause", methods=["POST"])
@marketer_required
def pause_sequence(sequence_id: int):
    sequence = _sequence(sequence_id)
    if sequence.status == SequenceStatus.ACTIVE.value:
        sequence.status = SequenceStatus.PAUSED.value
        db.session.commit()
        flash("Paused: nobody moves on until you activate it again.", "info")
    return redirect(url_for("nurture.edit", sequence_id=sequence.id))


@bp.route("/<int:sequence_id>/steps", methods=["POST"])
@marketer_required
def add(sequence_id: int):
    sequence = _sequence(sequence_id)
    form = AddStepForm()
    if not form.validate_on_submit():
        abort(400)
    step = add_step(sequence, form.kind.data)
    db.session.commit()
    return redirect(url_for("nurture.edit_step", sequence_id=sequence.id, step_id=step.id))


def _target_choices(sequence: Sequence, step: Step) -> list[SelectChoice]:
    later = [s for s in sequence.steps if s.position > step.position]
    return [SelectChoice(0, "the next step")] + [
        SelectChoice(s.id, f"{s.position + 1}. {s.label}") for s in later]


@bp.route("/<int:sequence_id>/steps/<int:step_id>", methods=["GET", "POST"])
@marketer_required
def edit_step(sequence_id: int, step_id: int):
    sequence = _sequence(sequence_id)
    step = _step(sequence, step_id)
    form = StepForm(obj=step) if request.method == "GET" else StepForm()
    for name in ALL_STEP_FIELDS - KIND_FIELDS[step.kind]:
        delattr(form, name)  # the page shows (and posts) only this kind's fields
    if step.kind == StepKind.BRANCH.value:
        form.yes_step_id.choices = form.no_step_id.choices = _target_choices(sequence, step)
    if request.method == "GET":
        _fill(form, step)
    if form.validate_on_submit():
        problems = _draft_problems(form, step)
        _apply(form, step)
        if problems is None:
            problems = validate(step)
        if problems and sequence.is_active:
            # A live sequence keeps the version that works: leads are being sent this step.
            db.session.rollback()
            return render_template("nurture/admin/step.html", sequence=sequence, step=step,
                                   form=form, problems=problems, refused=True,
                                   **_preview_page(step)), 400
        db.session.commit()
        if problems:
            flash("Saved, but this step needs work before the sequence can go live: "
                  + " ".join(problems), "error")
        else:
            flash("Step saved.", "info")
        return redirect(url_for("nurture.edit_step", sequence_id=sequence.id, step_id=step.id))
    return render_template("nurture/admin/step.html", sequence=sequence, step=step, form=form,
                           problems=validate(step), **_preview_page(step)), \
        400 if form.errors else 200


PREVIEW_SOURCES = {"chosen": "chosen above", "enrollment": "the lead's enrollment",
                   "activity": "the lead's latest campaign",
                   "sample": "a sample: no campaign to show"}


def _preview_page(step: Step) -> dict:
    """The preview section of the step page: the choice, and the campaign it will show."""
    if step.kind != StepKind.EMAIL.value:
        return {"preview": None}
    choice = _preview_choice(request.args)
    campaign = None if choice.errors else preview_campaign(step, choice.lead,
                                                           choice.campaign_id)
    return {"preview": choice, "preview_campaign": campaign,
            "preview_source": PREVIEW_SOURCES[campaign.source] if campaign else ""}


KIND_FIELDS = {
    StepKind.EMAIL.value: {"subject", "body", "body_format"},
    StepKind.WAIT.value: {"wait_hours", "wait_minutes", "wait_until"},
    StepKind.BRANCH.value: {"condition", "pattern", "score", "field_name", "field_value",
                            "stages", "yes_step_id", "no_step_id"},
    StepKind.GOAL.value: {"goal_stages"},
}
ALL_STEP_FIELDS = set().union(*KIND_FIELDS.values())


def _fill(form: StepForm, step: Step) -> None:
    if step.kind == StepKind.WAIT.value:
        seconds = step.wait_seconds or 0
        form.wait_hours.data, form.wait_minutes.data = seconds // 3600, (seconds % 3600) // 60
    if step.kind != StepKind.BRANCH.value:
        return
    params = step.params or {}
    form.pattern.data = params.get("pattern", "")
    form.score.data = params.get("score")
    form.field_name.data = params.get("field", "")
    form.field_value.data = params.get("value", "")
    form.stages.data = params.get("stages", [])
    form.yes_step_id.data = step.yes_step_id or 0
    form.no_step_id.data = step.no_step_id or 0
    if not form.condition.data:
        form.condition.data = form.condition.choices[0].value


def _draft_problems(form: StepForm, step: Step) -> list[str] | None:
    """An email step's problems, found by rendering what was posted (the marketer's template:
    bounded work, but still up to seconds) with no database transaction open meanwhile; the
    objects loaded so far are read again afterwards. None for other kinds (their checks read
    the database)."""
    if step.kind != StepKind.EMAIL.value:
        return None
    draft = Step(kind=step.kind, subject=form.subject.data or "", body=form.body.data or "",
                 body_format=form.body_format.data)
    db.session.rollback()  # nothing is changed yet: this only ends the read transaction
    return validate(draft)


def _apply(form: StepForm, step: Step) -> None:
    if step.kind == StepKind.EMAIL.value:
        step.subject = form.subject.data or ""
        step.body = form.body.data or ""
        step.body_format = form.body_format.data
    elif step.kind == StepKind.WAIT.value:
        step.wait_seconds = (form.wait_hours.data or 0) * 3600 + (form.wait_minutes.data or 0) * 60
        step.wait_until = (form.wait_until.data or "").strip().lower()
    elif step.kind == StepKind.BRANCH.value:
        step.condition = form.condition.data
        step.params = {"pattern": (form.pattern.data or "").strip(), "score": form.score.data,
                       "field": (form.field_name.data or "").strip(),
                       "value": form.field_value.data or "", "stages": form.stages.data or []}
        step.yes_step_id = form.yes_step_id.data or None
        step.no_step_id = form.no_step_id.data or None
    elif step.kind == StepKind.GOAL.value:
        step.goal_stages = form.goal_stages.data or []


@bp.route("/<int:sequence_id>/steps/<int:step_id>/move", methods=["POST"])
@marketer_required
def move(sequence_id: int, step_id: int):
    sequence = _sequence(sequence_id)
    move_step(_step(sequence, step_id), -1 if request.form.get("direction") == "up" else 1)
    db.session.commit()
    return redirect(url_for("nurture.edit", sequence_id=sequence.id))


@bp.route("/<int:sequence_id>/steps/<int:step_id>/remove", methods=["POST"])
@marketer_required
def remove(sequence_id: int, step_id: int):
    sequence = _sequence(sequence_id)
    step = _step(sequence, step_id)
    live_here = db.session.scalar(sa.select(sa.func.count()).where(
        Enrollment.step_id == step.id, Enrollment.status.in_(LIVE_STATUSES)))
    if live_here:
        flash(f"{plural(live_here, 'lead')} {'is' if live_here == 1 else 'are'} at this step; "
              "pause or remove them first.", "error")
    else:
        remove_step(step)
        db.session.commit()
        flash("Step removed.", "info")
    return redirect(url_for("nurture.edit", sequence_id=sequence.id))


@dataclass
class PreviewChoice:
    """What a preview (and a test send) is for: the lead (None: the sample lead), the campaign
    chosen (None: the lead's own), and why a choice was refused."""

    form: PreviewForm
    lead: Lead | None = None
    campaign_id: int | None = None
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def args(self) -> dict[str, Any]:
        """The query of the preview frame and the test send's hidden fields."""
        chosen = {"lead_id": self.lead.id if self.lead else None,
                  "campaign_id": self.campaign_id}
        return {name: value for name, value in chosen.items() if value is not None}


def _preview_choice(values) -> PreviewChoice:
    form = PreviewForm(values)
    choice = PreviewChoice(form)
    for name, kind in (("lead_id", "lead"), ("campaign_id", "campaign")):
        text = (values.get(name) or "").strip()[:400]
        try:
            found = pickers.resolve(kind, text)
        except pickers.PickError as exc:
            choice.errors[name] = str(exc)
            getattr(form, name).errors = [str(exc)]
            continue
        getattr(form, name).data = str(found) if found is not None else ""
        if name == "lead_id":
            choice.lead = db.session.get(Lead, found) if found is not None else None
        else:
            choice.campaign_id = found
    return choice


@bp.route("/<int:sequence_id>/steps/<int:step_id>/preview")
@marketer_required
def preview(sequence_id: int, step_id: int):
    """The email as the chosen lead would get it, with the campaign a send would carry
    (sandboxed in the browser: no script runs)."""
    step = _step(_sequence(sequence_id), step_id)
    choice = _preview_choice(request.args)
    if choice.errors:
        return Response(" ".join(choice.errors.values()), 404, mimetype="text/plain")
    campaign = preview_campaign(step, choice.lead, choice.campaign_id)
    try:
        rendered = render_step(step, choice.lead or sample_lead(),
                               unsubscribe_url="#unsubscribe-preview", campaign=campaign.context)
    except TemplateProblem as exc:
        return Response(f"This email cannot be rendered: {exc}", 422, mimetype="text/plain")
    response = Response(rendered.html, mimetype="text/html")
    response.headers["Content-Security-Policy"] = \
        "sandbox; default-src 'none'; img-src https: data:; style-src 'unsafe-inline'"
    return response


@bp.route("/<int:sequence_id>/steps/<int:step_id>/test", methods=["POST"])
@marketer_required
def send_test(sequence_id: int, step_id: int):
    step = _step(_sequence(sequence_id), step_id)
    choice = _preview_choice(request.form)
    if step.kind != StepKind.EMAIL.value or validate(step):
        flash("Fix this email before sending a test.", "error")
    elif choice.errors:
        flash(" ".join(choice.errors.values()) + " No test was sent.", "error")
    else:
        outbox.add("nurture.jobs.send_test", step.id, current_user.id,
                   choice.lead.id if choice.lead else None, unique_key("step-test"),
                   choice.campaign_id, queue_name="mail")
        db.session.commit()
        flash(f"A test is on its way to {current_user.email}.", "info")
    return redirect(url_for("nurture.edit_step", sequence_id=sequence_id, step_id=step.id,
                            **choice.args))


@bp.route("/<int:sequence_id>/enrollments", methods=["GET", "POST"])
@marketer_required
def enrollments_list(sequence_id: int):
    sequence = _sequence(sequence_id)
    form = ManualEnrollForm()
    if form.validate_on_submit():
        _enroll_by_hand(sequence, form)
        return redirect(url_for("nurture.enrollments_list", sequence_id=sequence.id))
    status = request.args.get("status") or ""
    query = sa.select(Enrollment).where(Enrollment.sequence_id == sequence.id)
    if status in {s.value for s in EnrollmentStatus}:
        query = query.where(Enrollment.status == status)
    page = db.paginate(query.order_by(Enrollment.id.desc()),
                       page=max(request.args.get("page", 1, type=int) or 1, 1), per_page=50,
                       error_out=False)
    return render_template("nurture/admin/enrollments.html", sequence=sequence, page=page,
                           form=form, upload=CsvImportForm(formdata=None), status=status,
                           statuses=list(EnrollmentStatus)), 400 if form.errors else 200


@bp.route("/<int:sequence_id>/enrollments/import", methods=["POST"])
@marketer_required
def import_enrollments(sequence_id: int):
    """CSV import: upsert each row's lead and enroll it; the first emails start at once."""
    sequence = _sequence(sequence_id)
    upload = CsvImportForm()
    if not upload.validate_on_submit():
        flash(" ".join(upload.file.errors) or "Choose a CSV file.", "error")
        return redirect(url_for("nurture.enrollments_list", sequence_id=sequence.id))
    name = (upload.file.data.filename or "file")[:80]
    result = import_csv(sequence, upload.file.data.read(),
                        f"CSV import ({name}) by {current_user.email}", basis=upload.basis.data)
    if result.error:
        db.session.rollback()
        flash(f"Not imported: {result.error}.", "error")
        return redirect(url_for("nurture.enrollments_list", sequence_id=sequence.id))
    db.session.commit()
    for start in range(0, len(result.enrolled), 500):
        engine.kick(result.enrolled[start:start + 500])
    flash(f"CSV import: {result.summary()}.", "info")
    for line, why in result.skipped[:20]:
        flash(f"Line {line} skipped: {why}.", "error")
    return redirect(url_for("nurture.enrollments_list", sequence_id=sequence.id))


def _enroll_by_hand(sequence: Sequence, form: ManualEnrollForm) -> None:
    try:
        identity, _ = normalise_email(form.email.data)
    except InvalidEmail:
        flash("That is not an email address.", "error")
        return
    lead = db.session.scalar(sa.select(Lead).where(Lead.email == identity))
    why = enrollments.refusal(lead, sequence) if lead else "there is no lead with that email"
    if why or lead is None:
        flash(f"Not enrolled: {why}.", "error")
        return
    try:
        enrollment = enrollments.enroll(lead.id, sequence.id, f"added by {current_user.email}")
        db.session.commit()
    except IntegrityError:  # enrolled at the same moment by someone else
        db.session.rollback()
        flash("Not enrolled: the lead is already in this sequence.", "error")
        return
    if enrollment is None:
        flash("Not enrolled: the lead is already in this sequence.", "error")
        return
    engine.kick([enrollment.id])
    flash(f"{lead.email_display} is enrolled.", "info")


@bp.route("/enrollments/<int:enrollment_id>/<action>", methods=["POST"])
@marketer_required
def enrollment_action(enrollment_id: int, action: str):
    enrollment = db.session.get(Enrollment, enrollment_id) or abort(404)
    if action == "pause":
        enrollments.pause(enrollment)
    elif action == "resume":
        enrollments.resume(enrollment)
    elif action == "remove":
        enrollments.end(enrollment, f"removed by {current_user.email}", finished=False)
    elif action == "replied":  # the lead answered: a person takes over, every journey ends
        enrollments.mark_replied(enrollment.lead, f"marked by {current_user.email}")
    else:
        abort(404)
    db.session.commit()
    return redirect(url_for("nurture.enrollments_list", sequence_id=enrollment.sequence_id))
