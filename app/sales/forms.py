"""Flask-WTF forms of the sales screens (CSRF on every one)."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    EmailField,
    IntegerField,
    RadioField,
    SelectChoice,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
    URLField,
)
from wtforms.validators import (
    URL,
    DataRequired,
    Email,
    Length,
    NumberRange,
    Optional,
    Regexp,
    ValidationError,
)
from wtforms.widgets import CheckboxInput, ListWidget

from app import netguard
from app.sales.models import WEEKDAYS


class AcceptForm(FlaskForm):
    pass


class RejectForm(FlaskForm):
    outcome = RadioField("What should happen to this lead?", default="recycled", choices=[
        SelectChoice("recycled", "Recycle: back to nurture, engagement starts from zero"),
        SelectChoice("disqualified", "Disqualify: not a fit, stop here"),
    ], validators=[DataRequired()])
    reason = TextAreaField("Reason", validators=[DataRequired(), Length(max=1000)],
                           description="Marketing reads this to improve scoring.")


class SettingsForm(FlaskForm):
    assignment_mode = SelectField("Assign new MQLs by", choices=[
        SelectChoice("round_robin", "Round robin (weights and working days)"),
        SelectChoice("territory", "Territory by country, then round robin"),
    ])
    team_email = EmailField("Team address", validators=[
        Optional(), Email(check_deliverability=False), Length(max=320)],
        description="Alerted when no sales user can take a lead.")
    team_slack_url = URLField("Team Slack webhook URL", validators=[
        Optional(), URL(require_tld=False), Length(max=500)],
        description="A Slack (or compatible) incoming-webhook URL: team alerts go there too.")
    manager_email = EmailField("Manager address", validators=[
        Optional(), Email(check_deliverability=False), Length(max=320)],
        description="Receives SLA escalations.")
    sla_hours = IntegerField("SLA (working hours)", validators=[NumberRange(1, 400)])
    timezone = StringField("Time zone", validators=[DataRequired(), Length(max=64)])
    work_start_hour = IntegerField("Working day starts (hour)", validators=[NumberRange(0, 23)])
    work_end_hour = IntegerField("Working day ends (hour)", validators=[NumberRange(1, 24)])
    allow_non_owner = BooleanField("Sales users may accept or reject leads they do not own")

    def validate_team_slack_url(self, field: URLField) -> None:
        check_chat_url(field)

    def validate_timezone(self, field: StringField) -> None:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(field.data or "")
        except (ZoneInfoNotFoundError, ValueError):
            raise ValidationError("Unknown time zone (use a name like Europe/Berlin).")

    def validate_work_end_hour(self, field: IntegerField) -> None:
        if (field.data or 0) <= (self.work_start_hour.data or 0):
            raise ValidationError("The working day must end after it starts.")


def check_chat_url(field: URLField) -> None:
    """An alert channel's URL must be public (app.netguard), checked when it is saved."""
    if field.data:
        try:
            netguard.check_url(field.data)
        except netguard.BlockedURL as exc:
            raise ValidationError(str(exc)) from None


class RepForm(FlaskForm):
    user_id = SelectField("Sales user", coerce=int)
    weight = IntegerField("Weight", default=1, validators=[NumberRange(0, 100)],
                          description="0 takes the user out of the rotation.")
    working_days = SelectMultipleField(
        "Working days", coerce=int, default=[0, 1, 2, 3, 4],
        choices=[SelectChoice(str(i), day) for i, day in enumerate(WEEKDAYS)],
        widget=ListWidget(prefix_label=False), option_widget=CheckboxInput())
    is_manager = BooleanField("Manager (sees every lead in the queue)")
    slack_url = URLField("Slack webhook URL", validators=[
        Optional(), URL(require_tld=False), Length(max=500)],
        description="The rep's own incoming-webhook URL: their alerts go there too.")

    def validate_slack_url(self, field: URLField) -> None:
        check_chat_url(field)


class TerritoryForm(FlaskForm):
    country = StringField("Country (ISO code)", validators=[
        DataRequired(), Regexp(r"^[A-Za-z]{2}$", message="Two letters, like DE or US.")])
    user_id = SelectField("Owner", coerce=int)
