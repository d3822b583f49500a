"""The WTForms classes of the sequence editor. Choices are `SelectChoice` objects (WTForms 3.3)."""

from __future__ import annotations

from typing import Any

from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from wtforms import (
    IntegerField,
    SelectChoice,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
)
from wtforms.validators import DataRequired, Length, NumberRange, Optional, ValidationError

from app.leads.models import Stage
from nurture.models import Condition, FailurePolicy, Reenroll, StepKind
from nurture.timing import WEEKDAYS, parse_wait_until, zone

DAY_CHOICES = [SelectChoice(index, name.capitalize()) for index, name in enumerate(WEEKDAYS)]
STAGE_CHOICES = [SelectChoice(stage.value, stage.label) for stage in Stage]
KIND_CHOICES = [SelectChoice(StepKind.EMAIL.value, "Email"),
                SelectChoice(StepKind.WAIT.value, "Wait"),
                SelectChoice(StepKind.BRANCH.value, "Branch (if / else)"),
                SelectChoice(StepKind.GOAL.value, "Goal")]
CONDITION_CHOICES = [
    SelectChoice(Condition.OPENED_PREVIOUS.value, "Opened the previous email"),
    SelectChoice(Condition.CLICKED_PREVIOUS.value, "Clicked in the previous email"),
    SelectChoice(Condition.VISITED_URL_PATTERN.value, "Visited a page matching a pattern"),
    SelectChoice(Condition.SCORE_AT_LEAST.value, "Engagement score at least"),
    SelectChoice(Condition.FIELD_EQUALS.value, "A field equals a value"),
    SelectChoice(Condition.IN_STAGE.value, "Is in a stage"),
]


BASIS_CHOICES = [SelectChoice("", "Choose…")] + [SelectChoice(key, label) for key, label in (
    ("consent", "They gave consent (e.g. at an event or on another site)"),
    ("legitimate_interest", "Legitimate interest (existing customers, similar products)"),
    ("contract", "A contract with them"),
)]


class NewSequenceForm(FlaskForm):
    name = StringField("Sequence name", validators=[DataRequired(message="Give it a name."),
                                                    Length(max=200)])


class SequenceForm(FlaskForm):
    name = StringField("Name", validators=[DataRequired(), Length(max=200)])
    window_days = SelectMultipleField("Send on", choices=DAY_CHOICES, coerce=int)
    window_start_hour = IntegerField("From hour", validators=[NumberRange(min=0, max=23)])
    window_end_hour = IntegerField("Until hour", validators=[NumberRange(min=1, max=24)],
                                   description="24 means until midnight.")
    timezone = StringField("Time zone when the lead's is unknown",
                           validators=[DataRequired(), Length(max=64)])
    frequency_cap_hours = IntegerField(
        "At most one nurture email per (hours)", validators=[NumberRange(min=0, max=24 * 30)],
        description="0: no cap. Counts emails from every sequence.")
    reenroll = SelectField("Enroll a lead again", choices=[
        SelectChoice(Reenroll.NEVER.value, "Never"),
        SelectChoice(Reenroll.AFTER_FINISHED.value, "After they finished it")])
    on_permanent_failure = SelectField("When an email fails for good", choices=[
        SelectChoice(FailurePolicy.CONTINUE.value, "Continue with the next step"),
        SelectChoice(FailurePolicy.STOP.value, "Stop the lead's journey")])
    trigger_form_id = SelectField("Enroll everyone who submits", coerce=int)
    required_purpose_id = SelectField(
        "Consent needed", coerce=int, default=0,
        description="Only leads who agreed to this purpose are enrolled; withdrawing it ends "
                    "their journey. Set on a running sequence, it ends the journeys of those "
                    "in it who have not agreed.")
    trigger_stage = SelectField("Enroll everyone entering the stage", default="",
                                choices=[SelectChoice("", "— no stage —")] + STAGE_CHOICES)
    exit_stages = SelectMultipleField(
        "Leave the sequence on reaching", choices=STAGE_CHOICES,
        description="A new sequence lets a lead go once sales accepts them (SQL), they become "
                    "a customer, or they are disqualified.")

    def validate_timezone(self, field: Any) -> None:
        if zone(field.data) is None:
            raise ValidationError("Use a time zone name such as Europe/London.")

    def validate_window_end_hour(self, field: Any) -> None:
        start = self.window_start_hour.data
        if start is not None and field.data is not None and field.data <= start:
            raise ValidationError("The window must end after it starts.")


class AddStepForm(FlaskForm):
    kind = SelectField("Step", choices=KIND_CHOICES)


class StepForm(FlaskForm):
    """One form for every kind of step; the page shows the fields of the step's kind."""

    subject = StringField("Subject", validators=[Length(max=300)])
    body = TextAreaField("Body", validators=[Length(max=100_000)], render_kw={"rows": 12},
                         description="Markdown (or HTML). Use {{ lead.first_name }}, "
                                     "{{ lead.company }}, {{ campaign.name }}.")
    body_format = SelectField("Format", choices=[SelectChoice("markdown", "Markdown"),
                                                 SelectChoice("html", "HTML")])
    wait_hours = IntegerField("Wait (hours)", validators=[Optional(), NumberRange(min=0)])
    wait_minutes = IntegerField("and minutes", validators=[Optional(), NumberRange(min=0)])
    wait_until = StringField("Or wait until", validators=[Length(max=40)],
                             description="e.g. next tuesday 09:00 (the lead's time zone)")
    condition = SelectField("Condition", choices=CONDITION_CHOICES)
    pattern = StringField("URL pattern", validators=[Length(max=500)],
                          description="e.g. */pricing*")
    score = IntegerField("Score", validators=[Optional()])
    field_name = StringField("Field", validators=[Length(max=60)],
                             description="A profile field (company, country …) or attribute.")
    field_value = StringField("Value", validators=[Length(max=500)])
    stages = SelectMultipleField("Stages", choices=STAGE_CHOICES)
    yes_step_id = SelectField("If yes, go to", coerce=int)
    no_step_id = SelectField("If no, go to", coerce=int)
    goal_stages = SelectMultipleField("Goal stages", choices=STAGE_CHOICES)

    def validate_wait_until(self, field: Any) -> None:
        if field.data and parse_wait_until(field.data) is None:
            raise ValidationError("Write it as 'next <weekday> <HH:MM>'.")


class ManualEnrollForm(FlaskForm):
    email = StringField("Lead's email", validators=[DataRequired(), Length(max=320)])


class CsvImportForm(FlaskForm):
    file = FileField("CSV file", validators=[FileRequired(message="Choose a CSV file.")],
                     description="First row: column names, one of them email. Other columns "
                                 "(first_name, company, country, timezone …) fill the profile.")
    basis = SelectField("Why may we email these people?", choices=BASIS_CHOICES,
                        validators=[DataRequired(message="Say why you may email them.")],
                        description="Recorded with every imported lead. “They gave consent” "
                                    "also records consent to the sequence's purpose.")


class PreviewForm(FlaskForm):
    """Who and which campaign a preview (and a test send) is for. Both are pickers
    (app.pickers): an id, a chosen suggestion or an exact email/name; the view resolves them."""

    class Meta:
        csrf = False  # a GET form: it only chooses what the preview shows

    lead_id = StringField("Preview for lead", validators=[Length(max=400)],
                          description="Empty: Sam Sample, a made-up lead.")
    campaign_id = StringField("With campaign", validators=[Length(max=400)],
                              description="Empty: the lead's own campaign.")
